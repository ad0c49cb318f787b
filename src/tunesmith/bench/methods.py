"""``tunesmith bench methods``: every fine-tuning method on the same data, side by side.

Each method trains for a few steps through ``run_training`` in its own process (so that peak RSS is
that method's own), and the table reports trainable parameters, peak memory, trained tokens/s
and the loss reached, so users can choose. A method that cannot run on the model (BitFit on a
model without biases, the refused ``adapter``) gets its one-line reason instead of numbers.

    python -m tunesmith.bench.methods --steps 10 [--methods lora,ia3] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The identity workload (seed 004) on the bundled model, small enough for a CPU.
BASE_OVERRIDES = {
    "dataset": "identity", "dataset_dir": "examples/data",
    "placeholders": {"name": "Nova", "author": "Tunesmith Labs"},
    "per_device_train_batch_size": 4, "cutoff_len": 256, "logging_steps": 1,
    "save_strategy": "no", "plot_loss": False, "lr_scheduler_type": "constant", "dtype": "fp32",
}

# label -> overrides: each method with a learning rate in its usual range.
VARIANTS = {
    "full": {"method": "full", "learning_rate": 1e-5},
    "freeze": {"method": "freeze", "freeze_trainable_layers": 2, "learning_rate": 1e-5},
    "bitfit": {"method": "bitfit", "learning_rate": 1e-3},
    "lora": {"method": "lora", "lora_rank": 8, "lora_target": "all", "learning_rate": 2e-4},
    "lora-dora": {"method": "lora", "lora_rank": 8, "lora_target": "all", "use_dora": True,
                  "learning_rate": 2e-4},
    "lora-pissa": {"method": "lora", "lora_rank": 8, "lora_target": "all",
                   "init_lora_weights": "pissa_niter_4", "learning_rate": 2e-4},
    "qlora-nf4": {"method": "qlora", "quantization_bit": 4, "quantization_type": "nf4",
                  "double_quantization": True, "lora_rank": 8, "lora_target": "all",
                  "learning_rate": 2e-4},
    "qlora-8bit": {"method": "qlora", "quantization_bit": 8, "lora_rank": 8, "lora_target": "all",
                   "learning_rate": 2e-4},
    "adalora": {"method": "adalora", "adalora_init_r": 12, "adalora_target_r": 8,
                "lora_target": "all", "learning_rate": 2e-4},
    "ia3": {"method": "ia3", "learning_rate": 1e-3},
    "prefix": {"method": "prefix", "num_virtual_tokens": 16, "learning_rate": 1e-2},
    "prompt": {"method": "prompt", "num_virtual_tokens": 16, "learning_rate": 1e-2,
               "prompt_tuning_init_text": "You are a helpful assistant."},
    "ptuning": {"method": "ptuning", "num_virtual_tokens": 16, "learning_rate": 1e-3},
    "loha": {"method": "loha", "lycoris_rank": 8, "learning_rate": 2e-4},
    "lokr": {"method": "lokr", "lycoris_rank": 8, "learning_rate": 2e-4},
    "vera": {"method": "vera", "vera_rank": 256, "learning_rate": 2e-3},
    "oft": {"method": "oft", "oft_block_size": 32, "learning_rate": 2e-4},
    "adapter": {"method": "adapter"},
}
TRAINABLE = re.compile(r"trainable params: ([\d,]+) / ([\d,]+)")


def child_main(spec_json: str) -> int:
    """In the child: train one method, print one JSON line with its measurements."""
    import resource

    from ..config import load_config
    from ..errors import TunesmithError
    from ..train.run import run_training

    try:
        metrics = run_training(load_config(None, json.loads(spec_json)))
    except TunesmithError as exc:
        print(json.dumps({"error": str(exc)}))
        return 0
    metrics["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"metrics": metrics}))
    return 0


def _log_records(out: Path) -> list[dict]:
    path = out / "trainer_log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(label: str, result: dict, stderr: str, out: Path, wall: float) -> dict:
    """One table row from the child's JSON, its stderr and its ``trainer_log.jsonl``."""
    row = {"method": label, "wall_s": round(wall, 1)}
    if "error" in result:
        return {**row, "error": result["error"]}
    metrics = result["metrics"]
    found = TRAINABLE.findall(stderr)
    if found:
        trainable, total = (int(x.replace(",", "")) for x in found[-1])
        row.update(trainable=trainable, total=total)
    losses = [r["loss"] for r in _log_records(out) if "loss" in r]
    tokens = max((r.get("tokens_seen") or 0 for r in _log_records(out)), default=0)
    runtime = metrics.get("train_runtime") or 0
    row.update(peak_rss_mib=round(metrics["peak_rss_mib"]), first_loss=losses[0] if losses else None,
               last_loss=losses[-1] if losses else None, steps=len(losses),
               tokens_per_s=round(tokens / runtime, 1) if runtime else None)
    return row


