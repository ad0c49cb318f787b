"""The sweep's comparison plots (matplotlib with the Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from .runner import RunResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ordered_values(results: list[RunResult], key: str) -> list[str]:
    """The values a parameter took, numerically ordered when they are all numbers."""
    values = list(dict.fromkeys(r.plan.point[key] for r in results))
    try:
        return sorted(values, key=float)
    except ValueError:
        return values


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def plot_loss_curves(root: Path, results: list[RunResult], key: str) -> Path | None:
    """Every run's loss curve, colored by the value of ``key`` (eval loss dashed)."""
    plt = _pyplot()
    values = ordered_values(results, key)
    colors = plt.get_cmap("viridis" if len(values) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = set()
    for result in results:
        value = result.plan.point[key]
        color = colors(values.index(value) / max(len(values) - 1, 1) if len(values) > 10
                       else values.index(value))
        for metric, style in (("loss", "-"), ("eval_loss", "--")):
            rows = [r for r in result.log if metric in r]
            if not rows:
                continue
            label = f"{key}={value}" if (value, metric) not in drawn and metric == "loss" else None
            drawn.add((value, metric))
            ax.plot([r["step"] for r in rows], [r[metric] for r in rows], style, color=color,
                    alpha=0.85, label=label, marker="." if len(rows) < 30 else None)
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="step", ylabel="loss (eval dashed)", title=f"loss curves by {key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, root / f"loss_curves_{key}.png")


def plot_loss_vs_param(root: Path, results: list[RunResult], key: str) -> Path | None:
    """Final train loss (and eval loss) of each run against the value of ``key``."""
    from .report import result_row

    plt = _pyplot()
    values = ordered_values(results, key)
    rows = [result_row(r) for r in results]
    fig, ax = plt.subplots(figsize=(6, 4))
    any_point = False
    for metric, marker in (("train_loss", "o"), ("eval_loss", "s")):
        points = [(values.index(r[key]), r[metric]) for r in rows if r.get(metric) is not None]
        if not points:
            continue
        any_point = True
        ax.scatter(*zip(*points), marker=marker, label=metric, alpha=0.8)
        means = [(i, sum(y for x, y in points if x == i) / sum(1 for x, _ in points if x == i))
                 for i in sorted({x for x, _ in points})]
        ax.plot(*zip(*means), alpha=0.5)
    if not any_point:
        plt.close(fig)
        return None
    ax.set_xticks(range(len(values)), values)
    ax.set(xlabel=key, ylabel="loss", title=f"final loss vs {key} (line: mean over other params)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, root / f"loss_vs_{key}.png")


def plot_bars(root: Path, results: list[RunResult], column: str, ylabel: str,
              filename: str) -> Path | None:
    """One bar per run for a per-run number (peak memory, tokens/s)."""
    from .report import result_row

    rows = [r for r in (result_row(x) for x in results) if r.get(column) is not None]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4.5))
    ax.bar(range(len(rows)), [r[column] for r in rows], color="tab:blue")
    ax.set_xticks(range(len(rows)), [r["run"].replace(",", "\n") for r in rows], fontsize=7)
    ax.set(ylabel=ylabel, title=f"{ylabel} per run")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, root / filename)


def write_plots(root: Path, results: list[RunResult], keys: list[str]) -> list[Path]:
    """All the sweep's plots; returns the paths written."""
    paths = []
    for key in keys:
        paths += [plot_loss_curves(root, results, key), plot_loss_vs_param(root, results, key)]
    paths += [plot_bars(root, results, "peak_mem_mb", "peak memory (MiB)", "peak_memory.png"),
              plot_bars(root, results, "tokens_per_s", "tokens/s", "tokens_per_s.png")]
    return [p for p in paths if p is not None]
