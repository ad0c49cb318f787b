"""Predict with LLaMA-Factory's run_exp (``--do_predict --predict_with_generate``), for
``tunesmith bench predict``. Run with the LLaMA-Factory venv's python; the spec names the model,
the dataset dir, the rows and the generation settings."""

import json
import sys


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    import torch
    from llamafactory.train.tuner import run_exp

    args = {
        "model_name_or_path": spec["model"], "stage": "sft", "do_predict": True,
        "predict_with_generate": True, "finetuning_type": "lora",
        "eval_dataset": "bench", "dataset_dir": spec["dataset_dir"], "template": "smollm2",
        "default_system": spec["default_system"], "cutoff_len": spec["cutoff_len"],
        "max_samples": spec["rows"], "overwrite_cache": True, "output_dir": spec["output_dir"],
        "overwrite_output_dir": True, "per_device_eval_batch_size": spec["batch"],
        "max_new_tokens": spec["max_new_tokens"], "do_sample": False, "report_to": "none",
        "bf16": spec["dtype"] == "bf16", "disable_tqdm": True,
    }
    if not torch.cuda.is_available():
        args["use_cpu"] = True
    run_exp(args=args)


if __name__ == "__main__":
    main(sys.argv[1])
