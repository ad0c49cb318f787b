"""What the model caches hold: the Hugging Face and ModelScope snapshots with a ``config.json``
(``tunesmith models``, the web UI's model picker)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .hub import hf_cache_dir, modelscope_cache_dir


@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    path: Path  # a snapshot folder with config.json
    size_bytes: int
    revision: str  # refs pointing at it (e.g. "main"), else the commit


def cached_hf_models(cache_dir: Path | None = None) -> list[CachedModel]:
    """Models in the Hugging Face cache that have a config.json (one entry per snapshot)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir or hf_cache_dir())
    except CacheNotFound:
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            if (rev.snapshot_path / "config.json").is_file():
                refs = ",".join(sorted(rev.refs)) or rev.commit_hash[:12]
                out.append(CachedModel(repo.repo_id, rev.snapshot_path, rev.size_on_disk, refs))
    return out


def cached_modelscope_models(cache_dir: Path | None = None) -> list[CachedModel]:
    """Models in ModelScope's cache with a config.json, in each layout its versions write:
    ``models/<org>--<name>/snapshots/<rev>/`` (modelscope >= 1.30, under ``MODELSCOPE_CACHE`` or
    ``~/.cache/modelscope``), ``[hub/][models/]<org>/<name>/`` (older; ``___`` is a dot)."""
    roots = [cache_dir] if cache_dir else [modelscope_cache_dir()]
    if cache_dir is None and not os.environ.get("MODELSCOPE_CACHE"):
        roots.append(modelscope_cache_dir().parent)
    out = []
    for root in roots:
        for config in sorted(root.glob("models/*--*/snapshots/*/config.json")):
            owner, name = config.parents[2].name.split("--", 1)
            out.append(_cached(f"{owner}/{name}", config.parent, config.parent.name[:12]))
        legacy = sorted((root / "models").glob("*/*/config.json"))
        legacy += [c for c in sorted(root.glob("*/*/config.json"))
                   if c.parent.parent.name not in ("models", "datasets")]
        for config in legacy:
            folder = config.parent
            out.append(_cached(f"{folder.parent.name}/{folder.name}".replace("___", "."), folder,
                               "master"))
    return out


def _cached(repo_id: str, folder: Path, revision: str) -> CachedModel:
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return CachedModel(repo_id, folder, size, revision)