def run_one(label: str, overrides: dict, root: Path, timeout_s: float) -> dict:
    """Train ``label`` in a child process under ``root/label``; return its table row."""
    out = root / label
    spec = {**overrides, "output_dir": str(out)}
    start = time.time()
    try:
        proc = subprocess.run([sys.executable, "-m", "tunesmith.bench.methods", "--child",
                               json.dumps(spec)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"method": label, "wall_s": round(time.time() - start, 1),
                "error": f"timed out after {timeout_s:.0f} s"}
    wall = time.time() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"method": label, "wall_s": round(wall, 1), "error": f"exit {proc.returncode}: {tail}"}
    return summarize(label, json.loads(lines[-1]), proc.stderr, out, wall)


def run_methods_table(cfg_overrides: dict, steps: int, methods: list[str],
                      work_dir: str | None = None, timeout_s: float = 900) -> list[dict]:
    """Train each of ``methods`` (labels of VARIANTS) for ``steps`` steps; one row each.

    Args:
        cfg_overrides: keys applied on top of the identity workload (e.g. a model).
        steps: optimizer steps per method.
        methods: labels from ``VARIANTS`` (a plain method name works too).
        work_dir: where the runs go (default: a temporary dir, removed afterwards).
    """
    root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="tunesmith-methods-"))
    rows = []
    try:
        for label in methods:
            variant = VARIANTS.get(label, {"method": label})
            overrides = {**BASE_OVERRIDES, **variant, **cfg_overrides, "max_steps": steps}
            rows.append(run_one(label, overrides, root, timeout_s))
            print(f"row: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)  # partial results
    finally:
        if not work_dir:
            shutil.rmtree(root, ignore_errors=True)
    return rows


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_methods_table(rows: list[dict]) -> str:
    """A Markdown table; failed methods show their reason."""
    head = ("| method | trainable params | % of total | peak RSS MiB | tokens/s | loss step 1 | "
            "loss last step | wall s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | not run: {r['error']} | | | | | | {r['wall_s']} |")
            continue
        pct = 100 * r["trainable"] / r["total"] if r.get("total") else None
        lines.append(f"| {r['method']} | {_num(r.get('trainable'), ',')} | {_num(pct, '.3f')} | "
                     f"{_num(r['peak_rss_mib'], ',')} | {_num(r['tokens_per_s'], '.1f')} | "
                     f"{_num(r['first_loss'], '.4f')} | {_num(r['last_loss'], '.4f')} "
                     f"(step {r['steps']}) | {r['wall_s']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunesmith.bench.methods",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--methods", default=",".join(VARIANTS),
                        help=f"comma-separated labels: {', '.join(VARIANTS)}")
    parser.add_argument("--work-dir", default=None, help="keep the runs here")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per method")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args(argv)
    if args.child:
        return child_main(args.child)
    from ..config_parse import parse_overrides

    rows = run_methods_table(parse_overrides(extra), args.steps,
                             [m.strip() for m in args.methods.split(",") if m.strip()],
                             work_dir=args.work_dir, timeout_s=args.timeout)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print(format_methods_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
