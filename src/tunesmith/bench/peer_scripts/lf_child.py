"""Train a bench workload with LLaMA-Factory's run_exp (run with the LLaMA-Factory venv's python).

LLaMA-Factory gets tunesmith's tokenized rows through its own ``tokenized_path`` mechanism (a
``datasets`` dir with input_ids, attention_mask and labels, written here inside the measured run),
so the token sequences and label masks are the same as every other tool's. With
``neat_packing`` (the bench's ``best`` mode) the rows are packed by LLaMA-Factory's own packing
code (``PackedSupervisedDatasetProcessor``: greedy knapsack to ``cutoff_len``, segment ids as the
attention mask, positions restarting per row), fed tunesmith's token ids instead of its own
tokenization; a packed step then holds more rows than a padded one, so the trained tokens are
counted from the packed sequences the run consumes. Its ``smollm2``
template renders the same input ids but also labels the newline after each ``<|im_end|>`` (one
extra, easily predicted target per turn): with its own tokenization the first-step loss is lower
and the work is not equal. ``torchaudio`` is a stand-in module on PYTHONPATH (set by the bench):
LLaMA-Factory imports it at module level, text SFT never uses it.
"""

import json
import os
import sys

from peer_args import lf_args
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


def packed_dir(spec):
    """tunesmith's rows packed the way LLaMA-Factory packs for ``neat_packing``, and the real
    tokens in the packed sequences that ``max_steps`` (or the epochs) will train."""
    import shutil
    from types import SimpleNamespace

    from datasets import Dataset, DatasetDict
    from llamafactory.data.processor.supervised import PackedSupervisedDatasetProcessor

    rows = [json.loads(line) for line in open(spec["rows"], encoding="utf-8")]
    feed = iter(rows)

    class Packer(PackedSupervisedDatasetProcessor):
        def _encode_data_example(self, **kwargs):  # tunesmith's ids instead of a re-tokenization
            row = next(feed)
            return row["input_ids"], row["labels"]

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    packer = Packer(template=None, tokenizer=tokenizer, processor=None,
                    data_args=SimpleNamespace(cutoff_len=spec["cutoff_len"], neat_packing=True))
    n = len(rows)
    packed = packer.preprocess_dataset({"_prompt": [[{}]] * n, "_response": [[{}]] * n,
                                        "_system": [""] * n, "_tools": [""] * n,
                                        "_images": [None] * n, "_videos": [None] * n,
                                        "_audios": [None] * n})
    packed = pad_to_eight(dict(packed), tokenizer.pad_token_id)
    path = os.path.join(os.path.dirname(spec["output_dir"]), "lf_packed")
    shutil.rmtree(path, ignore_errors=True)
    DatasetDict({"train": Dataset.from_dict(packed)}).save_to_disk(path)
    return path, trained_packed_tokens(packed["attention_mask"], spec)


def pad_to_eight(packed: dict, pad_id: int) -> dict:
    """Pad each packed sequence (``cutoff_len`` + 1 long) to a multiple of 8 here.

    LLaMA-Factory 0.9.5's SFT collator pads ``input_ids`` to a multiple of 8 but not
    ``position_ids`` ("pad_to_multiple_of ignore this"), so with ``cutoff_len: 1024`` every
    packed step fails in the rotary embedding (1032 vs 1025 positions). Padding all the columns
    the same way first (pad token, attention 0, position 0, label ignored) leaves the collator
    nothing to pad; the knapsack and the real tokens are LLaMA-Factory's own.
    """
    out = {k: list(v) for k, v in packed.items()}
    for i, ids in enumerate(out["input_ids"]):
        extra = -len(ids) % 8
        if not extra:
            continue
        out["input_ids"][i] = ids + [pad_id] * extra
        out["attention_mask"][i] = out["attention_mask"][i] + [0] * extra
        out["position_ids"][i] = out["position_ids"][i] + [0] * extra
        out["labels"][i] = out["labels"][i] + [-100] * extra
        if "packing_params" in out:
            params = dict(out["packing_params"][i])
            params["sequence_boundaries"] = list(params["sequence_boundaries"])
            params["sequence_boundaries"][-1] += extra
            params["right_padding_length"] = params.get("right_padding_length", 0) + extra
            out["packing_params"][i] = params
    return out


def trained_packed_tokens(masks, spec) -> int:
    """Real tokens in the packed sequences the run trains (in order: shuffling is off)."""
    import math

    per_step = spec["batch"]
    steps = spec["max_steps"] if spec["max_steps"] > 0 else math.ceil(len(masks) / per_step) * spec["epochs"]
    seqs = [masks[i % len(masks)] for i in range(int(steps) * per_step)]
    return sum(sum(1 for x in m if x) for m in seqs)


def main(spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    from llamafactory.train.tuner import run_exp

    args = lf_args(spec, stage="sft")
    extra = {}
    if spec.get("neat_packing"):
        args["tokenized_path"], extra["tokens"] = packed_dir(spec)
        args["neat_packing"] = True
    else:
        args["tokenized_path"] = tokenized_dir(spec)
    run_exp(args=args, callbacks=[BenchTiming(spec["result"], **extra)])


if __name__ == "__main__":
    main(sys.argv[1])
