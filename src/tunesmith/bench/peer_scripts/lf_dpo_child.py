"""Train bench workload W4 with LLaMA-Factory's ``stage: dpo`` (run with its venv's python).

LLaMA-Factory gets tunesmith's tokenized pairs through its ``tokenized_path`` (a pairwise
DatasetDict: chosen_/rejected_ input_ids, attention_mask, labels), so the token sequences and
answer masks equal the other tools'. LoRA's reference is the adapter switched off, as in
tunesmith. ``torchaudio`` is a stand-in module on PYTHONPATH (see lf_child.py).
"""

import json
import os
import sys

from peer_args import lf_args
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

    args = lf_args(spec, stage="dpo", pref_beta=spec["pref_beta"], pref_loss=spec["pref_loss"],
                   tokenized_path=tokenized_dir(spec))
    run_exp(args=args, callbacks=[BenchTiming(spec["result"])])


if __name__ == "__main__":
    main(sys.argv[1])
