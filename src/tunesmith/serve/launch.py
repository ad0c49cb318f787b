"""Start ``tunesmith serve`` as a child process on a free loopback port (tests and benchmarks).

The server is a real uvicorn process, so what is measured or tested is what users run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``with ServerProcess(overrides) as server: server.base_url`` -> ``http://127.0.0.1:P/v1``.

    Args:
        overrides: config keys (``{"model_name_or_path": ..., "api_key": ...}``).
        config: an optional YAML config file.
        env: extra environment variables for the server.
        startup_timeout: seconds to wait for ``/health`` (loading a model takes a while).
    """

    def __init__(self, overrides: dict | None = None, config: str | None = None,
                 env: dict | None = None, startup_timeout: float = 180.0):
        self.overrides = dict(overrides or {})
        self.overrides.setdefault("host", "127.0.0.1")
        self.port = int(self.overrides.setdefault("port", free_port()))
        self.config, self.env, self.startup_timeout = config, env or {}, startup_timeout
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="tunesmith-serve-", suffix=".log",
                                                delete=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> "ServerProcess":
        cmd = [sys.executable, "-m", "tunesmith.cli", "serve"]
        cmd += [self.config] if self.config else []
        cmd += [f"{k}={v}" for k, v in self.overrides.items()]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **self.env}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not healthy after {self.startup_timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL if it does not exit in ``timeout`` s."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def log(self) -> str:
        self._log.flush()
        with open(self._log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        os.unlink(self._log.name)
