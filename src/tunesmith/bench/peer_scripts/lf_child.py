"""Train a bench workload with LLaMA-Factory's run_exp (run with the LLaMA-Factory venv's python).

LLaMA-Factory tokenizes the same rows itself (its ``smollm2`` template with SmolLM2's default
system prompt matches the tokenizer's chat template); the bench compares first-step losses to
prove the token sequences and masks are the same. ``torchaudio`` is a stand-in module on
PYTHONPATH (set by the bench): LLaMA-Factory imports it at module level, text SFT never uses it.
"""

import json
import sys

from timing import BenchTiming


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    from llamafactory.train.tuner import run_exp

    args = {
        "model_name_or_path": spec["model"], "stage": "sft", "do_train": True,
        "finetuning_type": "lora", "lora_rank": spec["lora_rank"],
        "lora_alpha": spec["lora_alpha"], "lora_dropout": 0.0, "lora_target": "all",
        "dataset": "bench", "dataset_dir": spec["lf_dataset_dir"], "template": "smollm2",
        "default_system": spec["default_system"], "cutoff_len": spec["cutoff_len"],
        "overwrite_cache": True, "output_dir": spec["output_dir"], "overwrite_output_dir": True,
        "logging_steps": 1, "save_strategy": "no", "plot_loss": False, "report_to": "none",
        "per_device_train_batch_size": spec["batch"], "gradient_accumulation_steps": 1,
        "learning_rate": spec["learning_rate"], "num_train_epochs": spec["epochs"],
        "max_steps": spec["max_steps"], "lr_scheduler_type": spec["lr_scheduler_type"],
        "seed": spec["seed"], "disable_shuffling": True, "disable_tqdm": True,
        "bf16": spec["dtype"] == "bf16",  # pure_bf16 is refused on CPU
        "disable_gradient_checkpointing": not spec["gradient_checkpointing"],
        "logging_first_step": True,
    }
    import torch

    if not torch.cuda.is_available():
        args["use_cpu"] = True  # LLaMA-Factory refuses bf16 without a GPU unless told
    run_exp(args=args, callbacks=[BenchTiming(spec["result"])])


if __name__ == "__main__":
    main(sys.argv[1])
