"""Model IDs through the real huggingface_hub client against the stand-in hub (tests/hubserver.py).

Cases: first download, second run offline from the cache, pinned revision, unknown repo and
revision, gated repo (401/403), connection dropped mid-file (resumed; cleaned when it keeps
dropping), disk full (a file-size limit in a subprocess), the bundled model's own ID offline,
ModelScope (missing package; the call path through a stand-in module).
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunesmith.errors import MissingExtraError
from tunesmith.hub import HubError, HubUnreachable, ModelRequest, resolve_model
from tunesmith.model.load import resolve_model_path

ID = "tunesmith-test/tiny-chat"


@pytest.fixture
def tiny_repo(hub_env, tiny_model_dir) -> Path:
    """The tiny model published as ID, plus files a download must skip (pickle, custom code)."""
    files = {p.name: p.read_bytes() for p in tiny_model_dir.iterdir() if p.is_file()}
    files["pytorch_model.bin"] = b"pickle weights are never fetched by default"
    files["modeling_evil.py"] = b"raise SystemExit('custom code is never fetched')"
    files["README.md"] = b"# tiny"
    hub_env.add(ID, files)
    return tiny_model_dir


def _cache() -> Path:
    return Path(os.environ["HF_HUB_CACHE"])


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_first_download_fetches_only_safe_files_then_offline_uses_the_cache(tiny_repo, hub_env,
                                                                             monkeypatch):
    path = resolve_model_path(ID, quiet=True)
    assert path.is_relative_to(_cache()) and (path / "config.json").is_file()
    names = {p.name for p in path.iterdir()}
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not names & {"pytorch_model.bin", "modeling_evil.py", "README.md"}, names
    weights = (tiny_repo / "model.safetensors").read_bytes()
    assert (path / "model.safetensors").read_bytes() == weights
    hub_env.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_path(ID, quiet=True) == path
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert resolve_model_path(ID, quiet=True) == path  # the cache first, online too
    assert hub_env.requests == []


def test_allow_pickle_fetches_bin_weights(tiny_repo):
    path = resolve_model(ModelRequest(ID, allow_pickle=True), quiet=True)
    assert (path / "pytorch_model.bin").is_file()


def test_offline_and_not_cached_names_id_cache_and_variable(hub_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachable) as err:
        resolve_model_path(ID, quiet=True)
    line = _one_line(err)
    assert ID in line and str(_cache()) in line and "HF_HUB_OFFLINE" in line
    assert hub_env.requests == []


def test_pinned_revision(tiny_repo, hub_env):
    old = hub_env.repos[("model", ID)].refs["main"]
    hub_env.repos[("model", ID)].refs["v1"] = old
    files = dict(hub_env.repos[("model", ID)].commits[old])
    files["config.json"] = files["config.json"].replace(b"{", b'{"tunesmith_marker": 2,', 1)
    new = hub_env.add(ID, files)
    latest = resolve_model(ModelRequest(ID), quiet=True)
    pinned = resolve_model(ModelRequest(ID, revision="v1"), quiet=True)
    by_sha = resolve_model(ModelRequest(ID, revision=old), quiet=True)
    assert latest.name == new and pinned.name == old and by_sha == pinned
    assert b"tunesmith_marker" in (latest / "config.json").read_bytes()
    assert b"tunesmith_marker" not in (pinned / "config.json").read_bytes()
    with pytest.raises(HubError) as err:
        resolve_model(ModelRequest(ID, revision="no-such-branch"), quiet=True)
    assert "revision 'no-such-branch' not found" in _one_line(err)


def test_model_revision_key_reaches_the_hub(tiny_repo, hub_env):
    from tunesmith.config import load_config

    sha = hub_env.repos[("model", ID)].refs["main"]
    cfg = load_config(None, {"model_name_or_path": ID, "model_revision": sha})
    assert resolve_model_path(ID, quiet=True, model_cfg=cfg.model).name == sha


def test_unknown_repo(hub_env):
    with pytest.raises(HubError) as err:
        resolve_model_path("nobody/no-such-model", quiet=True)
    line = _one_line(err)
    assert "'nobody/no-such-model' not found on " + hub_env.url in line
    assert not isinstance(err.value, HubUnreachable)


def test_gated_repo_names_what_to_accept_and_the_token(hub_env, tiny_model_dir, monkeypatch):
    files = {p.name: p.read_bytes() for p in tiny_model_dir.iterdir() if p.is_file()}
    hub_env.add("gated-org/tiny", files, gated=True, tokens=["hf_granted"])
    with pytest.raises(HubError) as err:
        resolve_model_path("gated-org/tiny", quiet=True)
    line = _one_line(err)
    assert "is gated" in line and f"{hub_env.url}/gated-org/tiny" in line and "HF_TOKEN" in line
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(HubError) as err:
        resolve_model_path("gated-org/tiny", quiet=True)
    assert "has no access" in _one_line(err) and "hf_wrong" not in str(err.value)
    statuses = {r[0] for r in hub_env.requests}
    assert "HEAD" in statuses
    monkeypatch.delenv("HF_TOKEN")
    from tunesmith.config import load_config

    cfg = load_config(None, {"model_name_or_path": "gated-org/tiny", "hf_token": "hf_granted"})
    path = resolve_model_path("gated-org/tiny", quiet=True, model_cfg=cfg.model)
    assert (path / "model.safetensors").is_file()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_connection_dropped_mid_file_is_resumed(tiny_repo, hub_env):
    size = (tiny_repo / "model.safetensors").stat().st_size
    # past the client's 10 MiB chunk, so the bytes already written are kept and resumed
    hub_env.drop("model.safetensors", after_bytes=10_600_000, times=1)
    assert size > 10_600_000
    path = resolve_model_path(ID, quiet=True)
    assert _sha(path / "model.safetensors") == _sha(tiny_repo / "model.safetensors")
    ranges = [r[2] for r in hub_env.file_requests("model.safetensors") if r[0] == "GET"]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


def test_connection_that_keeps_dropping_leaves_no_partial_file(tiny_repo, hub_env, monkeypatch):
    hub_env.drop("model.safetensors", after_bytes=1000, times=100)
    with pytest.raises(HubError) as err:
        resolve_model_path(ID, quiet=True)
    assert ID in _one_line(err)
    leftovers = [p for p in _cache().rglob("*") if p.name.endswith(".incomplete")]
    assert leftovers == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a partial snapshot is never taken for a model
    with pytest.raises(HubUnreachable):
        resolve_model_path(ID, quiet=True)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub_env.drops.clear()
    path = resolve_model_path(ID, quiet=True)  # the next run finishes it
    assert _sha(path / "model.safetensors") == _sha(tiny_repo / "model.safetensors")


def test_stale_partial_download_is_cleaned(tiny_repo, hub_env):
    blobs = _cache() / "models--tunesmith-test--tiny-chat" / "blobs"
    blobs.mkdir(parents=True)
    stale = blobs / "0123abcd.deadbeef.incomplete"
    stale.write_bytes(b"half a file from a killed download")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    resolve_model_path(ID, quiet=True)
    assert not stale.exists()


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # 1 MiB: weights don't fit


def test_disk_full_is_one_line_and_leaves_no_corrupt_cache(tiny_repo, hub_env):
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "download", ID],
                          capture_output=True, text=True, env=dict(os.environ),
                          preexec_fn=_limit_file_size, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert lines[-1].startswith(f"error: no space left on device while downloading model '{ID}'")
    assert "Traceback" not in proc.stderr
    blobs = list((_cache() / "models--tunesmith-test--tiny-chat" / "blobs").iterdir())
    weights = (tiny_repo / "model.safetensors").stat().st_size
    assert all(not p.name.endswith(".incomplete") and p.stat().st_size != weights for p in blobs)


def test_bundled_models_own_id_resolves_to_the_bundled_weights_offline(hub_env, bundled_dir,
                                                                       monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct", quiet=True) == bundled_dir
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: unreachable
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct", quiet=True) == bundled_dir


def test_modelscope_without_the_package_is_one_line(hub_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # as if not installed
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    with pytest.raises(MissingExtraError) as err:
        resolve_model_path("qwen/Qwen2.5-0.5B-Instruct", quiet=True)
    assert "pip install 'tunesmith[modelscope]'" in _one_line(err)


def test_modelscope_call_path_through_a_stand_in_module(hub_env, tiny_model_dir, tmp_path,
                                                        monkeypatch):
    calls = []

    class StandIn:  # the one function tunesmith calls, with modelscope's signature
        @staticmethod
        def snapshot_download(model_id, revision=None, cache_dir=None, allow_patterns=None,
                              local_files_only=False):  # (modelscope 1.40's parameter names)
            calls.append((model_id, revision, cache_dir, tuple(allow_patterns), local_files_only))
            return str(tiny_model_dir)

    monkeypatch.setitem(sys.modules, "modelscope", StandIn)
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    from tunesmith.config import load_config

    cfg = load_config(None, {"model_name_or_path": "qwen/Qwen2.5-0.5B-Instruct", "hub": "modelscope"})
    assert resolve_model_path(cfg.model.model_name_or_path, quiet=True,
                              model_cfg=cfg.model) == tiny_model_dir
    model_id, revision, cache_dir, patterns, local_only = calls[0]
    assert (model_id, revision, cache_dir) == ("qwen/Qwen2.5-0.5B-Instruct", "master", None)
    assert "*.safetensors" in patterns and "*.bin" not in patterns and not local_only
    assert hub_env.requests == []  # nothing went to the Hugging Face hub


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunesmith.cli", *argv], capture_output=True,
                          text=True, env=dict(os.environ), timeout=300)


def test_download_then_models_lists_every_cache(tiny_repo, hub_env, tmp_path, monkeypatch):
    ms = tmp_path / "ms" / "models" / "qwen" / "Qwen2___5-0___5B-Instruct"  # older layout
    new = tmp_path / "ms" / "models" / "deepseek-ai--DeepSeek-R1" / "snapshots" / "abc123"
    for folder in (ms, new):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    proc = _cli("download", ID)
    assert proc.returncode == 0, proc.stderr[-2000:]
    snapshot = Path(proc.stdout.strip().splitlines()[-1])
    assert (snapshot / "model.safetensors").is_file() and snapshot.is_relative_to(_cache())
    listing = _cli("models")
    assert listing.returncode == 0, listing.stderr[-2000:]
    out = listing.stdout
    assert "smollm2-135m" in out and "bundled" in out
    assert f"{ID}" in out and str(snapshot) in out and "main" in out
    assert "qwen/Qwen2.5-0.5B-Instruct" in out and "modelscope" in out
    assert "deepseek-ai/DeepSeek-R1" in out and str(new) in out


def test_hf_token_is_never_written_to_the_run_dir(tmp_path):
    from tunesmith.config import load_config, save_config

    cfg = load_config(None, {"model_name_or_path": ID, "hf_hub_token": "hf_secret"})
    assert cfg.model.hf_token == "hf_secret"  # LLaMA-Factory's name is an alias
    saved = save_config(cfg, tmp_path).read_text()
    assert "hf_secret" not in saved and "hf_token: null" in saved


def test_a_missing_folder_under_an_existing_one_is_a_local_path_not_an_id(tmp_path, monkeypatch,
                                                                          hub_env):
    from tunesmith.errors import ModelError

    (tmp_path / "saves").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as err:
        resolve_model_path("saves/typo", quiet=True)
    assert "'saves/typo': not found" in _one_line(err) and hub_env.requests == []
