"""``tunesmith bench speed`` runs its variants on the bundled model and reports each one."""

from __future__ import annotations


def test_speed_ablation_runs_baseline_and_full_stack(bundled_dir):
    from tunesmith.bench.ablation import format_ablation, run_ablation

    rows = run_ablation("W1", steps=2, batch_size=2, names=["padded", "autocast", "selective"],
                        threads=1)
    assert [r["variant"] for r in rows] == ["padded", "autocast", "selective"]
    assert rows[0]["speedup"] == 1.0
    assert all(r["median_step_cpu_s"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    table = format_ablation(rows)
    assert "+ bf16 autocast adapters" in table and "peers' setting" in table
    assert "selective ckpt" in table


def test_estimate_check_trains_and_compares_one_config(bundled_dir, tmp_path):
    import pytest

    from tunesmith.bench.estimate_check import check, format_checks
    from tunesmith.errors import ConfigError

    row = check("A", tmp_path)
    assert row["measured_mb"] > 500 and row["estimate_mb"] > 500, row
    assert abs(row["error_pct"]) < 50, row  # config A was within 4% when fitted
    assert (tmp_path / "A.yaml").is_file() and "| A |" in format_checks([row])
    with pytest.raises(ConfigError, match="not one of"):
        check("Z", tmp_path)
