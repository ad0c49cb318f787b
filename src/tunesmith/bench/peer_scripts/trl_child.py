"""Train a bench workload with TRL's SFTTrainer (run with the TRL venv's python).

Input: a spec JSON (see tunesmith/bench/prepare.py). TRL gets the pre-tokenized rows
(input_ids + completion_mask from tunesmith's labels), so tokens and masks are identical.
``padding_free`` (the bench's ``best`` mode) flattens each batch into one sequence with
position ids; the rows are already cut at ``cutoff_len`` by tunesmith, so ``max_length`` is
left unset there (TRL 1.16 refuses ``padding_free`` with a ``max_length`` it would not enforce).
Checkpointing is TRL's default (on) unless the spec sets it.
"""

import json
import sys

from peer_args import trl_args, trl_lora, trl_model
from timing import BenchTiming


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in open(spec["rows"], encoding="utf-8")]
    data = Dataset.from_list([{"input_ids": r["input_ids"],
                               "completion_mask": [int(x != -100) for x in r["labels"]]}
                              for r in rows])
    model, tokenizer = trl_model(spec)
    base = trl_args(spec)
    if spec.get("padding_free"):
        base["max_length"] = None  # rows arrive cut at cutoff_len
    args = SFTConfig(**base, padding_free=bool(spec.get("padding_free")), completion_only_loss=True)
    peft = trl_lora(spec)
    timing = BenchTiming(spec["result"])
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft, callbacks=[timing])
    trainer.train()


if __name__ == "__main__":
    main(sys.argv[1])
