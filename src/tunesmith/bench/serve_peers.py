"""Peers' OpenAI-style servers for ``tunesmith bench serve``: LLaMA-Factory's API server
(``llamafactory-cli api``: its HF engine, one ``generate`` per request) on the same model,
started from its bench venv on a free loopback port."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def llamafactory_server(out: Path, dtype: str = "auto", startup_s: float = 600):
    """``with llamafactory_server(bench_dir) as base_url:`` -> ``http://127.0.0.1:P/v1``, with
    the weights in ``dtype`` (``auto``: the dtype tunesmith serves in on this machine)."""
    from ..config import load_config
    from ..hardware import resolve_dtype
    from ..model.load import resolve_model_path
    from ..serve.launch import free_port
    from .peers import PEERS, command, install
    from .prepare import SMOLLM2_SYSTEM
    from .run import say

    peer = PEERS["llamafactory"]
    python = install(peer, Path(out), say)
    port = free_port()
    spec = Path(tempfile.mkdtemp(prefix="lf-api-")) / "spec.json"
    model = resolve_model_path(load_config(None, {}).model.model_name_or_path)
    lf_dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[resolve_dtype(dtype)]
    spec.write_text(json.dumps({"model": str(model), "port": port, "dtype": lf_dtype,
                                "default_system": SMOLLM2_SYSTEM}), encoding="utf-8")
    cmd, env = command(peer, python, spec)
    cmd[1] = str(Path(cmd[1]).with_name("lf_api.py"))
    log = spec.with_name("server.log").open("w", encoding="utf-8")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/v1/models", proc, startup_s)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait(url: str, proc, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"LLaMA-Factory's API server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise RuntimeError(f"LLaMA-Factory's API server not up after {limit_s} s")


PEER_SERVERS = {"llamafactory": llamafactory_server}
