"""``tunesmith bench speed`` runs its variants on the bundled model and reports each one."""

from __future__ import annotations


def test_speed_ablation_runs_baseline_and_full_stack(bundled_dir):
    from tunesmith.bench.ablation import format_ablation, run_ablation

    rows = run_ablation("W1", steps=2, batch_size=2, names=["padded", "autocast"], threads=1)
    assert [r["variant"] for r in rows] == ["padded", "autocast"]
    assert rows[0]["speedup"] == 1.0
    assert all(r["median_step_cpu_s"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    table = format_ablation(rows)
    assert "+ bf16 autocast adapters" in table and "peers' setting" in table
