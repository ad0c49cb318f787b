"""Seeded generators for the bench's synthetic workloads (W2 instructions, W3 multi-turn chats).

The text is made from small word and phrase pools, not copied from any dataset: what matters for a
speed benchmark is a realistic *spread of lengths* (W2: prompt + response from ~20 to ~1000
tokens, log-uniform, so most rows are short and a few are long, as in real instruction sets) and
real tokenizer work. ``python -m tunesmith.bench.workloads.generate`` rewrites the shipped files;
the same seed always gives byte-identical output.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKENS_PER_WORD = 1.3  # aim only; high=1150 lands the longest rows near 1000 real tokens

SUBJECTS = ["the river", "a small bakery", "the old library", "our team", "the city council",
            "a young engineer", "the garden", "the museum", "a local farmer", "the orchestra",
            "the research group", "a mountain village", "the school", "the market", "a sailor"]
VERBS = ["planned", "explained", "measured", "rebuilt", "described", "questioned", "improved",
         "organised", "studied", "painted", "tested", "compared", "collected", "designed"]
OBJECTS = ["a new bridge", "the water supply", "its yearly budget", "the evening schedule",
           "an unusual recipe", "the weather records", "a set of maps", "the winter harvest",
           "a careful experiment", "the train timetable", "a community festival", "the solar panels"]
TAILS = ["before the first snow", "with great patience", "after many discussions",
         "using simple tools", "to everyone's surprise", "in less than a week", "for the visitors",
         "despite the rain", "with help from friends", "as the sun went down"]
TASKS = ["Summarise the following notes.", "Write a short story about {s}.",
         "Explain how {s} {v} {o}.", "List the steps {s} took.", "Rewrite this text more formally.",
         "Give three reasons why {s} {v} {o}.", "Translate the idea into plain English.",
         "Describe {o} in detail.", "What happened when {s} {v} {o}?", "Write a letter about {o}."]


def sentence(rng: random.Random) -> str:
    s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}."
    return s[0].upper() + s[1:]


def text_of(rng: random.Random, n_tokens: int) -> str:
    """Sentences until about ``n_tokens`` tokens (at least one sentence)."""
    words, out = 0, []
    while not out or words * TOKENS_PER_WORD < n_tokens:
        s = sentence(rng)
        out.append(s)
        words += len(s.split())
    return " ".join(out)


def log_uniform(rng: random.Random, low: float, high: float) -> int:
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def task(rng: random.Random) -> str:
    return rng.choice(TASKS).format(s=rng.choice(SUBJECTS), v=rng.choice(VERBS), o=rng.choice(OBJECTS))


def w2_rows(n: int = 500, seed: int = 2, low: int = 20, high: int = 1150) -> list[dict]:
    """Alpaca rows whose prompt + response total is log-uniform in [low, high] tokens."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        total = log_uniform(rng, low, high) - 12  # template tokens around the turn
        prompt_share = rng.uniform(0.1, 0.6)
        context = max(0, int(total * prompt_share) - 10)
        rows.append({"instruction": task(rng),
                     "input": text_of(rng, context) if context > 8 else "",
                     "output": text_of(rng, max(4, total - context - 10))})
    return rows


def w3_rows(n: int = 200, seed: int = 3) -> list[dict]:
    """ShareGPT-style conversations of 2-5 exchanges, each turn 10-200 tokens."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        turns = []
        for _ in range(rng.randint(2, 5)):
            user = task(rng) + " " + text_of(rng, log_uniform(rng, 5, 80))
            turns += [{"from": "human", "value": user},
                      {"from": "gpt", "value": text_of(rng, log_uniform(rng, 10, 200))}]
        rows.append({"conversations": turns})
    return rows


def write_all(dest: Path = HERE) -> list[Path]:
    """(Re)write w2.json and w3.json next to this module."""
    paths = []
    for name, rows in (("w2.json", w2_rows()), ("w3.json", w3_rows())):
        path = dest / name
        path.write_text(json.dumps(rows, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_all():
        print(p)
