"""Where tunesmith keeps its cache (``$TUNESMITH_HOME`` or ``~/.cache/tunesmith``)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cache root, created on first use."""
    root = Path(os.environ.get("TUNESMITH_HOME") or Path.home() / ".cache" / "tunesmith")
    root.mkdir(parents=True, exist_ok=True)
    return root


def models_dir() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_cache_dir() -> Path:
    path = home() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def publish(staged: Path, dest: Path, marker: str) -> Path:
    """Move the finished directory ``staged`` to ``dest`` in one rename, for cache entries that
    several processes may fill at once (a sweep's parallel runs, two first uses of a model).

    A complete ``dest`` (it has ``marker``) is kept and ``staged`` dropped: entries are named by
    what they hold, so theirs is as good as ours, and another process may be reading it. An
    incomplete ``dest`` (a killed run's) is renamed aside in one step, then removed."""
    import shutil

    if (dest / marker).is_file():
        shutil.rmtree(staged, ignore_errors=True)
        return dest
    if dest.exists():
        aside = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        try:
            os.rename(dest, aside)
        except OSError:
            pass
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.rename(staged, dest)
    except OSError:  # another process published in between: theirs is as good
        shutil.rmtree(staged, ignore_errors=True)
    return dest
