"""Security lints and attacks (RELIABILITY.md cases 12, 29-35): code scans over src/, refused
pickles and custom model code, shell metacharacters in run names, loopback defaults,
dependency floors, unsafe YAML, and the web UI's path containment."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO

SRC = REPO / "src" / "tunesmith"
FLOORS = {"torch": "2.10", "gradio": "6.16", "starlette": "1.0.1"}


def _calls():
    """Every call in src/ as (file:line, dotted callee name, the ast.Call)."""
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                yield f"{path.relative_to(REPO)}:{node.lineno}", _name(node.func), node


def _name(func) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_scan_sees_the_source_tree():
    assert sum(1 for _ in _calls()) > 500  # guards against an empty or wrong scan root


def test_no_shell_true_or_os_system_in_src():
    bad = [f"{where} {name}" for where, name, call in _calls()
           if name in ("os.system", "os.popen", "system", "popen")
           or isinstance(_kw(call, "shell"), ast.Constant) and _kw(call, "shell").value is not False
           or _kw(call, "shell") is not None and not isinstance(_kw(call, "shell"), ast.Constant)]
    assert not bad, bad


def test_no_literal_trust_remote_code_true_in_src():
    bad = []
    for where, _, call in _calls():
        value = _kw(call, "trust_remote_code")
        if isinstance(value, ast.Constant) and value.value is True:
            bad.append(where)
    for path in SRC.rglob("*.py"):  # also dict literals and assignments, as text
        text = path.read_text(encoding="utf-8").replace(" ", "")
        if "trust_remote_code=True" in text or '"trust_remote_code":True' in text:
            bad.append(str(path))
    assert not bad, bad


def test_every_torch_load_passes_weights_only_true():
    loads = [(where, call) for where, name, call in _calls()
             if name.endswith("torch.load") or name == "load" and "torch" in where]
    bad = [where for where, call in loads
           if not (isinstance(_kw(call, "weights_only"), ast.Constant)
                   and _kw(call, "weights_only").value is True)]
    assert not bad, bad


def test_yaml_is_only_safe_loaded_in_src():
    bad = [where for where, name, call in _calls()
           if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all")]
    assert not bad, bad


def _model_dir(tmp_path: Path, config: dict, weights: str) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    (d / weights).write_bytes(b"\x80\x04not really a pickle")
    return d


def test_pickle_bin_model_dir_is_refused_by_default(tmp_path):
    from tunesmith.config import load_config
    from tunesmith.errors import ModelError
    from tunesmith.model.load import check_weights_safe, load_model

    d = _model_dir(tmp_path, {"model_type": "llama"}, "pytorch_model.bin")
    with pytest.raises(ModelError, match="pickle"):
        check_weights_safe(d, allow_pickle=False)
    check_weights_safe(d, allow_pickle=True)  # the explicit opt-in passes this check
    cfg = load_config(None, {"model_name_or_path": str(d)})
    with pytest.raises(ModelError, match="allow_pickle"):
        load_model(cfg.model)  # refused before transformers unpickles anything


def test_model_with_custom_code_is_refused_unless_trusted(tmp_path):
    from tunesmith.config import load_config
    from tunesmith.errors import ModelError
    from tunesmith.model.load import check_remote_code, load_model

    auto_map = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    d = _model_dir(tmp_path, {"model_type": "llama", "auto_map": auto_map}, "model.safetensors")
    with pytest.raises(ModelError, match="trust_remote_code"):
        check_remote_code(d, trust=False)
    check_remote_code(d, trust=True)
    with pytest.raises(ModelError, match="auto_map"):
        load_model(load_config(None, {"model_name_or_path": str(d)}).model)


def test_unsafe_yaml_tag_is_rejected(tmp_path):
    from tunesmith.config import load_config
    from tunesmith.errors import ConfigError

    marker = tmp_path / "PWNED"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f"model_name_or_path: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(cfg))
    assert not marker.exists()
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "train", str(cfg)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_shell_metacharacters_in_output_dir_are_a_plain_name(tmp_path, tiny_model_dir, chat_data):
    name = "run;echo hi$(touch PWNED)`touch PWNED2`&& touch PWNED3"
    proc = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "train", f"model_name_or_path={tiny_model_dir}",
         f"dataset={chat_data}", f"output_dir={name}", "max_steps=2", "save_strategy=no",
         "dtype=fp32", "lora_rank=4", "cutoff_len=64", "logging_steps=1"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / name / "adapter_model.safetensors").is_file()
    assert not list(tmp_path.rglob("PWNED*")) and not list(REPO.glob("PWNED*"))


def test_webui_and_serve_default_to_loopback():
    import argparse

    from tunesmith.commands import webui
    from tunesmith.config import ServeConfig
    from tunesmith.webui.roots import DEFAULT_HOST, public_bind_warning

    assert ServeConfig().host == "127.0.0.1" and DEFAULT_HOST == "127.0.0.1"
    parser = argparse.ArgumentParser()
    webui.add_arguments(parser)
    args = parser.parse_args([])
    assert args.host == "127.0.0.1" and args.share is False
    assert public_bind_warning("127.0.0.1", False, auth=False) is None
    assert "without authentication" in public_bind_warning("0.0.0.0", False, auth=False)
    assert "share link" in public_bind_warning("127.0.0.1", True, auth=False)
    assert public_bind_warning("0.0.0.0", True, auth=True) is None


def _pyproject_floor(package: str) -> Version | None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(meta["dependencies"]) + [r for group in meta["optional-dependencies"].values()
                                         for r in group]
    floors = [Version(spec.version) for r in map(Requirement, reqs) if r.name == package
              for spec in r.specifier if spec.operator in (">=", "==")]
    return min(floors) if floors else None


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_dependency_floors_in_pyproject_and_installed(package):
    floor = Version(FLOORS[package])
    declared = _pyproject_floor(package)
    assert declared is not None and declared >= floor, f"pyproject: {package} floor {declared}"
    installed = Version(importlib.metadata.version(package))
    assert installed >= floor, f"installed {package} {installed} < {floor}"


def test_doctor_floors_match_the_security_floors():
    from tunesmith.commands.doctor import FLOORS as DOCTOR_FLOORS

    for package, floor in FLOORS.items():
        assert Version(DOCTOR_FLOORS[package]) >= Version(floor)


@pytest.mark.parametrize("attempt", ["../outside", "../../etc/passwd", "/etc/passwd",
                                     "a/../../outside", "%2e%2e/%2e%2e/etc", "~/x", "link/escape"])
def test_webui_paths_stay_inside_their_root(tmp_path, attempt):
    from tunesmith.webui.roots import PathRefused, Roots, inside, run_dir

    roots = Roots.create(tmp_path / "data", tmp_path / "saves")
    (tmp_path / "outside").mkdir()
    (roots.output / "link").symlink_to(tmp_path / "outside")
    try:
        target = inside(roots.output, attempt)
    except PathRefused:
        return
    # Only names that stay inside may pass (an encoded '..' is just a folder name here).
    assert target.is_relative_to(roots.output), target
    assert attempt.startswith("%2e")
    assert run_dir(roots, attempt).is_relative_to(roots.output)


def test_webui_path_refusals_include_prefix_siblings(tmp_path):
    from tunesmith.webui.roots import PathRefused, Roots, inside, run_dir

    roots = Roots.create(tmp_path / "data", tmp_path / "saves")
    with pytest.raises(PathRefused):
        inside(roots.output, str(tmp_path / "saves-evil" / "x"))  # shares the string prefix
    for name in ("", ".", "..", "  "):
        with pytest.raises(PathRefused):
            run_dir(roots, name)
    assert run_dir(roots, "a;b$(c)`d`") == roots.output / "a;b$(c)`d`"
