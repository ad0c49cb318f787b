"""A stand-in for the Hugging Face Hub on 127.0.0.1, for tests (no test touches the network).

It answers the endpoints the installed ``huggingface_hub`` client calls for model and dataset
repos, so the real client code runs against it (nothing of ``huggingface_hub`` is mocked):

- ``GET  /api/{models,datasets}/<org>/<name>[/revision/<rev>]``: repo info (``sha``, ``siblings``)
- ``GET  /api/{models,datasets}/<org>/<name>/tree/<rev>[/<path>]``: the file listing
- ``POST /api/{models,datasets}/<org>/<name>/paths-info/<rev>``: info on given paths
- ``HEAD|GET /[datasets/]<org>/<name>/resolve/<rev>/<file>``: the file, with ``ETag``,
  ``X-Repo-Commit``, ``Content-Length`` and ``Range`` support (HTTP 206)

Errors look like the Hub's: ``X-Error-Code`` ``RepoNotFound`` (404), ``RevisionNotFound``,
``EntryNotFound``, and ``GatedRepo`` (401 without a token, 403 with a token not granted access).
Faults for tests: ``drop(file, after_bytes, times)`` closes the connection mid-file.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".parquet", ".arrow", ".gguf")


def _sha1_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    repo_type: str  # "model" | "dataset"
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> files
    refs: dict[str, str] = field(default_factory=dict)  # branch/tag -> sha
    gated: bool = False
    tokens: set[str] = field(default_factory=set)  # tokens granted access to a gated repo

    def commit(self, rev: str) -> str | None:
        if rev in self.commits:
            return rev
        return self.refs.get(rev)


class StandInHub:
    """A threaded HTTP server holding repos in memory; ``url`` is what HF_ENDPOINT points at."""

    def __init__(self):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.drops: dict[str, list[int]] = {}  # file path -> [after_bytes, times left]
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, repo_id: str, files: dict[str, bytes] | Path, *, repo_type: str = "model",
            revision: str = "main", gated: bool = False, tokens=()) -> str:
        """Publish ``files`` (a mapping or a folder) as a new commit on ``revision``; the sha."""
        if isinstance(files, Path):
            files = {p.relative_to(files).as_posix(): p.read_bytes()
                     for p in sorted(files.rglob("*")) if p.is_file()}
        key = (repo_type, repo_id)
        repo = self.repos.setdefault(key, Repo(repo_id, repo_type))
        repo.gated, repo.tokens = gated, set(tokens)
        digest = hashlib.sha1(repr(sorted((k, _sha1_blob(v)) for k, v in files.items())).encode()
                              + revision.encode() + str(len(repo.commits)).encode())
        sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[revision] = sha
        return sha

    def drop(self, path: str, after_bytes: int, times: int = 1) -> None:
        """Close the connection after ``after_bytes`` of ``path``, for the next ``times`` GETs."""
        self.drops[path] = [after_bytes, times]

    def file_requests(self, name: str) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if "/resolve/" in r[1] and r[1].endswith("/" + name)]


def _entry(path: str, data: bytes) -> dict:
    entry = {"type": "file", "path": path, "size": len(data), "oid": _sha1_blob(data)}
    if path.endswith(LFS_SUFFIXES):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                        "pointerSize": 134}
    return entry


def _tree(files: dict[str, bytes], prefix: str, recursive: bool) -> list[dict]:
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    out, dirs = [], set()
    for path in sorted(files):
        if not path.startswith(base):
            continue
        rest = path[len(base):]
        if "/" in rest and not recursive:
            dirs.add(base + rest.split("/", 1)[0])
            continue
        if recursive:  # every parent folder is listed too, as the Hub does
            parts = rest.split("/")[:-1]
            dirs.update(base + "/".join(parts[:i + 1]) for i in range(len(parts)))
        out.append(_entry(path, files[path]))
    folders = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()}
               for d in sorted(dirs)]
    return folders + out


def _handler(hub: StandInHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: tests read hub.requests instead
            pass

        # ---- plumbing
        def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
                  ctype: str = "application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str):
            body = json.dumps({"error": message}).encode()
            self._send(status, body, {"X-Error-Code": code, "X-Error-Message": message})

        def _json(self, obj):
            self._send(200, json.dumps(obj).encode())

        def _token(self) -> str | None:
            auth = self.headers.get("Authorization") or ""
            return auth[7:] if auth.startswith("Bearer ") else None

        def _repo(self, repo_type: str, repo_id: str) -> Repo | None:
            repo = hub.repos.get((repo_type, repo_id))
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
            return repo

        def _commit(self, repo: Repo, rev: str) -> str | None:
            sha = repo.commit(unquote(rev))
            if sha is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return sha

        # ---- routes
        def do_GET(self):
            self._route()

        def do_HEAD(self):
            self._route()

        def do_POST(self):
            self._route()

        def _route(self):
            url = urlsplit(self.path)
            with hub.lock:
                hub.requests.append((self.command, url.path, self.headers.get("Range")))
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if parts[:1] == ["api"] and len(parts) >= 4 and parts[1] in ("models", "datasets"):
                return self._api(parts[1][:-1], "/".join(parts[2:4]), parts[4:], url.query)
            repo_type = "model"
            if parts[:1] == ["datasets"]:
                repo_type, parts = "dataset", parts[1:]
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve(repo_type, "/".join(parts[:2]), parts[3], "/".join(parts[4:]))
            self._error(404, "EntryNotFound", f"no route for {url.path}")

        def _api(self, repo_type: str, repo_id: str, rest: list[str], query: str):
            repo = self._repo(repo_type, repo_id)
            if repo is None:
                return
            verb = rest[0] if rest else "revision"
            rev = rest[1] if len(rest) > 1 else "main"
            sha = self._commit(repo, rev)
            if sha is None:
                return
            files = repo.commits[sha]
            if verb == "revision":
                return self._json({"id": repo_id, "sha": sha, "private": False,
                                   "gated": "manual" if repo.gated else False, "disabled": False,
                                   "siblings": [{"rfilename": f} for f in sorted(files)],
                                   "lastModified": "2026-01-01T00:00:00.000Z", "tags": []})
            if verb == "tree":
                recursive = parse_qs(query).get("recursive", ["false"])[0].lower() == "true"
                return self._json(_tree(files, "/".join(rest[2:]), recursive))
            if verb == "paths-info":
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                wanted = form.get("paths", [])
                out = [_entry(p, files[p]) for p in wanted if p in files]
                out += [{"type": "directory", "path": p, "oid": "0" * 40} for p in wanted
                        if p not in files and any(f.startswith(p.rstrip("/") + "/") for f in files)]
                return self._json(out)
            self._error(404, "EntryNotFound", f"unknown api call {verb}")

        def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str):
            repo = self._repo(repo_type, repo_id)
            if repo is None:
                return
            if repo.gated and self._token() not in repo.tokens:
                status = 401 if self._token() is None else 403
                return self._error(status, "GatedRepo", "Access to this repository is restricted")
            sha = self._commit(repo, rev)
            if sha is None:
                return
            data = repo.commits[sha].get(path)
            if data is None:
                return self._error(404, "EntryNotFound", f"{path} does not exist")
            entry = _entry(path, data)
            etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
            headers = {"ETag": f'"{etag}"', "X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
            start = self._range_start(len(data))
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self._send_file(206 if start else 200, data[start:], headers, path)

        def _range_start(self, size: int) -> int:
            value = self.headers.get("Range") or ""
            if value.startswith("bytes=") and value[6:].split("-")[0].isdigit():
                return min(int(value[6:].split("-")[0]), size)
            return 0

        def _send_file(self, status: int, body: bytes, headers: dict, path: str):
            drop = hub.drops.get(path)
            if self.command != "GET" or not drop or drop[1] <= 0:
                return self._send(status, body, headers, "application/octet-stream")
            drop[1] -= 1
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[:drop[0]])
            self.wfile.flush()
            self.close_connection = True  # the peer sees a short body: a dropped connection

    return Handler


def point_clients_at(monkeypatch, url: str, hf_home: Path) -> None:
    """Point this process's HF clients (``huggingface_hub``, ``datasets``) at ``url``, online.

    ``huggingface_hub`` and ``datasets`` read HF_ENDPOINT / HF_HUB_OFFLINE / HF_HOME into module
    constants at import, and tests/conftest.py sets HF_HUB_OFFLINE=1 before that; their own test
    suites patch those constants, and so do we (a subprocess gets the environment instead).
    """
    import sys

    # Imported before the environment changes, so modules first imported during a test do not
    # keep this test's endpoint and online mode for the rest of the session.
    import datasets.config  # noqa: F401
    import huggingface_hub.constants  # noqa: F401

    hf_home.mkdir(parents=True, exist_ok=True)
    env = {"HF_ENDPOINT": url, "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
           "HF_DATASETS_CACHE": str(hf_home / "datasets"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN",
                "HUGGING_FACE_HUB_TOKEN", "USE_MODELSCOPE_HUB", "HF_HUB_ENABLE_HF_TRANSFER"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    constants = sys.modules["huggingface_hub.constants"]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    config = sys.modules["datasets.config"]
    monkeypatch.setattr(config, "HF_ENDPOINT", url)
    monkeypatch.setattr(config, "HUB_DATASETS_URL",
                        url + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(config, "HF_DATASETS_CACHE", hf_home / "datasets")
    monkeypatch.setattr(config, "HF_CACHE_HOME", str(hf_home))
