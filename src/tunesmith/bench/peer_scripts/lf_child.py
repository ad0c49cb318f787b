"""Train a bench workload with LLaMA-Factory's run_exp (run with the LLaMA-Factory venv's python).

LLaMA-Factory gets tunesmith's tokenized rows through its own ``tokenized_path`` mechanism (a
``datasets`` dir with input_ids, attention_mask and labels, written here inside the measured run),
so the token sequences and label masks are the same as every other tool's. Its ``smollm2``
template renders the same input ids but also labels the newline after each ``<|im_end|>`` (one
extra, easily predicted target per turn): with its own tokenization the first-step loss is lower
and the work is not equal. ``torchaudio`` is a stand-in module on PYTHONPATH (set by the bench):
LLaMA-Factory imports it at module level, text SFT never uses it.
"""

import json
import os
import sys

from timing import BenchTiming


def tokenized_dir(spec):
    """tunesmith's rows as the DatasetDict LLaMA-Factory's ``tokenized_path`` loads."""
    import shutil

    from datasets import Dataset, DatasetDict

    path = os.path.join(os.path.dirname(spec["output_dir"]), "lf_tokenized")
    shutil.rmtree(path, ignore_errors=True)
    rows = [json.loads(line) for line in open(spec["rows"], encoding="utf-8")]
    data = Dataset.from_list([{"input_ids": r["input_ids"], "attention_mask": [1] * len(r["input_ids"]),
                               "labels": r["labels"]} for r in rows])
    DatasetDict({"train": data}).save_to_disk(path)
    return path


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    from llamafactory.train.tuner import run_exp

    args = {
        "model_name_or_path": spec["model"], "stage": "sft", "do_train": True,
        "finetuning_type": "lora", "lora_rank": spec["lora_rank"],
        "lora_alpha": spec["lora_alpha"], "lora_dropout": 0.0, "lora_target": "all",
        "dataset": "bench", "dataset_dir": spec["lf_dataset_dir"], "template": "smollm2",
        "default_system": spec["default_system"], "cutoff_len": spec["cutoff_len"],
        "tokenized_path": tokenized_dir(spec),
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
