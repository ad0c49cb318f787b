"""The issue's "done when": with only the stand-in hub reachable, `tunesmith train` with a hub
model ID and a hub dataset ID downloads and trains; a second run with HF_HUB_OFFLINE=1 (and the
hub gone) trains from the cache (the one-line failures: tests/unit/test_hub.py). Real CLI
subprocesses, so the HF clients read the environment the way they do for a user."""

from __future__ import annotations

import json
import os
import subprocess
import sys

MODEL = "tunesmith-test/tiny-chat"
DATASET = "tunesmith-test/sums"
ROWS = [{"instruction": f"What is {i} plus {i}?", "output": f"{2 * i}."} for i in range(12)]


def _train(tmp_path, name: str, env: dict) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "tunesmith.cli", "train", f"model_name_or_path={MODEL}",
            f"dataset={DATASET}", f"output_dir={tmp_path / name}", "max_steps=2", "dtype=fp32",
            "lora_rank=4", "cutoff_len=64", "per_device_train_batch_size=4", "logging_steps=1",
            "save_strategy=no", "plot_loss=false", f"dataset_dir={tmp_path}"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600,
                          cwd=tmp_path)


def _losses(out) -> list[float]:
    lines = (out / "trainer_log.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if "loss" in r]


def test_train_from_hub_ids_then_offline_from_the_cache(hub_env, tiny_model_dir, tmp_path):
    hub_env.add(MODEL, {p.name: p.read_bytes() for p in tiny_model_dir.iterdir() if p.is_file()})
    hub_env.add(DATASET, {"data/train.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS).encode()},
                repo_type="dataset")
    env = dict(os.environ, TUNESMITH_HOME=str(tmp_path / "home"))
    first = _train(tmp_path, "online", env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"Downloading {MODEL} from {hub_env.url}" in first.stderr
    assert any("/datasets/" + DATASET in r[1] for r in hub_env.requests)
    report = json.loads((tmp_path / "online" / "data_report.json").read_text())
    assert report["kept"] == 12 and report["sources"] == [f"{DATASET}: {DATASET}[train] (alpaca)"]
    hub_env.close()  # nothing to reach any more
    offline = dict(env, HF_HUB_OFFLINE="1")
    second = _train(tmp_path, "offline", offline)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Downloading" not in second.stderr
    assert _losses(tmp_path / "offline") == _losses(tmp_path / "online")
