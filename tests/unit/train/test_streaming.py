"""streaming: true: trains from an endless stream, resumes exactly, counts drops as it goes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CHAT_ROWS, write_rows
from tests.unit.train.helpers import adapter, losses, max_abs_diff
from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.train.checkpoint import complete_checkpoints
from tunesmith.train.run import run_training

STEPS = 7


def _rows(n: int, bad_every: int = 0) -> list:
    rows = []
    for i in range(n):
        row = dict(CHAT_ROWS[i % len(CHAT_ROWS)])
        if bad_every and i % bad_every == bad_every - 1:
            row = {"messages": [{"role": "user", "content": f"no answer {i}"}]}
        rows.append(row)
    return rows


@pytest.fixture
def stream_over(tiny_model_dir, tmp_path):
    data = write_rows(tmp_path / "s.jsonl", _rows(37, bad_every=9))
    return {"model_name_or_path": str(tiny_model_dir), "dataset": str(data), "streaming": True,
            "buffer_size": 8, "per_device_train_batch_size": 3, "gradient_accumulation_steps": 2,
            "max_steps": STEPS, "learning_rate": 1e-2, "lr_scheduler_type": "constant",
            "logging_steps": 1, "save_steps": 1, "dtype": "fp32", "lora_rank": 4,
            "cutoff_len": 64, "train_on": "split_turns"}


def test_streaming_needs_max_steps(stream_over, tmp_path):
    cfg = load_config(None, {**stream_over, "max_steps": -1, "output_dir": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="streaming: true needs max_steps"):
        run_training(cfg)


def test_resumed_stream_equals_uninterrupted_run(stream_over, tmp_path):
    """37 rows (4 bad) x batch 3 x accumulation 2 over 7 steps: the stream wraps into its second
    pass; a run stopped at step 3 and resumed logs the same loss at every step."""
    ref, part = tmp_path / "ref", tmp_path / "part"
    run_training(load_config(None, {**stream_over, "output_dir": str(ref)}))
    run_training(load_config(None, {**stream_over, "output_dir": str(part), "max_steps": 3}))
    assert complete_checkpoints(part)[-1].name == "checkpoint-3"
    run_training(load_config(None, {**stream_over, "output_dir": str(part),
                                    "resume_from_checkpoint": "auto"}))
    got, want = losses(part), losses(ref)
    assert got.keys() == want.keys() == set(range(1, STEPS + 1))
    assert max(abs(got[s] - want[s]) for s in want) <= 1e-6
    assert max_abs_diff(adapter(part), adapter(ref)) <= 1e-6
    report = json.loads((ref / "data_report.json").read_text())
    resumed = json.loads((part / "data_report.json").read_text())
    counts = ("total", "kept", "dropped_by_reason", "samples", "truncated")
    assert report["dropped_by_reason"] and all(report[k] == resumed[k] for k in counts)
    assert report["total"] > 37  # the second pass was counted as it was read


def test_stream_bad_rows_over_ratio_stop_with_one_line(stream_over, tmp_path):
    data = write_rows(tmp_path / "bad.jsonl", _rows(12, bad_every=2))
    cfg = load_config(None, {**stream_over, "dataset": str(data), "max_drop_ratio": 0.2,
                             "output_dir": str(tmp_path / "bad")})
    from tunesmith.errors import DataError

    with pytest.raises(DataError, match=r"6/12 rows dropped, over max_drop_ratio=0.2"):
        run_training(cfg)
