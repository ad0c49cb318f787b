"""Seeded W4: preference pairs shaped like LLaMA-Factory's ``dpo_en_demo`` (its file is not in the
installed package, so the bench ships a generated set like it).

ShareGPT ranking rows (``conversations`` ending on the user turn, ``chosen``/``rejected`` as one
``gpt`` message each). Lengths are like the demo's first 32 pairs: prompts of ~80-500 tokens and
answers of ~180-650 tokens (every side under cutoff_len 1024), 36,130 chosen + rejected tokens in
all with the bundled SmolLM2 template (the demo's first 32 pairs: 36,940).
``python -m tunesmith.bench.workloads.generate_w4`` rewrites ``w4.json``; the same seed always
gives byte-identical output.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from .generate import HERE, log_uniform, task, text_of


def w4_rows(n: int = 32, seed: int = 4) -> list[dict]:
    """``n`` ranking rows; chosen answers run a little longer than rejected ones, as in the demo."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = task(rng) + " " + text_of(rng, log_uniform(rng, 80, 480))
        chosen = text_of(rng, log_uniform(rng, 250, 640))
        rejected = text_of(rng, log_uniform(rng, 180, 600))
        rows.append({"conversations": [{"from": "human", "value": prompt}],
                     "chosen": {"from": "gpt", "value": chosen},
                     "rejected": {"from": "gpt", "value": rejected}})
    return rows


def write_w4(dest: Path = HERE) -> Path:
    path = dest / "w4.json"
    path.write_text(json.dumps(w4_rows(), indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_w4())
