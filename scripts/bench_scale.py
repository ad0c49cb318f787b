"""Measurements for data at scale (docs/scale.md): generated chat data, streaming memory, and
tokenization throughput against LLaMA-Factory.

    python scripts/bench_scale.py gen OUT.jsonl --rows 20000          # or --gigabytes 2
    python scripts/bench_scale.py tokenize ROWS.jsonl --workers 1 2 --repeats 2
    python scripts/bench_scale.py rss BIG.jsonl SMALL.jsonl --steps 50

``tokenize`` times tunesmith's in-memory path (``load_data`` from a cold token cache: read,
convert, render, tokenize, cache) and LLaMA-Factory 0.9.5's ``get_dataset`` (read, align,
tokenize with ``num_proc``) on the same file with the same ``preprocessing_num_workers``,
interleaved, and prints rows/s. ``rss`` trains the bundled model ``--steps`` steps with
``streaming: true`` on each file and prints the peak RSS (``/usr/bin/time -v``). Run heavy ones
under ``flock /tmp/tunesmith-heavy.lock``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("the a model data memory stream token batch step loss rank node shard buffer row file "
         "answer question learns trains reads writes keeps counts drops packs mixes").split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def gen(out: Path, rows: int | None, gigabytes: float | None, seed: int = 0) -> int:
    """Chat rows (1-3 turns, 10-200 words per answer) until ``rows`` or ``gigabytes``."""
    rng, n, size = random.Random(seed), 0, 0
    limit = int(gigabytes * 1e9) if gigabytes else None
    with out.open("w", encoding="utf-8") as fh:
        while (rows is None or n < rows) and (limit is None or size < limit):
            messages = []
            for _ in range(rng.randint(1, 3)):
                messages += [{"role": "user", "content": f"{n}: {_text(rng, 5, 40)}?"},
                             {"role": "assistant", "content": _text(rng, 10, 200)}]
            line = json.dumps({"messages": messages}) + "\n"
            fh.write(line)
            size += len(line)
            n += 1
    return n


def ours(rows: Path, workers: int, cutoff: int) -> tuple[int, float]:
    """tunesmith's load_data from a cold cache: (examples, seconds)."""
    from tunesmith.config import load_config
    from tunesmith.data.load import load_data
    from tunesmith.train.stages import tokenizer_and_template

    cfg = load_config(None, {"dataset": str(rows), "cutoff_len": cutoff, "overwrite_cache": True,
                             "preprocessing_num_workers": workers})
    tokenizer, template = tokenizer_and_template(cfg, quiet=True)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        data = load_data(cfg, tokenizer, template, cache_root=Path(cache))
        return len(data.train), time.perf_counter() - start


def llamafactory(rows: Path, workers: int, cutoff: int, venvs: Path) -> tuple[int, float]:
    """LLaMA-Factory's get_dataset in its venv: (examples, seconds)."""
    from tunesmith.bench.peers import command, get_peer, venv_python
    from tunesmith.model.bundled import ensure_bundled

    peer = get_peer("llamafactory")
    with tempfile.TemporaryDirectory() as work:
        spec = {"model": str(ensure_bundled("smollm2-135m", quiet=True)), "rows": str(rows),
                "workers": workers, "cutoff_len": cutoff, "work_dir": work,
                "result": os.path.join(work, "result.json")}
        spec_path = Path(work) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        cmd, env = command(peer, venv_python(venvs.parent, peer), spec_path)
        cmd[1] = cmd[1].replace("lf_child.py", "lf_tokenize.py")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"LLaMA-Factory failed:\n{done.stderr[-3000:]}")
        result = json.loads(Path(spec["result"]).read_text())
        return result["rows"], result["seconds"]


def tokenize(args) -> None:
    n_rows = sum(1 for _ in open(args.rows, encoding="utf-8"))
    print(f"{args.rows}: {n_rows} rows, cutoff_len {args.cutoff}; rows/s (examples made)")
    print("| tool | preprocessing_num_workers | run | seconds | rows/s | examples |")
    print("|---|---|---|---|---|---|")
    for workers in args.workers:
        for run in range(args.repeats):  # interleaved: a noisy neighbour hits both alike
            for name, fn in (("tunesmith", lambda: ours(args.rows, workers, args.cutoff)),
                             ("LLaMA-Factory", lambda: llamafactory(args.rows, workers, args.cutoff,
                                                                    args.venvs))):
                examples, seconds = fn()
                print(f"| {name} | {workers} | {run + 1} | {seconds:.1f} | {n_rows / seconds:,.0f} "
                      f"| {examples} |", flush=True)


def _peak_rss_mb(cmd: list[str], log: Path) -> float:
    with log.open("w") as fh:
        done = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=fh, stderr=subprocess.STDOUT)
    text = log.read_text()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed; see {log}")
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024


def rss(args) -> None:
    print(f"model {args.model}, batch 4, cutoff_len {args.cutoff}, buffer_size 16384")
    print("| data | file size | streaming | steps | peak RSS (MiB) | wall s |")
    print("|---|---|---|---|---|---|")
    for path in (args.big, args.small):
        out = Path(tempfile.mkdtemp(prefix="scale-rss-"))
        cmd = [sys.executable, "-m", "tunesmith.cli", "train", f"dataset={path}",
               f"model_name_or_path={args.model}",
               f"output_dir={out}", "streaming=true", f"max_steps={args.steps}", "save_strategy=no",
               "per_device_train_batch_size=4", f"cutoff_len={args.cutoff}", "logging_steps=10",
               "plot_loss=false", "gradient_checkpointing=false"]
        start = time.perf_counter()
        mb = _peak_rss_mb(cmd, out / "time.log")
        wall, size = time.perf_counter() - start, path.stat().st_size
        print(f"| {path.name} | {size / 1e9:.3f} GB | true | {args.steps} | {mb:,.0f} | {wall:.0f} |",
              flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    g = sub.add_parser("gen", help="write generated chat rows")
    g.add_argument("out", type=Path)
    g.add_argument("--rows", type=int)
    g.add_argument("--gigabytes", type=float)
    t = sub.add_parser("tokenize", help="rows/s: tunesmith vs LLaMA-Factory preprocessing")
    t.add_argument("rows", type=Path)
    t.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    t.add_argument("--repeats", type=int, default=2)
    t.add_argument("--cutoff", type=int, default=1024)
    t.add_argument("--venvs", type=Path, default=Path("/work/peers/venvs"),
                   help="the folder holding venvs/llamafactory (as tunesmith bench installs it)")
    r = sub.add_parser("rss", help="peak RSS of a streaming run on a big and a small file")
    r.add_argument("big", type=Path)
    r.add_argument("small", type=Path)
    r.add_argument("--steps", type=int, default=50)
    r.add_argument("--cutoff", type=int, default=256)
    r.add_argument("--model", default="smollm2-135m", help="bundled name or a model dir")
    args = p.parse_args()
    if args.what == "gen":
        print(f"{gen(args.out, args.rows, args.gigabytes)} rows -> {args.out}")
    else:
        {"tokenize": tokenize, "rss": rss}[args.what](args)


if __name__ == "__main__":
    main()
