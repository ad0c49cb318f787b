"""The bench children's timing callback records losses and gradient norms of every logged step
(W4's equal-work check reads the first gradient norm from the timed runs' records too)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from tunesmith.bench.peer_scripts.timing import BenchTiming


def test_timing_record_has_losses_grad_norms_and_times(tmp_path):
    path = tmp_path / "timing.json"
    cb = BenchTiming(str(path), tool="x")
    state = SimpleNamespace(global_step=0, num_input_tokens_seen=12)
    cb.on_train_begin(None, state, None)
    for step, (loss, norm) in enumerate([(0.69, 1.5), (0.5, None)], start=1):
        state.global_step = step
        cb.on_step_end(None, state, None)
        cb.on_log(None, state, None, logs={"loss": loss, "grad_norm": norm})
    cb.on_train_end(None, state, None)
    record = json.loads(path.read_text())
    assert record["losses"] == {"1": 0.69, "2": 0.5}
    assert record["grad_norms"] == {"1": 1.5}
    assert record["steps"] == 2 and record["tokens_seen"] == 12 and record["tool"] == "x"
    assert record["t_begin"] <= record["t_first_step"] <= record["t_end"]
