"""``tunesmith bench train --workload W5``: GRPO, tunesmith against TRL's GRPOTrainer.

The same 16 arithmetic prompts (``workloads/w5.json``, rendered with the model's own chat
template by both tools), the bundled SmolLM2-135M, LoRA r8 (alpha 16, dropout 0) on every
linear layer, 2 prompts x 4 generations per step, 64 new tokens sampled at temperature 1.0
(top_p 1, no top_k), beta 0 (no reference pass), loss dapo, lr 5e-4 cosine, gradient
checkpointing on, the ``format_think`` reward plus a length reward (``w5_reward.py``: it keeps
every group's advantages non-zero, so both tools run the loss pass on every row), 8 steps. Sampling differs between the tools, so
the work is compared per token: tokens/s = the prompt + completion tokens trained on (both count
them the same way, unpadded) / training time; peak RSS is the child process's maximum.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

from .run import interleaved, measure, say

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "workloads" / "w5.json"
W5 = {"prompts_per_step": 2, "num_generations": 4, "max_completion_length": 64, "steps": 8,
      "lora_rank": 8, "lora_alpha": 16, "learning_rate": 5e-4, "lr_scheduler_type": "cosine",
      "seed": 42, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "beta": 0.0,
      "loss_type": "dapo", "gradient_checkpointing": True}


def w5_spec(model: str, steps: int, dtype: str) -> dict:
    """The settings both tools run with (the prompts as chat messages for TRL)."""
    rows = json.loads(PROMPTS.read_text(encoding="utf-8"))
    return {**W5, "steps": steps or W5["steps"], "model": model, "dtype": dtype,
            "prompts": [[{"role": "user", "content": r["instruction"]}] for r in rows]}


def ours_config(spec: dict, run_dir: Path) -> dict:
    """tunesmith's config for the spec."""
    return {"stage": "grpo", "model_name_or_path": spec["model"], "dataset": str(PROMPTS),
            "method": "lora", "lora_rank": spec["lora_rank"], "lora_alpha": spec["lora_alpha"],
            "lora_dropout": 0.0, "lora_target": "all", "dtype": spec["dtype"],
            "per_device_train_batch_size": spec["prompts_per_step"],
            "num_generations": spec["num_generations"],
            "max_completion_length": spec["max_completion_length"], "max_steps": spec["steps"],
            "learning_rate": spec["learning_rate"],
            "lr_scheduler_type": spec["lr_scheduler_type"], "seed": spec["seed"],
            "temperature": spec["temperature"], "top_p": spec["top_p"], "top_k": spec["top_k"],
            "beta": spec["beta"], "loss_type": spec["loss_type"],
            "gradient_checkpointing": spec["gradient_checkpointing"],
            "reward_funcs": ["format_think", "tunesmith.bench.w5_reward:length"],
            "logging_steps": 1, "save_strategy": "no",
            "plot_loss": False, "log_completions_steps": 0, "output_dir": str(run_dir / "output")}


def ours_command(spec: dict, run_dir: Path, result: Path) -> tuple[list[str], dict]:
    config = run_dir / "tunesmith.yaml"
    config.write_text(yaml.safe_dump(ours_config(spec, run_dir), sort_keys=False),
                      encoding="utf-8")
    run = run_dir / "run.json"
    run.write_text(json.dumps({"config": str(config), "result": str(result)}), encoding="utf-8")
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return [sys.executable, "-m", "tunesmith.bench.child_ours", str(run)], env


def trl_command(spec: dict, run_dir: Path, result: Path, out: Path) -> tuple[list[str], dict]:
    from .peers import command, get_peer, install

    peer = get_peer("trl")
    python = install(peer, out, say)
    path = run_dir / "spec.json"
    path.write_text(json.dumps({**spec, "output_dir": str(run_dir / "output"),
                                "result": str(result)}, indent=1), encoding="utf-8")
    cmd, env = command(peer, python, path)
    return [cmd[0], str(HERE / "peer_scripts" / "trl_grpo_child.py"), *cmd[2:]], env


def summarize(tool: str, outer: dict, inner: dict) -> dict:
    train_s = inner["t_end"] - inner["t_begin"]
    tokens = int(inner.get("tokens_seen") or 0)
    return {"tool": tool, "steps": inner.get("steps"), "tokens": tokens,
            "train_s": round(train_s, 2), "tokens_per_s": round(tokens / train_s, 2),
            "s_per_step": round(train_s / max(inner.get("steps") or 1, 1), 2),
            "wall_s": round(outer["t_exit"] - outer["t_launch"], 2),
            "peak_rss_mb": round(outer["peak_rss_mb"], 1)}


