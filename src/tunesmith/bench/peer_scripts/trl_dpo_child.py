"""Train bench workload W4 with TRL's DPOTrainer (run with the TRL venv's python).

TRL gets tunesmith's tokenized pairs (``prompt_ids``/``chosen_ids``/``rejected_ids``, the answer
being exactly tunesmith's labelled span), so both tools score the same tokens; DPOTrainer's own
dataset preparation (templating and tokenizing text) is skipped for that. The reference is the
model with the LoRA adapter disabled (TRL's default for a new adapter), as in tunesmith.
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
    from trl import DPOConfig, DPOTrainer

    rows = [json.loads(line) for line in open(spec["rows"], encoding="utf-8")]
    data = Dataset.from_list([{k: r[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")}
                              for r in rows])
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[spec["dtype"]]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=dtype)
    args = DPOConfig(output_dir=spec["output_dir"], per_device_train_batch_size=spec["batch"],
                     learning_rate=spec["learning_rate"], num_train_epochs=spec["epochs"],
                     max_steps=spec["max_steps"], lr_scheduler_type=spec["lr_scheduler_type"],
                     seed=spec["seed"], logging_steps=1, logging_first_step=True,
                     save_strategy="no", report_to="none", disable_tqdm=True,
                     gradient_checkpointing=spec["gradient_checkpointing"],
                     max_length=spec["cutoff_len"], beta=spec["pref_beta"],
                     loss_type=[spec["pref_loss"]], train_sampling_strategy="sequential",
                     bf16=False, use_cpu=True)
    peft = LoraConfig(r=spec["lora_rank"], lora_alpha=spec["lora_alpha"], lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    DPOTrainer._prepare_dataset = lambda self, dataset, *a, **k: dataset  # already tokenized
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft, callbacks=[BenchTiming(spec["result"])])
    trainer.train()


if __name__ == "__main__":
    main(sys.argv[1])
