"""More than one process on this CPU. Two torchrun agents on 127.0.0.1 as two nodes of one process
each train exactly what one process does; nodes with different configs are refused before
training; a rank that dies stops the job with one line, and the last complete checkpoint resumes;
FSDP (2 ranks, gloo) trains, checkpoints sharded, resumes and exports the same adapter; DeepSpeed
ZeRO-2 runs on DeepSpeed's CPU accelerator and learns the same adapter; a streaming run on two
ranks resumes like one process.

Reference: one process, batch 2, 3 steps, constant LR. Two ranks of batch 1 see the same global
batch (DDP averages their gradients), so losses and adapters match within fp32 rounding.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.unit.train.helpers import (adapter, base_overrides, losses, max_abs_diff, run_cli,
                                      spawn, write_chat)
from tunesmith.train.checkpoint import complete_checkpoints

REPO = Path(__file__).resolve().parents[2]

TOL = 1e-5
# FSDP reduce-scatters the gradients in its own order and steps the optimizer on its shards: the
# fp32 sums differ from one process's in the last bits, and three Adam steps at lr 1e-2 carry
# that into the adapter at up to ~1e-5 (1.03e-5 measured on an Intel AMX machine); a wrong
# gradient (unreduced, a missing shard) moves it by orders of magnitude more
FSDP_ADAPTER_TOL = 5e-5


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nodes:
    def __init__(self, root: Path, model_dir: Path):
        self.root, self.model_dir = root, model_dir
        self.data = write_chat(root / "chat.jsonl", 12)
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.ref = root / "ref"

    def over(self, out: Path, **extra) -> dict:
        fixed = {"max_steps": 3, "per_device_train_batch_size": 2, "lr_scheduler_type": "constant",
                 "num_train_epochs": 100}
        return base_overrides(self.model_dir, self.data, out, **{**fixed, **extra})

    def two_nodes(self, out: Path, node1: dict | None = None) -> list[subprocess.Popen]:
        port = _port()
        return [spawn(self.over(out, per_device_train_batch_size=1, nnodes=2, node_rank=rank,
                                master_addr="127.0.0.1", master_port=port, **((node1 or {}) if rank else {})),
                      self.root / f"{out.name}-node{rank}.log", self.env)
                for rank in (0, 1)]

    def log(self, name: str) -> str:
        return (self.root / name).read_text()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, tiny_model_dir):
    n = Nodes(tmp_path_factory.mktemp("nodes"), tiny_model_dir)
    assert run_cli(n.over(n.ref), n.root / "ref.log", n.env) == 0, n.log("ref.log")[-2000:]
    return n


@pytest.mark.slow
def test_two_nodes_of_one_process_equal_one_process(nodes):
    out = nodes.root / "two"
    codes = [p.wait(timeout=600) for p in nodes.two_nodes(out)]
    assert codes == [0, 0], nodes.log("two-node0.log")[-3000:] + nodes.log("two-node1.log")[-3000:]
    got, ref = losses(out), losses(nodes.ref)
    assert got.keys() == ref.keys() == {1, 2, 3}
    assert max(abs(got[s] - ref[s]) for s in ref) < TOL
    assert max_abs_diff(adapter(out), adapter(nodes.ref)) < TOL


def test_nodes_with_different_configs_are_refused_before_training(nodes):
    out = nodes.root / "mismatch"
    codes = [p.wait(timeout=600) for p in nodes.two_nodes(out, {"learning_rate": 0.02})]
    text = nodes.log("mismatch-node0.log")
    assert codes == [2, 2], text[-3000:]
    line = [x for x in text.splitlines() if x.startswith("error:")][-1]
    assert "rank 1 (node 1) is not running the same job as rank 0" in line
    assert "learning_rate=0.02 vs 0.01" in line
    assert "Traceback" not in text and not (out / "trainer_log.jsonl").exists()


@pytest.mark.slow
def test_a_dead_rank_stops_the_job_with_one_line_and_the_checkpoint_resumes(nodes):
    out = nodes.root / "dies"
    env = {**nodes.env, "TUNESMITH_TEST_DIE_AT": "1:3"}
    over = nodes.over(out, nproc_per_node=2, per_device_train_batch_size=1)
    code = run_cli(over, nodes.root / "dies.log", env)
    lines = nodes.log("dies.log").strip().splitlines()
    assert code != 0
    assert lines[-1].startswith("error: rank 1 (node 0, local rank 1) was killed by SIGKILL")
    assert "its last log line: 'TUNESMITH_TEST: rank 1 dies at step 3'" in lines[-1]
    assert lines[-1].endswith(f"continue from {out / 'checkpoint-2'}")
    assert "ChildFailedError" not in "\n".join(lines)
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-1", "checkpoint-2"]
    assert run_cli({**over, "resume_from_checkpoint": "auto"}, nodes.root / "resume.log",
                   nodes.env) == 0, nodes.log("resume.log")[-3000:]
    got, ref = losses(out), losses(nodes.ref)
    assert max(abs(got[s] - ref[s]) for s in ref) < TOL
    assert max_abs_diff(adapter(out), adapter(nodes.ref)) < TOL


@pytest.mark.slow
def test_fsdp_on_two_cpu_ranks_checkpoints_resumes_and_exports_the_unsharded_adapter(nodes):
    out = nodes.root / "fsdp"
    over = nodes.over(out, nproc_per_node=2, per_device_train_batch_size=1,
                      fsdp=str(REPO / "examples/fsdp/fsdp_config.json"))
    assert run_cli({**over, "max_steps": 2}, nodes.root / "fsdp.log", nodes.env) == 0, \
        nodes.log("fsdp.log")[-3000:]
    assert (out / "checkpoint-2" / "pytorch_model_fsdp_0").is_dir()  # sharded: one part per rank
    assert "reducer.cpp" not in nodes.log("fsdp.log")  # DDP's reducer never ran
    assert run_cli({**over, "resume_from_checkpoint": "auto"}, nodes.root / "fsdp.log",
                   nodes.env) == 0, nodes.log("fsdp.log")[-3000:]
    got, ref = losses(out), losses(nodes.ref)
    assert got.keys() == ref.keys() and max(abs(got[s] - ref[s]) for s in ref) < TOL
    for sub in ("checkpoint-2", "checkpoint-3", ""):
        assert max_abs_diff(adapter(out / sub), adapter(nodes.ref / sub)) < FSDP_ADAPTER_TOL
    assert _merged_diff(nodes, out) < FSDP_ADAPTER_TOL


def _merged_diff(nodes, out: Path) -> float:
    from safetensors.torch import load_file

    from tunesmith.config import load_config
    from tunesmith.export.merge import run_export

    merged = []
    for run in (out, nodes.ref):
        dest = nodes.root / f"merged-{run.name}"
        run_export(load_config(None, {"model_name_or_path": str(nodes.model_dir),
                                      "adapter_name_or_path": str(run), "export_dir": str(dest),
                                      "export_dtype": "fp32"}))
        merged.append(load_file(next(dest.glob("*.safetensors"))))
    return max_abs_diff(*merged)


@pytest.mark.slow
def test_deepspeed_zero2_on_two_cpu_ranks_equals_one_process(nodes):
    out = nodes.root / "zero2"
    over = nodes.over(out, nproc_per_node=2, per_device_train_batch_size=1,
                      deepspeed=str(REPO / "examples/deepspeed/ds_z2_config.json"))
    assert run_cli(over, nodes.root / "zero2.log", nodes.env) == 0, nodes.log("zero2.log")[-3000:]
    assert (out / "checkpoint-3" / "global_step3").is_dir()  # DeepSpeed's own ZeRO checkpoint
    got, ref = losses(out), losses(nodes.ref)
    assert got.keys() == ref.keys() and max(abs(got[s] - ref[s]) for s in ref) < TOL
    assert max_abs_diff(adapter(out), adapter(nodes.ref)) < TOL


@pytest.mark.slow
def test_streaming_on_two_ranks_resumes_like_one_process(nodes):
    """Each rank reads the stream and takes its slice of every global batch; the position saved
    is the furthest over the ranks, so a resumed 2-rank run continues where both left off."""
    stream = {"streaming": True, "buffer_size": 4, "max_steps": 4, "save_steps": 2}
    one, two = nodes.root / "stream1", nodes.root / "stream2"
    assert run_cli(nodes.over(one, **stream), nodes.root / "stream1.log", nodes.env) == 0
    over = nodes.over(two, nproc_per_node=2, per_device_train_batch_size=1, **stream)
    assert run_cli({**over, "max_steps": 2}, nodes.root / "stream2.log", nodes.env) == 0
    assert run_cli({**over, "resume_from_checkpoint": "auto"}, nodes.root / "stream2.log",
                   nodes.env) == 0, nodes.log("stream2.log")[-3000:]
    assert "stream: rows up to 3 were trained on" in nodes.log("stream2.log")
    got, ref = losses(two), losses(one)
    assert got.keys() == ref.keys() == {1, 2, 3, 4}
    assert max(abs(got[s] - ref[s]) for s in ref) < TOL
    assert max_abs_diff(adapter(two), adapter(one)) < TOL
