"""Train bench workload W5 with TRL's GRPOTrainer (run with the TRL venv's python).

Input: a spec JSON (see tunesmith/bench/grpo.py): the prompts as chat messages, the shared
settings, the output dir and the timing result path. The rewards are copies of tunesmith's
``format_think`` and ``bench/w5_reward.py``'s ``length`` (their cost is negligible beside
generation and training).
"""

import json
import sys

from timing import BenchTiming


def format_think(completions, **kwargs):
    out = []
    for c in completions:
        text = (c[0]["content"] if isinstance(c, list) else c).strip()
        opened = text.find("<think>")
        if opened < 0:
            out.append(0.0)
            continue
        score = 0.25 if opened == 0 else 0.1
        closed = text.find("</think>", opened + 7)
        if closed >= 0:
            score += 0.25 if text[opened + 7:closed].strip() else 0.1
            answer = text[closed + 8:].strip()
            score += 0.5 if answer and "<think>" not in answer else 0.0
        out.append(score)
    return out


def length(completions, **kwargs):
    return [min(len(c[0]["content"] if isinstance(c, list) else c), 256) / 256
            for c in completions]


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[spec["dtype"]]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=dtype)
    g = spec["num_generations"]
    args = GRPOConfig(output_dir=spec["output_dir"], per_device_train_batch_size=spec["prompts_per_step"] * g,
                      num_generations=g, max_completion_length=spec["max_completion_length"],
                      max_steps=spec["steps"], learning_rate=spec["learning_rate"],
                      lr_scheduler_type=spec["lr_scheduler_type"], seed=spec["seed"],
                      temperature=spec["temperature"], top_p=spec["top_p"], top_k=spec["top_k"],
                      beta=spec["beta"], loss_type=spec["loss_type"], logging_steps=1,
                      save_strategy="no", report_to="none", disable_tqdm=True,
                      gradient_checkpointing=spec["gradient_checkpointing"],
                      bf16=spec["dtype"] == "bf16", use_cpu=True)
    peft = LoraConfig(r=spec["lora_rank"], lora_alpha=spec["lora_alpha"], lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    data = Dataset.from_list([{"prompt": m} for m in spec["prompts"]])
    timing = BenchTiming(spec["result"])
    trainer = GRPOTrainer(model=model, reward_funcs=[format_think, length], args=args,
                          train_dataset=data, processing_class=tokenizer, peft_config=peft,
                          callbacks=[timing])
    trainer.train()


if __name__ == "__main__":
    main(sys.argv[1])
