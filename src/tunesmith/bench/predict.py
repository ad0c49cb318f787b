"""``tunesmith bench predict``: batched generation on a dataset, tunesmith against LLaMA-Factory.

Both tools run their own CLI path for predicting (``--do_predict --predict_with_generate``) on the
same rows (the first W2 instructions), greedy, the same ``max_new_tokens`` and batch size, each in
its own process. Generated tokens are counted the same way for both (the predictions re-tokenized
with the model's tokenizer); tokens/s is over each tool's own ``predict_runtime`` (generation,
not loading), wall time and peak RSS come from outside.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .prepare import SMOLLM2_SYSTEM
from .run import measure
from .workloads import get_workload


def write_rows(out: Path, rows: int) -> Path:
    """The first ``rows`` W2 rows as an alpaca file with a LLaMA-Factory ``dataset_info.json``."""
    data = json.loads(get_workload("W2").path.read_text(encoding="utf-8"))[:rows]
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.json").write_text(json.dumps(data), encoding="utf-8")
    (out / "dataset_info.json").write_text(json.dumps(
        {"bench": {"file_name": "data.json", "formatting": "alpaca"}}), encoding="utf-8")
    return out / "data.json"


def ours(spec: dict, run_dir: Path) -> tuple[list[str], dict]:
    cmd = [sys.executable, "-m", "tunesmith.cli", "train", "--do_predict", "--predict_with_generate",
           f"dataset={spec['data_file']}", f"max_samples={spec['rows']}",
           f"max_new_tokens={spec['max_new_tokens']}", f"cutoff_len={spec['cutoff_len']}",
           f"per_device_eval_batch_size={spec['batch']}", f"output_dir={run_dir / 'output'}",
           f"dtype={spec['dtype']}", "metrics=bleu"]
    return cmd, dict(os.environ, TOKENIZERS_PARALLELISM="false")


def llamafactory(spec: dict, run_dir: Path, out: Path) -> tuple[list[str], dict]:
    from .peers import PEERS, command, install
    from .run import say

    peer = PEERS["llamafactory"]
    python = install(peer, out, say)
    path = run_dir / "spec.json"
    path.write_text(json.dumps({**spec, "output_dir": str(run_dir / "output")}), encoding="utf-8")
    cmd, env = command(peer, python, path)
    cmd[1] = str(Path(cmd[1]).with_name("lf_predict.py"))
    return cmd, env


def generated_tokens(predictions: Path, tokenizer) -> int:
    rows = [json.loads(x) for x in predictions.read_text(encoding="utf-8").splitlines() if x]
    return sum(len(tokenizer(r["predict"], add_special_tokens=False)["input_ids"]) for r in rows)


def run_one(name: str, cmd: list[str], env: dict, run_dir: Path, tokenizer) -> dict:
    outer = measure(cmd, env, run_dir / "log.txt", 7200)
    results = run_dir / "output" / "predict_results.json"
    if outer["returncode"] != 0 or not results.is_file():
        return {"tool": name, "error": f"exit {outer['returncode']} (log: {run_dir / 'log.txt'})"}
    runtime = json.loads(results.read_text(encoding="utf-8"))["predict_runtime"]
    tokens = generated_tokens(run_dir / "output" / "generated_predictions.jsonl", tokenizer)
    return {"tool": name, "tokens": tokens, "predict_s": round(runtime, 2),
            "tokens_per_s": round(tokens / runtime, 1),
            "wall_s": round(outer["t_exit"] - outer["t_launch"], 1),
            "peak_rss_mb": round(outer["peak_rss_mb"])}


def bench_predict(rows: int = 32, new_tokens: int = 256, batch: int = 8, dtype: str = "auto",
                  peers: list[str] | None = None, out: Path = Path("bench_runs")) -> dict:
    """tunesmith and (optionally) LLaMA-Factory predicting the same rows; ratio of tokens/s."""
    from ..hardware import resolve_dtype
    from ..model.load import load_tokenizer, resolve_model_path
    from ..config import load_config

    base = Path(out) / "predict"
    cfg = load_config(None, {})
    model = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, model)
    spec = {"model": str(model), "rows": rows, "max_new_tokens": new_tokens, "batch": batch,
            "dtype": resolve_dtype(dtype), "cutoff_len": 2048, "default_system": SMOLLM2_SYSTEM,
            "data_file": str(write_rows(base / "data", rows)), "dataset_dir": str(base / "data")}
    runs = []
    for name in ["tunesmith", *(peers or [])]:
        run_dir = base / name
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd, env = ours(spec, run_dir) if name == "tunesmith" else llamafactory(spec, run_dir, Path(out))
        runs.append(run_one(name, cmd, env, run_dir, tokenizer))
    result = {"spec": spec, "runs": runs}
    ok = {r["tool"]: r for r in runs if "error" not in r}
    if "tunesmith" in ok and "llamafactory" in ok:
        result["ratio"] = round(ok["tunesmith"]["tokens_per_s"] / ok["llamafactory"]["tokens_per_s"], 2)
    (base / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def format_predict(result: dict) -> str:
    s = result["spec"]
    lines = [f"{s['rows']} W2 rows, greedy, max_new_tokens {s['max_new_tokens']}, batch {s['batch']}, "
             f"{s['dtype']}", f"{'tool':>14} {'tokens':>7} {'predict s':>9} {'tok/s':>7} "
             f"{'wall s':>7} {'peak MiB':>8}"]
    for r in result["runs"]:
        if "error" in r:
            lines.append(f"{r['tool']:>14} failed: {r['error']}")
            continue
        lines.append(f"{r['tool']:>14} {r['tokens']:>7} {r['predict_s']:>9} {r['tokens_per_s']:>7} "
                     f"{r['wall_s']:>7} {r['peak_rss_mb']:>8}")
    if "ratio" in result:
        lines.append(f"tunesmith / LLaMA-Factory tokens/s: {result['ratio']}x")
    return "\n".join(lines)
