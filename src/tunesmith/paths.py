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
