"""Train bench workload W4 with LLaMA-Factory's ``stage: dpo`` (run with its venv's python).

LLaMA-Factory gets tunesmith's tokenized pairs through its ``tokenized_path`` (a pairwise
DatasetDict: chosen_/rejected_ input_ids, attention_mask, labels), so the token sequences and
answer masks equal the other tools'. LoRA's reference is the adapter switched off, as in
tunesmith. ``torchaudio`` is a stand-in module on PYTHONPATH (see lf_child.py).
"""

import json
import os
import sys

from timing import BenchTiming


def tokenized_dir(spec):
    import shutil

    from datasets import Dataset, DatasetDict

    path = os.path.join(os.path.dirname(spec["output_dir"]), "lf_tokenized")
    shutil.rmtree(path, ignore_errors=True)
    rows = [json.loads(line) for line in open(spec["rows"], encoding="utf-8")]
    columns = {}
    for side in ("chosen", "rejected"):
        columns[f"{side}_input_ids"] = [r[side]["input_ids"] for r in rows]
        columns[f"{side}_attention_mask"] = [[1] * len(r[side]["input_ids"]) for r in rows]
        columns[f"{side}_labels"] = [r[side]["labels"] for r in rows]
    for media in ("images", "videos", "audios"):  # its pairwise collator reads them (text: none)
        columns[media] = [None] * len(rows)
    DatasetDict({"train": Dataset.from_dict(columns)}).save_to_disk(path)
    return path


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    from llamafactory.train.tuner import run_exp

    args = {
        "model_name_or_path": spec["model"], "stage": "dpo", "do_train": True,
        "pref_beta": spec["pref_beta"], "pref_loss": spec["pref_loss"],
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
        "bf16": spec["dtype"] == "bf16",
        "disable_gradient_checkpointing": not spec["gradient_checkpointing"],
        "logging_first_step": True,
    }
    import torch

    if not torch.cuda.is_available():
        args["use_cpu"] = True
    run_exp(args=args, callbacks=[BenchTiming(spec["result"])])


if __name__ == "__main__":
    main(sys.argv[1])
