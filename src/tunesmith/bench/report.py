"""Bench results -> JSON and a markdown report (medians over repeats, ratios to each peer)."""

from __future__ import annotations

import statistics

from .variants import VARIANTS, baseline_of

METRICS = ("tokens_per_s", "tokens_per_cpu_s", "train_s", "wall_s", "first_step_s", "peak_rss_mb", "final_loss")


def aggregate(runs: list[dict]) -> dict:
    """Per tool: min and median of each metric over its successful repeats (+ errors)."""
    tools: dict[str, dict] = {}
    for r in runs:
        t = tools.setdefault(r["tool"], {"runs": [], "errors": []})
        (t["errors"] if "error" in r else t["runs"]).append(r)
    for t in tools.values():
        for m in METRICS + ("first_loss", "achieved_flops", "peak_gpu_mb"):
            values = [r[m] for r in t["runs"] if r.get(m) is not None]
            if values:
                t[m] = {"min": min(values), "median": statistics.median(values),
                        "max": max(values)}
    return tools


def ratios(tools: dict, equal: dict | None = None) -> dict:
    """Per peer variant: the tokens/s of the tunesmith run of its mode (``defaults`` against
    the peers as they come, ``best`` against their padding-free modes) over its own (median),
    peak RSS relative to it, and the first-step loss difference (from the fp32 equal-work check
    when given)."""
    out = {}
    first = ({k: v for k, v in equal.items() if v is not None} if equal is not None else
             {k: t["first_loss"]["median"] for k, t in tools.items() if "first_loss" in t})
    for name, t in tools.items():
        ours = baseline_of(name)
        mine = tools.get(ours, {})
        if VARIANTS.get(name, VARIANTS["tunesmith"]).tool == "tunesmith" or (
                "tokens_per_s" not in t or "tokens_per_s" not in mine):
            continue
        cpu = "tokens_per_cpu_s"
        out[name] = {"speed": mine["tokens_per_s"]["median"] / t["tokens_per_s"]["median"],
                     "cpu_speed": (mine[cpu]["median"] / t[cpu]["median"]
                                   if cpu in mine and cpu in t else None),
                     "peak_rss": mine["peak_rss_mb"]["median"] / t["peak_rss_mb"]["median"],
                     "first_loss_diff": abs(first[ours] - first[name])
                     if ours in first and name in first else None, "against": ours}
    return out


def _fmt(stat: dict | None, digits: int = 1) -> str:
    if not stat:
        return "-"
    if stat["min"] == stat["max"]:
        return f"{stat['median']:.{digits}f}"
    return f"{stat['median']:.{digits}f} (min {stat['min']:.{digits}f})"


def format_report(result: dict, tolerance: float = 1e-3) -> str:
    """Markdown: machine, workload, one row per tool, ratios and the equal-work check."""
    hw, spec, tools = result["hardware"], result["spec"], result["tools"]
    lines = [f"# tunesmith bench train: {spec['workload']}", "",
             f"- machine: {hw['name']} ({hw['capability']}, {hw['cores']} cores); dtype "
             + (f"{spec['dtype']} ({hw['reason']})" if spec["dtype"] == hw.get("auto_dtype") else
                f"{spec['dtype']} (set by --dtype; the automatic choice here is "
                f"{hw.get('auto_dtype')}: {hw['reason']})"),
             f"- matmul peak measured now: fp32 {hw['peak_fp32'] / 1e9:.0f} GFLOP/s, bf16 "
             f"{hw['peak_bf16'] / 1e9:.0f} GFLOP/s",
             f"- workload: {spec['n_rows']} rows, {spec['steps']} steps of {spec['batch']} rows, "
             f"{spec['tokens']:,} real tokens trained; LoRA r={spec['lora_rank']} all-linear, "
             f"lr {spec['learning_rate']}, gradient checkpointing "
             + {True: "on for every tool", False: "off for every tool",
                None: "as each variant has it (the tools' defaults; on for all at their best)"}[
                 spec.get("gradient_checkpointing")],
             "- variants: `tunesmith`, `llamafactory`, `trl` as they come (no speed keys: "
             "tunesmith packs and decides checkpointing itself, the peers pad); "
             "`tunesmith-best`, `llamafactory-neat` (neat_packing), `trl-padding-free` at their "
             "best with checkpointing on",
             f"- repeats: {result['repeats']} (median shown, min in brackets)", "",
             "| tool | tokens/s | tokens/CPU-s | train s | wall s | first step s | peak RSS MiB "
             "| first loss | final loss | % of peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    peak = hw["peak_bf16"] if spec["dtype"] == "bf16" else hw["peak_fp32"]
    for name, t in tools.items():
        if not t["runs"]:
            lines.append(f"| {name} | failed: {t['errors'][0]['error']} ||||||||")
            continue
        pct = 100 * t["achieved_flops"]["median"] / peak if "achieved_flops" in t else 0
        lines.append(f"| {name} | {_fmt(t.get('tokens_per_s'))} | {_fmt(t.get('tokens_per_cpu_s'))} | "
                     f"{_fmt(t.get('train_s'))} | "
                     f"{_fmt(t.get('wall_s'))} | {_fmt(t.get('first_step_s'))} | "
                     f"{_fmt(t.get('peak_rss_mb'), 0)} | {_fmt(t.get('first_loss'), 4)} | "
                     f"{_fmt(t.get('final_loss'), 4)} | {pct:.1f}% |")
    equal = result.get("equal_work")
    if equal:
        lines.append("\nEqual-work check (first batch, 1 step, fp32, every tool): first-step loss "
                     + ", ".join(f"{k} {v:.6f}" if v is not None else f"{k} failed"
                                 for k, v in equal.items()) + ". The timed runs' first losses "
                     "differ more in bf16: each tool's mixed precision rounds differently.")
    for name, r in result["ratios"].items():
        diff = r["first_loss_diff"]
        check = ("-" if diff is None else
                 f"first-step loss differs by {diff:.2e} ({'equal work' if diff <= tolerance else 'NOT equal: check'})")
        if name == "llamafactory-neat" and diff is not None and diff > tolerance:
            check += (": expected, its packing fills each sequence to cutoff_len with rows its "
                      "greedy knapsack picks, so its first step trains other rows")
        cpu = f" ({r['cpu_speed']:.2f}x per CPU-second)" if r.get("cpu_speed") else ""
        lines.append(f"\n- {r.get('against', 'tunesmith')} vs {name}: **{r['speed']:.2f}x** "
                     f"tokens/s{cpu}, peak RSS {r['peak_rss']:.2f}x; {check}")
    return "\n".join(lines) + "\n"
