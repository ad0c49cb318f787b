"""Model IDs (``org/name``) -> local paths: the HF cache first, else a download; one-line failures.

Resolution follows what the HF stack does for every peer (LLaMA-Factory, TRL):
- Hugging Face Hub through ``huggingface_hub.snapshot_download``: safetensors weights, config,
  tokenizer, chat template and generation config only (pickle ``.bin`` weights only with
  ``allow_pickle: true``), with a progress bar; ``model_revision`` pins a branch, tag or commit;
  ``HF_ENDPOINT`` selects a mirror; ``HF_TOKEN`` or ``hf_token:`` opens gated models;
  ``HF_HUB_OFFLINE=1`` means the cache only.
- ModelScope (``USE_MODELSCOPE_HUB=1`` or ``hub: modelscope``) through the optional ``modelscope``
  package.
Failures to reach the hub are :class:`HubUnreachable`, so the model layer can fall back to the
bundled weights for the bundled model's own ID.

The environment is read at call time (not at import, as ``huggingface_hub.constants`` does) and
passed to the client explicitly, so the variables a command runs under are the ones that count.
Every failure is a :class:`HubError` (exit 2) of one line naming the ID and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelError, TunesmithError, require

if TYPE_CHECKING:
    from .config import ModelConfig


DEFAULT_ENDPOINT = "https://huggingface.co"
# What a causal LM needs to load, train and chat: never code, never pickles unless asked for.
MODEL_FILES = ["*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt", "*.model", "*.tiktoken",
               "chat_template.json", "chat_template.jinja", "additional_chat_templates/*"]
PICKLE_FILES = ["*.bin", "*.bin.index.json"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
_TRUE = ("1", "true", "yes", "on")
DISK_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
STALE_PARTIAL_S = 600  # a .incomplete blob untouched this long belongs to a killed download


class HubError(ModelError):
    """A model or dataset ID that cannot be had from its hub (or the cache)."""


class HubUnreachable(HubError):
    """Not cached, and the hub is offline (``HF_HUB_OFFLINE``) or cannot be reached: no verdict
    on the ID itself (model/load.py falls back to the bundled copy of the bundled model's ID)."""


@dataclass(frozen=True)
class HubSettings:
    """Where IDs resolve, read from the environment and the config at call time."""

    source: str  # "huggingface" | "modelscope"
    endpoint: str
    cache_dir: Path
    offline: bool
    token: str | None

    @property
    def offline_variable(self) -> str:
        return next((v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
                     if _env_true(v)), "HF_HUB_OFFLINE")


def _env_true(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in _TRUE


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else the default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or
                                             Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def modelscope_cache_dir() -> Path:
    """ModelScope's cache: ``MODELSCOPE_CACHE``, else ``~/.cache/modelscope/hub``."""
    if os.environ.get("MODELSCOPE_CACHE"):
        return Path(os.environ["MODELSCOPE_CACHE"]).expanduser()
    return Path.home() / ".cache" / "modelscope" / "hub"


def hub_source(hub: str | None = "auto") -> str:
    """``huggingface`` or ``modelscope``: the ``hub`` key, else ``USE_MODELSCOPE_HUB``."""
    if hub in (None, "auto"):
        return "modelscope" if _env_true("USE_MODELSCOPE_HUB") else "huggingface"
    if hub in ("hf", "huggingface"):
        return "huggingface"
    if hub in ("ms", "modelscope"):
        return "modelscope"
    from .errors import ConfigError

    raise ConfigError(f"key 'hub': '{hub}' is not one of auto, huggingface, modelscope")


def hub_settings(hub: str | None = "auto", token: str | None = None) -> HubSettings:
    """The settings in force now (environment + config keys)."""
    source = hub_source(hub)
    token = token or os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    offline = any(_env_true(v) for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if source == "modelscope":
        return HubSettings(source, "https://modelscope.cn", modelscope_cache_dir(), offline, token)
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    return HubSettings(source, endpoint, hf_cache_dir(), offline, token)


def export_token(token: str | None) -> None:
    """``hf_token:`` from the config reaches every hub client of the run (model files, hub
    datasets through ``datasets``, streamed rows, worker processes) as ``HF_TOKEN``, the variable
    they all read; a token already in the environment is kept."""
    if token and not os.environ.get("HF_TOKEN"):
        os.environ["HF_TOKEN"] = token


def is_hub_id(name: str) -> bool:
    """``org/name`` that is not an existing local path."""
    return bool(_ID.match(name or "")) and ".." not in name and not Path(name).expanduser().exists()


@dataclass(frozen=True)
class ModelRequest:
    """A model ID and the keys that decide how it is fetched."""

    repo_id: str
    revision: str | None = None
    token: str | None = None
    hub: str = "auto"
    allow_pickle: bool = False

    @classmethod
    def from_config(cls, model_cfg: ModelConfig, name: str | None = None) -> "ModelRequest":
        """The request ``model_cfg``'s keys make for ``name`` (default: its model)."""
        return cls(name or model_cfg.model_name_or_path, model_cfg.model_revision,
                   model_cfg.hf_token, model_cfg.hub, model_cfg.allow_pickle)


def resolve_model(req: ModelRequest, *, quiet: bool = False, refresh: bool = False) -> Path:
    """The local snapshot folder of a hub model: the cache first, a download otherwise.

    Args:
        req: the ID with its revision, token, hub and pickle choice.
        quiet: no progress messages of ours (the download's progress bar still shows).
        refresh: ask the hub for the newest files even when a cached copy exists
            (``tunesmith download``).
    Returns:
        A folder with ``config.json``, the tokenizer and the weights.
    Raises:
        HubError: one line: offline and not cached, unknown repo or revision, gated, disk full,
            hub unreachable, or the ``modelscope`` package missing.
    """
    settings = hub_settings(req.hub, req.token)
    fetch = _fetch_modelscope if settings.source == "modelscope" else _fetch_huggingface
    try:
        return fetch(req, settings, quiet=quiet, refresh=refresh)
    except TunesmithError:  # already one line (HubError, a missing modelscope package)
        raise
    except Exception as exc:  # the hub clients raise many types; each maps to one line
        raise describe_failure(exc, req.repo_id, settings, "model", req.revision) from None


def _patterns(req: ModelRequest) -> list[str]:
    return MODEL_FILES + (PICKLE_FILES if req.allow_pickle else [])


def _fetch_huggingface(req: ModelRequest, s: HubSettings, *, quiet: bool, refresh: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    kwargs = dict(repo_id=req.repo_id, revision=req.revision, cache_dir=str(s.cache_dir),
                  allow_patterns=_patterns(req), endpoint=s.endpoint, token=s.token)
    if not refresh or s.offline:
        try:  # the cache first: no network at all when the model is there and complete
            path = Path(snapshot_download(local_files_only=True, **kwargs))
            if is_complete(path, req.allow_pickle):
                return path
        except LocalEntryNotFoundError:  # IncompleteSnapshotError is one too
            pass
    if s.offline:
        raise OfflineNotCached(req.repo_id)
    _clean_stale_partials(s.cache_dir, req.repo_id, "model")
    if not quiet:
        print(f"Downloading {req.repo_id} from {s.endpoint} into {s.cache_dir}", file=sys.stderr,
              flush=True)
    with _file_size_errors_raise():
        path = Path(snapshot_download(**kwargs))
    if not is_complete(path, req.allow_pickle):
        raise HubError(_no_weights(req, s))
    return path


def _fetch_modelscope(req: ModelRequest, s: HubSettings, *, quiet: bool, refresh: bool) -> Path:
    module = require("modelscope", "modelscope", f"downloading '{req.repo_id}' from ModelScope")
    revision = "master" if req.revision in (None, "main") else req.revision
    # no cache_dir: modelscope picks its own layout under MODELSCOPE_CACHE (or its default)
    kwargs = dict(revision=revision, allow_patterns=_patterns(req))
    if s.offline:
        kwargs["local_files_only"] = True
    elif not quiet:
        print(f"Downloading {req.repo_id} from ModelScope into {s.cache_dir}", file=sys.stderr,
              flush=True)
    with _file_size_errors_raise():
        path = Path(module.snapshot_download(req.repo_id, **kwargs))
    if not is_complete(path, req.allow_pickle):
        raise HubError(_no_weights(req, s))
    return path


def is_complete(path: Path, allow_pickle: bool = False) -> bool:
    """A loadable checkpoint: config.json, weights, and every shard a weight index lists."""
    import json

    if not (path / "config.json").is_file():
        return False
    suffixes = ("*.safetensors", "*.bin") if allow_pickle else ("*.safetensors",)
    if not any(any(path.glob(p)) for p in suffixes):
        return False
    for index in path.glob("*.index.json"):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not all((path / shard).is_file() for shard in shards):
            return False
    return True


def _no_weights(req: ModelRequest, s: HubSettings) -> str:
    hint = ("" if req.allow_pickle else "; if it has only pickle .bin weights, set allow_pickle: true "
            "if you trust the source")
    return (f"model '{req.repo_id}' on {s.endpoint} has no config.json with safetensors weights "
            f"(is it a causal language model?){hint}")


class OfflineNotCached(Exception):
    """Offline mode is on and the ID is not in the cache."""


def _unreachable(exc: Exception) -> bool:
    """Offline, no connection, or the hub down: not a verdict on the ID itself."""
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    if isinstance(exc, (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError)):
        return False
    if isinstance(exc, (OfflineNotCached, LocalEntryNotFoundError, ConnectionError, TimeoutError)):
        return True
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3")


def _chain(exc: BaseException):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EFBIG/EDQUOT anywhere in the exception chain."""
    return any(isinstance(e, OSError) and e.errno in DISK_ERRNOS for e in _chain(exc))


def describe_failure(exc: Exception, repo_id: str, s: HubSettings, kind: str = "model",
                     revision: str | None = None) -> HubError:
    """One line for a failed fetch of ``repo_id`` (a ``model`` or ``dataset``)."""
    from huggingface_hub.errors import (GatedRepoError, IncompleteSnapshotError,
                                        LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    what = f"{kind} '{repo_id}'"
    if is_disk_full(exc):
        return HubError(f"no space left on device while downloading {what} into {s.cache_dir}: "
                        "the partial file was removed; free disk space (or point HF_HUB_CACHE at "
                        "a larger disk) and rerun to finish the download")
    if isinstance(exc, OfflineNotCached) or (s.offline and isinstance(exc, LocalEntryNotFoundError)):
        return HubUnreachable(offline_message(what, repo_id, s, kind))
    if isinstance(exc, IncompleteSnapshotError):
        return HubUnreachable(f"the cached copy of {what} in {s.cache_dir} is incomplete and "
                        f"{s.endpoint} cannot be reached: rerun with network access to finish it")
    if isinstance(exc, GatedRepoError):
        return HubError(gated_message(what, repo_id, s, kind))
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"{what}: revision '{revision}' not found on {s.endpoint} (check "
                        f"model_revision: a branch, tag or commit of the repo)")
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(f"{what} not found on {s.endpoint}: check the ID's spelling (org/name); "
                        "a private repo needs HF_TOKEN (or hf_token:)")
    if _unreachable(exc):
        return HubUnreachable(f"cannot reach {s.endpoint} to download {what}, and it is not in the "
                        f"cache {s.cache_dir}: check the network or HF_ENDPOINT (a mirror), or "
                        f"run {_download_hint(repo_id, kind)} where the hub is reachable")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return HubError(f"cannot download {what} from {s.endpoint}: {first}")


def _download_hint(repo_id: str, kind: str) -> str:
    return f"`tunesmith download {'--dataset ' if kind == 'dataset' else ''}{repo_id}`"


def offline_message(what: str, repo_id: str, s: HubSettings, kind: str = "model") -> str:
    return (f"{what} is not in the cache {s.cache_dir} and {s.offline_variable}=1 forbids "
            f"downloading it: unset {s.offline_variable}, or fetch it first with "
            f"{_download_hint(repo_id, kind)} where the hub is reachable")


def gated_message(what: str, repo_id: str, s: HubSettings, kind: str) -> str:
    page = f"{s.endpoint}/{'datasets/' if kind == 'dataset' else ''}{repo_id}"
    token = ("the token given (HF_TOKEN or hf_token:) has no access" if s.token
             else "set HF_TOKEN (or hf_token:) to an access token of that account")
    return f"{what} is gated: accept its terms at {page} while logged in, then {token}"


@contextlib.contextmanager
def _file_size_errors_raise():
    """A file-size limit surfaces as OSError(EFBIG) (a one-line "no space" error) instead of
    SIGXFSZ killing the process mid-write; signals can only be set in the main thread."""
    if not hasattr(signal, "SIGXFSZ") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGXFSZ, previous)


def _clean_stale_partials(cache_dir: Path, repo_id: str, repo_type: str) -> None:
    """Remove ``.incomplete`` blobs a killed download left behind (never a live one)."""
    from huggingface_hub.file_download import repo_folder_name

    blobs = cache_dir / repo_folder_name(repo_id=repo_id, repo_type=repo_type) / "blobs"
    now = time.time()
    for part in (blobs.glob("*.incomplete") if blobs.is_dir() else ()):
        with contextlib.suppress(OSError):
            if now - part.stat().st_mtime > STALE_PARTIAL_S:
                part.unlink()


__all__ = ["HubError", "HubSettings", "HubUnreachable", "ModelRequest", "describe_failure",
           "hf_cache_dir", "hub_settings", "is_hub_id", "resolve_model"]
