"""LLaMA-Factory 0.9.5's own example configs run with only the program name changed.

``tests/data/llamafactory_examples/`` is a snapshot of its SFT LoRA and QLoRA examples with the hub model swapped for the bundled one and its demo dataset for ours (see the
README there). Each runs as ``tunesmith train <file>`` plus a smoke step count, from a folder
whose ``data/`` is ``examples/data`` (LLaMA-Factory's default ``dataset_dir``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import REPO

SNAPSHOT = REPO / "tests" / "data" / "llamafactory_examples"
EXAMPLES = sorted(SNAPSHOT.glob("*.yaml"))
SMOKE = ["max_steps=1", "max_samples=1"]


def _hardware_overrides(config: dict) -> list[str]:
    """bf16 on a CPU without native bf16 is refused with one line (RELIABILITY 10: it would
    train many times slower); there the examples' `bf16: true` is turned off."""
    from tunesmith.hardware import detect

    hw = detect()
    if config.get("bf16") and hw.device == "cpu" and not hw.bf16_native:
        return ["bf16=false"]
    return []


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_llamafactory_example_trains(path: Path, tmp_path, bundled_dir):
    (tmp_path / "data").symlink_to(REPO / "examples" / "data")
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    cmd = [sys.executable, "-m", "tunesmith.cli", "train", str(path), *SMOKE,
           *_hardware_overrides(config)]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / config["output_dir"]
    assert (run / "adapter_model.safetensors").is_file()
    assert (run / "trainer_log.jsonl").is_file() and "done: train_loss=" in out.stdout
    assert "error" not in out.stderr.lower()


def test_snapshot_changes_only_the_model_and_the_dataset():
    for path in EXAMPLES:
        changed = [line for line in path.read_text(encoding="utf-8").splitlines()
                   if "# was " in line]
        assert [line.split(":")[0] for line in changed] == ["model_name_or_path", "dataset"]
