"""User mistakes: one clear line, exit code 2, no traceback."""

import subprocess
import sys

import pytest


def tunesmith(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tunesmith.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args,needle", [
    (["train", "learnig_rate=1e-4"], "did you mean 'learning_rate'"),
    (["train", "model_name_or_path=/nonexistent/model", "dataset=x.json"], "/nonexistent/model"),
    (["train", "missing.yaml"], "config file 'missing.yaml' not found"),
])
def test_user_errors_are_one_line(args, needle):
    result = tunesmith(*args)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: [1, 2\nlora_rank: 8\n")
    result = tunesmith("train", str(bad))
    assert result.returncode == 2 and "invalid YAML" in result.stderr and "Traceback" not in result.stderr


def test_missing_dataset_file(tiny_model_dir, tmp_path):
    result = tunesmith("train", f"model_name_or_path={tiny_model_dir}", f"dataset={tmp_path}/nope.json",
                       f"output_dir={tmp_path}/o")
    assert result.returncode == 2 and "nope.json" in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_traceback():
    result = tunesmith("train", "learnig_rate=1", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_help_lists_verbs():
    result = tunesmith("--help")
    assert result.returncode == 0
    for verb in ("train", "chat", "predict", "export", "serve", "data", "sweep", "env"):
        assert verb in result.stdout


def test_env_shows_dtype_mixed_precision_and_attention_choice():
    from tunesmith.hardware import detect

    result = tunesmith("env")
    assert result.returncode == 0
    hw = detect()
    assert f"auto dtype    {hw.auto_dtype} (" in result.stdout
    expected = "bf16 autocast" if hw.auto_dtype == "bf16" else "fp32 weights"
    assert expected in result.stdout.split("training")[1].splitlines()[0]
    assert "attention     hybrid" in result.stdout
