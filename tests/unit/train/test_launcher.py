"""The torchrun relaunch: the command per node, and the one line a failed rank becomes."""

from __future__ import annotations

import io

from tunesmith.config import load_config
from tunesmith.train.launcher import _explained, _Watch, failure_line, launch_command

SUMMARY = """torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
=======================================================
tunesmith.cli FAILED
-------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-01_22:40:53
  host      : localhost
  rank      : 2 (local_rank: 0)
  exitcode  : -15 (pid: 27410)  (SIGTERM)
-------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_22:40:53
  host      : localhost
  rank      : 3 (local_rank: 1)
  exitcode  : -9 (pid: 27411)  (SIGKILL)
  error_file: <N/A>
======================================================="""


def _train(**over):
    return load_config(None, over).train


def test_each_node_gets_torchruns_arguments():
    t = _train(nproc_per_node=2, nnodes=2, node_rank=1, master_addr="10.0.0.1")
    cmd = launch_command(t, ["my.yaml", "lr=1e-4"])
    flags = dict(zip(cmd[3:15:2], cmd[4:16:2]))
    assert flags == {"--nproc_per_node": "2", "--nnodes": "2", "--node_rank": "1",
                     "--master_addr": "10.0.0.1", "--master_port": "29500", "--tee": "3"}
    assert cmd[-5:] == ["-m", "tunesmith.cli", "train", "my.yaml", "lr=1e-4"]
    one = launch_command(_train(nproc_per_node=2), [])
    assert one[one.index("--master_addr") + 1] == "127.0.0.1"  # one machine: a free local port


def test_a_failed_rank_is_one_line_with_its_last_log_line(tmp_path):
    watch, sink = _Watch(), io.StringIO()
    lines = [b"[default0]:step 3\n", b"[default1]:loading shard 7\n", b"[default1]:\n"]
    watch.pump(io.BytesIO(b"".join(lines) + SUMMARY.encode()), sink)
    assert sink.getvalue() == "step 3\nloading shard 7\n\n"  # prefixes gone, torchrun's own hidden
    t = _train(nproc_per_node=2, nnodes=2, node_rank=1, output_dir=str(tmp_path))
    line = failure_line(watch, t, 1)
    assert line == ("rank 3 (node 1, local rank 1) was killed by SIGKILL and the job was stopped; "
                    "its last log line: 'loading shard 7'; no complete checkpoint yet")


def test_a_rank_that_printed_its_error_and_then_died_exits_2():
    """Its error line is the explanation: exit 2, not a second line about a SIGABRT on the way out."""
    explained, unexplained = _Watch(), _Watch()
    abort = SUMMARY.replace("-9 (pid: 27411)  (SIGKILL)", "-6 (pid: 27411)  (SIGABRT)")
    explained.pump(io.BytesIO(b"[default1]:error: rank 1 is not running the same job\n"
                              + abort.encode()), io.StringIO())
    unexplained.pump(io.BytesIO(b"[default1]:step 2\n" + abort.encode()), io.StringIO())
    assert _explained(explained) == 2
    assert _explained(unexplained) is None
    no_summary = _Watch()  # torchrun itself failed (another node's store gone): the rank's line
    no_summary.pump(io.BytesIO(b"[default0]:error: rank 1 is not running the same job\n"
                               b"torch.distributed.DistStoreError: connection reset\n"), io.StringIO())
    assert _explained(no_summary) == 2
