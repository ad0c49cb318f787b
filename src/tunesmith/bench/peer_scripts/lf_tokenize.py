"""Time LLaMA-Factory's SFT preprocessing of a chat JSONL (run with the LLaMA-Factory venv's python).

Usage: lf_tokenize.py SPEC.json, with ``model``, ``rows`` (a JSONL of ``messages`` rows),
``workers`` (``preprocessing_num_workers``), ``cutoff_len``, ``work_dir`` and ``result``. The
measured part is ``llamafactory.data.get_dataset``: reading the file (datasets' JSON loader),
aligning it to LLaMA-Factory's format and tokenizing it with ``num_proc`` workers, from a cold
datasets cache (``HF_DATASETS_CACHE`` under work_dir), as tunesmith's measurement starts from a
cold token cache.
"""

import json
import os
import sys
import time


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    work = spec["work_dir"]
    os.makedirs(work, exist_ok=True)
    os.environ["HF_DATASETS_CACHE"] = os.path.join(work, "hf_datasets_cache")
    data_dir = os.path.join(work, "lf_data")
    os.makedirs(data_dir, exist_ok=True)
    info = {"bench": {"file_name": os.path.abspath(spec["rows"]), "formatting": "sharegpt",
                      "columns": {"messages": "messages"},
                      "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                               "assistant_tag": "assistant", "system_tag": "system"}}}
    json.dump(info, open(os.path.join(data_dir, "dataset_info.json"), "w"))
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    args = {"model_name_or_path": spec["model"], "stage": "sft", "do_train": True,
            "finetuning_type": "lora", "dataset": "bench", "dataset_dir": data_dir,
            "template": "smollm2", "cutoff_len": spec["cutoff_len"], "overwrite_cache": True,
            "preprocessing_num_workers": spec["workers"], "output_dir": os.path.join(work, "out"),
            "report_to": "none", "use_cpu": True}
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    start = time.perf_counter()
    module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    seconds = time.perf_counter() - start
    n = len(module["train_dataset"])
    json.dump({"rows": n, "seconds": seconds}, open(spec["result"], "w"))


if __name__ == "__main__":
    main(sys.argv[1])
