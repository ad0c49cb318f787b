"""Training faults (RELIABILITY.md cases 13-18) through the real CLI in subprocesses.

One configuration for all: tiny model, CPU fp32, 23 rows (odd), batch 2 x accumulation 3 (the
last optimizer step of each epoch has fewer rows), constant LR, a checkpoint every step. An
uninterrupted run is the reference; every interrupted-then-resumed run must log the same loss at
every step (<= 1e-6) and end with the same adapter.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from tests.unit.train.helpers import (Zygote, adapter, base_overrides, cli_cmd, losses,
                                      logged_steps, max_abs_diff, run_cli, wait_until, write_chat)
from tunesmith.train.checkpoint import MARKER, STAGING_PREFIX, complete_checkpoints

MAX_STEPS = 21
TOL = 1e-6


class World:
    """The shared config, data, reference run and a fork server for the training processes."""

    def __init__(self, root: Path, model_dir: Path):
        self.root = root
        self.data = write_chat(root / "chat23.jsonl", 23)
        self.model_dir = model_dir
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.ref = root / "reference"
        self.zygote = Zygote(self.env)

    def over(self, out: Path, **extra) -> dict:
        fixed = {"max_steps": MAX_STEPS, "per_device_train_batch_size": 2,
                 "gradient_accumulation_steps": 3, "lr_scheduler_type": "constant",
                 "num_train_epochs": 100}
        return base_overrides(self.model_dir, self.data, out, **{**fixed, **extra})

    def run(self, out: Path, env: dict | None = None, **extra) -> int:
        return self.spawn(out, env, **extra).wait()

    def spawn(self, out: Path, env: dict | None = None, **extra):
        return self.zygote.spawn(self.over(out, **extra), out.parent / f"{out.name}.log", env)

    def compare(self, out: Path) -> tuple[float, float]:
        """(max |loss - reference loss| over all steps, max |adapter - reference adapter|)."""
        got, ref = losses(out), losses(self.ref)
        assert got.keys() == ref.keys() == set(range(1, MAX_STEPS + 1))
        return (max(abs(got[s] - ref[s]) for s in ref), max_abs_diff(adapter(out), adapter(self.ref)))


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    w = World(tmp_path_factory.mktemp("faults"), tiny_model_dir)
    try:
        assert w.run(w.ref) == 0, (w.root / "reference.log").read_text()[-2000:]
        yield w
    finally:
        w.zygote.close()


def kill_when_logged(proc, out: Path, step: int) -> None:
    wait_until(lambda: step in logged_steps(out), proc)
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.wait()


@pytest.mark.slow
def test_kill9_at_random_steps_then_resume_is_exact(world, capsys):
    """Case 13 + 18: ten kill -9 at random steps (mid-epoch, mid-accumulation, mid-save)."""
    out, rng, kills = world.root / "chain", random.Random(20261123), []
    for _ in range(10):
        k = max(logged_steps(out) | {0}) + rng.randint(1, 2)  # a step this process must reach
        assert k < MAX_STEPS
        proc = world.spawn(out, resume_from_checkpoint="auto")
        kill_when_logged(proc, out, k)
        kills.append(k)
    assert world.run(out, resume_from_checkpoint="auto") == 0
    loss_diff, weight_diff = world.compare(out)
    with capsys.disabled():
        print(f"\n[kill -9] steps {kills}: max |loss diff| {loss_diff:.2e}, "
              f"max |adapter diff| {weight_diff:.2e}")
    assert len(kills) == 10 and loss_diff <= TOL and weight_diff <= TOL
    assert not [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_kill9_during_checkpoint_write_never_picks_the_partial(world):
    """Case 14: the partial checkpoint-3 is ignored and cleaned; resume uses checkpoint-2."""
    out = world.root / "midsave"
    env = {**world.env, "TUNESMITH_TEST_SLOW_SAVE": "3:120"}
    proc = world.spawn(out, env=env)
    staging = out / f"{STAGING_PREFIX}checkpoint-3"
    wait_until(lambda: (staging / "checkpoint-3" / "adapter_model.safetensors").is_file()
               and "TUNESMITH_TEST: writing checkpoint-3" in (world.root / "midsave.log").read_text(),
               proc)
    proc.kill()
    proc.wait()
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-1", "checkpoint-2"]
    assert staging.is_dir() and not (out / "checkpoint-3").exists()
    assert world.run(out, resume_from_checkpoint="auto") == 0
    assert f"resuming from {out / 'checkpoint-2'}" in (world.root / "midsave.log").read_text()
    assert not staging.exists()
    loss_diff, weight_diff = world.compare(out)
    assert loss_diff <= TOL and weight_diff <= TOL


def _limit_file_size():
    # 32 KiB per file: the config, logs and adapter fit; optimizer.pt (~56 KiB) does not
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 << 10, 32 << 10))


def test_disk_full_is_one_clear_line_and_keeps_the_last_checkpoint(world):
    """Case 15: a file-size limit (as a full disk) while saving checkpoint-3."""
    import shutil

    out = world.root / "full"
    out.mkdir()
    for step in (1, 2):
        shutil.copytree(world.ref / f"checkpoint-{step}", out / f"checkpoint-{step}")
    before = {p.name: p.read_bytes() for p in (out / "checkpoint-2").iterdir()}
    log = world.root / "full.log"
    proc = subprocess.Popen(cli_cmd(world.over(out, resume_from_checkpoint="auto")),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=world.env,
                            preexec_fn=_limit_file_size)  # a real `python -m tunesmith.cli`
    _, err = proc.communicate(timeout=600)
    lines = err.decode().strip().splitlines()
    log.write_text(err.decode())
    assert proc.returncode == 2, lines[-5:]
    assert lines[-1].startswith("error: no space left on device while writing")
    assert "checkpoint-2 is intact" in lines[-1] and "resume_from_checkpoint=auto" in lines[-1]
    assert "Traceback" not in err.decode()
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-1", "checkpoint-2"]
    assert {p.name: p.read_bytes() for p in (out / "checkpoint-2").iterdir()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_sigterm_mid_step_saves_exits_143_and_resumes_exactly(world):
    """Case 16: the step in flight finishes, a checkpoint is written, exit 143, exact resume."""
    out = world.root / "term"
    proc = world.spawn(out, save_steps=1000)  # no periodic checkpoints: the stop one is the only
    wait_until(lambda: 4 in logged_steps(out), proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=600) == 143
    text = (world.root / "term.log").read_text()
    assert "SIGTERM received" in text and "resume_from_checkpoint=auto" in text
    done = complete_checkpoints(out)
    assert len(done) == 1 and int(done[0].name.split("-")[1]) >= 4
    assert (done[0] / MARKER).is_file() and (done[0] / "optimizer.pt").is_file()
    assert world.run(out, resume_from_checkpoint="auto", save_steps=1000) == 0
    loss_diff, weight_diff = world.compare(out)
    assert loss_diff <= TOL and weight_diff <= TOL


@pytest.mark.slow
def test_two_cpu_processes_match_one(world):
    """DDP (gloo): 2 ranks x batch 1 x accumulation 3 == 1 process x batch 2 x accumulation 3."""
    out = world.root / "ddp"  # a real `python -m tunesmith.cli` process: it relaunches torchrun
    over = world.over(out, nproc_per_node=2, per_device_train_batch_size=1, max_steps=3,
                      save_strategy="no")
    rc = run_cli(over, world.root / "ddp.log", world.env)
    assert rc == 0, (world.root / "ddp.log").read_text()[-3000:]
    got, ref = losses(out), losses(world.ref)
    assert got.keys() == {1, 2, 3}
    assert max(abs(got[s] - ref[s]) for s in got) < 1e-5
    assert max_abs_diff(adapter(out), adapter(world.ref / "checkpoint-3")) < 1e-5
