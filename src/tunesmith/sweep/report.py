"""The sweep's record: ``sweep_results.csv``, ``sweep_report.md`` and the comparison plots.

Plots (matplotlib, Agg): loss curves overlaid per swept parameter (colored by its value), final
train/eval loss against each parameter, and peak memory and tokens/s per run (bar charts).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .runner import RunResult

METRIC_COLUMNS = ("train_loss", "final_loss", "eval_loss", "peak_mem_mb", "tokens_per_s",
                  "train_runtime_s", "steps", "loss_points")
PREDICT_BOOKKEEPING = ("predict_samples", "predict_runtime", "predict_samples_per_second",
                      "predict_batch_size", "predict_split")


def _last(log: list[dict], key: str):
    values = [r[key] for r in log if key in r]
    return values[-1] if values else None


def tokens_per_second(result: RunResult) -> float | None:
    """Non-padding tokens fed per second of training, from the run's metrics or log."""
    m = result.metrics
    if m.get("train_tokens_per_second"):
        return float(m["train_tokens_per_second"])
    seen = _last(result.log, "num_input_tokens_seen") or _last(result.log, "tokens_seen")
    runtime = m.get("train_runtime")
    return float(seen) / runtime if seen and runtime else None


def result_row(result: RunResult) -> dict:
    """One flat row per run: name, status, swept parameters, then the compared metrics."""
    m, log = result.metrics, result.log
    row = {"run": result.plan.name, "status": result.status, **result.plan.point}
    row.update({
        "train_loss": m.get("train_loss"),
        "final_loss": _last(log, "loss"),
        "eval_loss": m.get("eval_loss", _last(log, "eval_loss")),
        "peak_mem_mb": m.get("peak_mem_mb"),
        "tokens_per_s": tokens_per_second(result),
        "train_runtime_s": m.get("train_runtime"),
        "steps": _last(log, "step"),
        "loss_points": loss_points(result),
    })
    for key, value in m.items():  # predict scores, when the sweep ran predict
        if key.startswith("predict_") and key not in PREDICT_BOOKKEEPING:
            row[key] = value
    row["error"] = result.error
    return row


MIN_POINTS = 3  # fewer logged losses than this is not a curve to compare


def loss_points(result: RunResult) -> int:
    """How many training-loss values the run logged."""
    return sum(1 for r in result.log if "loss" in r)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def write_csv(rows: list[dict], path: Path) -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in rows])
    return path


def markdown_table(rows: list[dict], keys: list[str]) -> str:
    """The runs as a Markdown table (parameters, then metrics)."""
    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith("predict_")]
    columns = ["run", "status", *keys, *METRIC_COLUMNS, *extra]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def best_run(rows: list[dict]) -> tuple[dict, str] | None:
    """The finished run with the lowest eval loss (or train loss when there is no eval)."""
    for key in ("eval_loss", "train_loss"):
        scored = [r for r in rows if r["status"] != "failed" and r.get(key) is not None]
        if scored:
            return min(scored, key=lambda r: r[key]), key
    return None


def write_report(root: Path, results: list[RunResult], keys: list[str], command: str) -> Path:
    """Write CSV, plots and ``sweep_report.md`` into the sweep directory; returns the report."""
    from .plots import write_plots

    rows = [result_row(r) for r in results]
    write_csv(rows, root / "sweep_results.csv")
    plots = write_plots(root, results, keys)
    lines = ["# Sweep report", "", f"Command: `{command}`", "",
             f"{len(rows)} runs over {', '.join(keys)}: "
             f"{sum(r['status'] == 'done' for r in rows)} trained now, "
             f"{sum(r['status'] == 'skipped' for r in rows)} already finished (skipped), "
             f"{sum(r['status'] == 'failed' for r in rows)} failed.", "",
             markdown_table(rows, keys), ""]
    best = best_run(rows)
    if best:
        lines += [f"Lowest {best[1]}: **{best[0]['run']}** ({_fmt(best[0][best[1]])}).", ""]
    lines += ["Columns: train_loss is the Trainer's mean over the run; final_loss the loss at the "
              "last step (always logged); loss_points how many losses the run logged; peak_mem_mb the run's peak GPU memory (CUDA) or process RSS (CPU); "
              "tokens_per_s non-padding tokens fed per second of training.", ""]
    sparse = [r for r in rows if r["status"] != "failed" and r["loss_points"] < MIN_POINTS]
    if sparse:
        lines += ["## Too few points to compare", ""] + [
            f"- {r['run']}: {r['loss_points']} logged loss value(s) over {_fmt(r['steps'])} "
            "steps; its curve and final_loss say little (rerun the sweep with a smaller "
            "logging_steps, e.g. logging_steps=1)" for r in sparse] + [""]
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["## Failed runs", ""] + [f"- {r['run']}: {r['error']} (log: sweep_logs/"
                                           f"{r['run']}.log)" for r in failed] + [""]
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path = root / "sweep_report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
