"""Train a bench workload with TRL's SFTTrainer (run with the TRL venv's python).

Input: a spec JSON (see tunesmith/bench/prepare.py). TRL gets the pre-tokenized rows
(input_ids + completion_mask from tunesmith's labels), so tokens and masks are identical.
``padding_free`` (the bench's ``best`` mode) flattens each batch into one sequence with
position ids; checkpointing is TRL's default (on) unless the spec sets it.
"""

import json
import sys

from timing import BenchTiming


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in open(spec["rows"], encoding="utf-8")]
    data = Dataset.from_list([{"input_ids": r["input_ids"],
                               "completion_mask": [int(x != -100) for x in r["labels"]]}
                              for r in rows])
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[spec["dtype"]]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=dtype)
    args = SFTConfig(output_dir=spec["output_dir"], per_device_train_batch_size=spec["batch"],
                     learning_rate=spec["learning_rate"], num_train_epochs=spec["epochs"],
                     max_steps=spec["max_steps"], lr_scheduler_type=spec["lr_scheduler_type"],
                     seed=spec["seed"], logging_steps=1, logging_first_step=True,
                     save_strategy="no", report_to="none", disable_tqdm=True,
                     **({} if spec.get("gradient_checkpointing") is None else
                        {"gradient_checkpointing": spec["gradient_checkpointing"]}),
                     padding_free=bool(spec.get("padding_free")),
                     max_length=spec["cutoff_len"], completion_only_loss=True,
                     train_sampling_strategy="sequential", bf16=False, use_cpu=True)
    peft = LoraConfig(r=spec["lora_rank"], lora_alpha=spec["lora_alpha"], lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    timing = BenchTiming(spec["result"])
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft, callbacks=[timing])
    trainer.train()


if __name__ == "__main__":
    main(sys.argv[1])
