"""Train bench workload W4 with TRL's DPOTrainer (run with the TRL venv's python).

TRL gets tunesmith's tokenized pairs (``prompt_ids``/``chosen_ids``/``rejected_ids``, the answer
being exactly tunesmith's labelled span), so both tools score the same tokens; DPOTrainer's own
dataset preparation (templating and tokenizing text) is skipped for that. The reference is the
model with the LoRA adapter disabled (TRL's default for a new adapter), as in tunesmith.
"""

import json
import sys

from peer_args import trl_args, trl_lora, trl_model
from timing import BenchTiming


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = [json.loads(line) for line in open(spec["rows"], encoding="utf-8")]
    data = Dataset.from_list([{k: r[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")}
                              for r in rows])
    model, tokenizer = trl_model(spec)
    args = DPOConfig(**trl_args(spec), beta=spec["pref_beta"], loss_type=[spec["pref_loss"]])
    peft = trl_lora(spec)
    DPOTrainer._prepare_dataset = lambda self, dataset, *a, **k: dataset  # already tokenized
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft, callbacks=[BenchTiming(spec["result"])])
    trainer.train()


if __name__ == "__main__":
    main(sys.argv[1])
