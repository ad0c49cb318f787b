"""``tunesmith doctor``: exit 0 when versions, hardware, model cache and disk are fine; 1 with a
summary naming each failed check."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest

from tunesmith.commands import doctor


def _args(tmp_path, **kw):
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)
    args = parser.parse_args(["--output-dir", str(tmp_path / "saves")])
    args.min_free_gb = kw.get("min_free_gb", 0.0)
    return args


def test_all_ok_exits_0(tmp_path, bundled_dir, capsys):
    assert doctor.run(_args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out and "dtype" in out and "OK" in out


def test_cli_reports_versions_and_dtype(tmp_path, bundled_dir):
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "doctor", "--output-dir",
                           str(tmp_path), "--min-free-gb", "0"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torch" in proc.stdout and "needs >= 2.10" in proc.stdout and "dtype" in proc.stdout


@pytest.fixture
def broken_cache(tmp_path, bundled_dir, monkeypatch):
    """A TUNESMITH_HOME whose converted SmolLM2 has a truncated safetensors file."""
    home = tmp_path / "home"
    model = home / "models" / "smollm2-135m"
    shutil.copytree(bundled_dir, model, ignore=shutil.ignore_patterns("*.safetensors"))
    data = (bundled_dir / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    monkeypatch.setenv("TUNESMITH_HOME", str(home))
    return model


def test_truncated_model_cache_fails_with_summary(tmp_path, broken_cache, capsys):
    assert doctor.run(_args(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "[FAIL] model smollm2-135m" in out and "truncated" in out
    assert "1 problem(s): model smollm2-135m" in out


def test_unreadable_config_fails(tmp_path, broken_cache, capsys):
    (broken_cache / "config.json").write_text("{not json")
    assert doctor.run(_args(tmp_path)) == 1
    assert "config.json unreadable" in capsys.readouterr().out


def test_good_header_passes_and_garbage_fails(tmp_path, bundled_dir):
    header = doctor.safetensors_header(bundled_dir / "model.safetensors")
    assert any(k != "__metadata__" for k in header)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError):
        doctor.safetensors_header(bad)


def test_version_below_floor_fails(tmp_path, bundled_dir, monkeypatch, capsys):
    monkeypatch.setitem(doctor.FLOORS, "torch", "99.0")
    assert doctor.run(_args(tmp_path)) == 1
    assert "torch: " in capsys.readouterr().out.splitlines()[-1]


def test_too_little_disk_fails(tmp_path, bundled_dir, capsys):
    assert doctor.run(_args(tmp_path, min_free_gb=1e9)) == 1
    assert "disk:" in capsys.readouterr().out.splitlines()[-1]