def run_one(tool: str, cmd: list[str], env: dict, run_dir: Path, result: Path,
            timeout_s: float) -> dict:
    log = run_dir / "log.txt"
    outer = measure(cmd, env, log, timeout_s)
    if outer["returncode"] != 0 or not result.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or [""]
        return {"tool": tool, "error": f"exit {outer['returncode']}: {tail[0][:200]} (log: {log})"}
    summary = summarize(tool, outer, json.loads(result.read_text(encoding="utf-8")))
    skipped = skipped_rows(run_dir / "output" / "trainer_log.jsonl")
    return summary if skipped is None else {**summary, "rows_skipped": skipped}


def skipped_rows(log: Path) -> float | None:
    """The share of rows whose loss pass tunesmith skipped (advantage 0), over the run's steps."""
    if not log.is_file():
        return None
    shares = [row["frac_rows_skipped"] for row in map(json.loads, log.read_text().splitlines())
              if "frac_rows_skipped" in row]
    return round(sum(shares) / len(shares), 3) if shares else None


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def format_report(result: dict) -> str:
    lines = [f"# bench W5 (GRPO): {result['spec']['steps']} steps of "
             f"{W5['prompts_per_step']} prompts x {W5['num_generations']} generations, "
             f"{W5['max_completion_length']} new tokens, {result['spec']['dtype']}", "",
             "| tool | runs | tokens/s (median) | s/step | peak RSS MiB (max) |",
             "|---|---|---|---|---|"]
    for name, agg in result["tools"].items():
        lines.append(f"| {name} | {agg['runs']} | {agg['tokens_per_s']} | {agg['s_per_step']} | "
                     f"{agg['peak_rss_mb']} |")
    for key, value in result.get("ratios", {}).items():
        lines.append(f"\n{key}: {value}")
    skipped = [r["rows_skipped"] for r in result["runs"] if "rows_skipped" in r]
    if skipped:
        lines.append(f"\nrows whose loss pass tunesmith skipped (all of their group scored alike: "
                     f"advantage 0, no gradient): {', '.join(f'{x:.0%}' for x in skipped)} "
                     "per run")
    for run in result["runs"]:
        if "error" in run:
            lines.append(f"\n{run['tool']} failed: {run['error']}")
    return "\n".join(lines) + "\n"


def aggregate(runs: list[dict]) -> dict:
    tools: dict = {}
    for name in dict.fromkeys(r["tool"] for r in runs):
        ok = [r for r in runs if r["tool"] == name and "error" not in r]
        if ok:
            tools[name] = {"runs": len(ok),
                           "tokens_per_s": round(_median([r["tokens_per_s"] for r in ok]), 1),
                           "s_per_step": round(_median([r["s_per_step"] for r in ok]), 2),
                           "peak_rss_mb": max(r["peak_rss_mb"] for r in ok)}
    return tools


def ratios(tools: dict) -> dict:
    if "tunesmith" not in tools or "trl" not in tools:
        return {}
    ours, trl = tools["tunesmith"], tools["trl"]
    return {"tokens/s, tunesmith / TRL": round(ours["tokens_per_s"] / trl["tokens_per_s"], 2),
            "peak RSS, tunesmith / TRL": round(ours["peak_rss_mb"] / trl["peak_rss_mb"], 2)}


def bench_grpo(peers: list[str], steps: int = 0, repeats: int = 1, out: Path = Path("bench_runs"),
               timeout_s: float = 3600, dtype: str = "auto") -> dict:
    """Run tunesmith (and TRL if in ``peers``) ``repeats`` times, interleaved; write the report."""
    from ..hardware import detect
    from ..model.load import resolve_model_path

    dtype = dtype if dtype != "auto" else ("bf16" if detect().auto_dtype == "bf16" else "fp32")
    base = Path(out) / f"W5-{dtype}"
    spec = w5_spec(str(resolve_model_path("smollm2-135m")), steps, dtype)
    tools = {"tunesmith": lambda d, r: ours_command(spec, d, r)}
    if "trl" in peers:
        tools["trl"] = lambda d, r: trl_command(spec, d, r, Path(out))
    runs = interleaved(tools, base, repeats,
                       lambda name, cmd, env, d, r: run_one(name, cmd, env, d, r, timeout_s))
    tools_agg = aggregate(runs)
    result = {"dir": str(base), "spec": {k: v for k, v in spec.items() if k != "prompts"},
              "runs": runs, "tools": tools_agg, "ratios": ratios(tools_agg)}
    base.mkdir(parents=True, exist_ok=True)
    (base / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (base / "report.md").write_text(format_report(result), encoding="utf-8")
    return result
