"""Sweep planning (every point validated before any run), the report, and a real 2x2 sweep of
the tiny model that is skipped when rerun."""

import csv
import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.errors import ConfigError
from tunesmith.sweep.grid import grid_points, parse_grid
from tunesmith.sweep.report import write_report
from tunesmith.sweep.runner import RunPlan, RunResult, plan_runs


def _config(tmp_path: Path, overrides: dict) -> str:
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump({**overrides, "output_dir": str(tmp_path / "sweep")}))
    return str(path)


def test_every_point_is_validated_before_any_run(tmp_path):
    config = _config(tmp_path, {"dataset": "x.jsonl", "lora_rank": 4})
    points = grid_points(parse_grid("lora_rank=8,-1 learning_rate=1e-4"))
    with pytest.raises(ConfigError, match=r"grid point lora_rank=-1,learning_rate=1e-4: key 'lora_rank'"):
        plan_runs(config, [], points)
    assert not (tmp_path / "sweep").exists()  # nothing ran, nothing was written
    root, plans = plan_runs(config, ["max_steps=2"], grid_points(parse_grid("lora_rank=8,16")))
    assert [p.run_dir for p in plans] == [root / "lora_rank=8", root / "lora_rank=16"]
    assert plans[0].raw["max_steps"] == "2" and plans[1].raw["lora_rank"] == "16"
    assert plans[0].raw["run_name"] == "sweep/lora_rank=8"


@pytest.mark.parametrize("grid, needle", [
    ("learnig_rate=1e-4,2e-4", "unknown key 'learnig_rate' (did you mean 'learning_rate'?)"),
    ("learning_rate=abc", "expected a number"),
    ("lora_rank=", "empty value list"),
])
def test_cli_grid_errors_are_one_line_exit_2(tmp_path, capsys, grid, needle):
    config = _config(tmp_path, {"dataset": "x.jsonl"})
    assert main(["sweep", config, "--grid", grid]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and needle in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_dry_run_lists_a_seeded_random_sample(tmp_path, capsys):
    config = _config(tmp_path, {"dataset": "x.jsonl"})
    argv = ["sweep", config, "--grid", "learning_rate=1e-4,2e-4,3e-4 lora_rank=8,16",
            "--samples", "3", "--seed", "1", "--max-runs", "2", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 runs of 6 grid points" in out
    assert main(argv) == 0 and capsys.readouterr().out == out  # the same draw again
    assert not (tmp_path / "sweep").exists()


def _fake_result(tmp_path, lr: str, rank: str, losses: list[float]) -> RunResult:
    name = f"learning_rate={lr},lora_rank={rank}"
    plan = RunPlan(name, {"learning_rate": lr, "lora_rank": rank}, tmp_path / name, {},
                   tmp_path / f"{name}.yaml", tmp_path / f"{name}.log")
    log = [{"step": i + 1, "loss": x, "tokens_seen": 100 * (i + 1)} for i, x in enumerate(losses)]
    metrics = {"train_loss": sum(losses) / len(losses), "peak_mem_mb": 900.0 + int(rank),
               "train_runtime": 2.0}
    return RunResult(plan, "done", metrics, log, 3.0)


def test_report_files_from_results(tmp_path):
    results = [_fake_result(tmp_path, lr, rank, [3.0, 2.5 - float(lr) * 1000, 2.0])
               for lr in ("1e-4", "2e-4") for rank in ("8", "64")]
    report = write_report(tmp_path, results, ["learning_rate", "lora_rank"], "tunesmith sweep x")
    text = report.read_text()
    assert "| learning_rate=2e-4,lora_rank=8 | done | 2e-4 | 8 |" in text
    rows = list(csv.DictReader((tmp_path / "sweep_results.csv").open()))
    assert len(rows) == 4 and float(rows[0]["tokens_per_s"]) == 150.0
    assert float(rows[0]["final_loss"]) == 2.0
    for name in ("loss_curves_learning_rate.png", "loss_curves_lora_rank.png",
                 "loss_vs_learning_rate.png", "loss_vs_lora_rank.png", "peak_memory.png",
                 "tokens_per_s.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
        assert f"({name})" in text


@pytest.mark.slow
def test_tiny_2x2_sweep_writes_report_and_skips_finished_runs(tiny_overrides, tmp_path, capsys):
    config = _config(tmp_path, {**tiny_overrides, "max_steps": 3})
    argv = ["sweep", config, "--grid", "learning_rate=1e-2,1e-3 lora_rank=2,4", "--parallel", "2"]
    assert main(argv) == 0
    root = tmp_path / "sweep"
    first = capsys.readouterr().out
    assert first.count(" done ") == 4
    rows = list(csv.DictReader((root / "sweep_results.csv").open()))
    assert {r["run"] for r in rows} == {f"learning_rate={lr},lora_rank={r}"
                                        for lr in ("1e-2", "1e-3") for r in ("2", "4")}
    for row in rows:
        run_dir = root / row["run"]
        results = json.loads((run_dir / "all_results.json").read_text())
        assert results["train_loss"] > 0 and float(row["peak_mem_mb"]) > 0
        saved = yaml.safe_load((run_dir / "tunesmith_config.yaml").read_text())
        assert str(saved["learning_rate"]) == str(float(row["learning_rate"]))
        assert saved["lora_rank"] == int(row["lora_rank"])
    assert (root / "sweep_report.md").is_file() and (root / "loss_curves_lora_rank.png").is_file()
    adapter = root / "learning_rate=1e-2,lora_rank=2" / "adapter_model.safetensors"
    stamp = adapter.stat().st_mtime_ns
    assert main(argv) == 0  # rerun: every run is finished, nothing trains again
    second = capsys.readouterr().out
    assert second.count(" skipped ") == 4 and " done " not in second
    assert adapter.stat().st_mtime_ns == stamp


def test_sweep_chooses_the_logging_interval_unless_the_sweep_sets_it(tmp_path):
    from tunesmith.sweep.runner import LOG_FRACTION

    config = _config(tmp_path, {"dataset": "x.jsonl", "logging_steps": 5})
    points = grid_points(parse_grid("lora_rank=8,16"))
    _, plans = plan_runs(config, [], points)
    assert all(p.raw["logging_steps"] == LOG_FRACTION for p in plans)  # not the YAML's 5
    _, plans = plan_runs(config, ["logging_steps=2"], points)
    assert all(p.raw["logging_steps"] == "2" for p in plans)
    _, plans = plan_runs(config, [], grid_points(parse_grid("logging_steps=1,3")))
    assert [p.raw["logging_steps"] for p in plans] == ["1", "3"]


def test_report_names_runs_with_too_few_points(tmp_path):
    results = [_fake_result(tmp_path, "1e-4", "8", [3.0, 2.5, 2.0]),
               _fake_result(tmp_path, "2e-4", "8", [3.49])]
    text = write_report(tmp_path, results, ["learning_rate"], "tunesmith sweep x").read_text()
    section = text.split("## Too few points to compare")[1].split("##")[0]
    assert "learning_rate=2e-4,lora_rank=8: 1 logged loss value(s) over 1 steps" in section
    assert "learning_rate=1e-4" not in section
