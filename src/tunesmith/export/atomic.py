"""Write a directory atomically: build it under a hidden temp name, then rename into place.

An export killed half-way leaves only ``.<name>.partial-<pid>`` (never a directory named like
the export that a loader would accept); the next export to the same place removes it.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError, ModelError, TunesmithError

MARKER = "tunesmith_export.json"  # present only in complete tunesmith exports


def check_destination(dest: Path) -> None:
    """Refuse to replace a non-empty directory that is not a previous tunesmith export."""
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"export_dir '{dest}' is a file; choose a directory path")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).is_file():
        raise ConfigError(f"export_dir '{dest}' already exists and is not a tunesmith export; "
                          "choose an empty or new directory (nothing was overwritten)")


def _clean_partials(dest: Path) -> None:
    for stale in dest.parent.glob(f".{dest.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Yield a temp dir; on success it replaces ``dest`` in one rename, on error it is removed."""
    dest = Path(dest).expanduser().resolve()
    check_destination(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clean_partials(dest)
    tmp = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_in(tmp, dest)


def _swap_in(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` to ``dest``; a previous export is moved aside first and then deleted."""
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class ExportDiskFull(TunesmithError):
    """The disk (or a file-size limit) filled up while the export was written."""


@contextmanager
def disk_full_guard(dest: str | Path) -> Iterator[None]:
    """Turn a full disk during the export into one line (``atomic_dir`` has removed the
    partial files by then). SIGXFSZ is ignored so a file-size limit surfaces as an OSError
    instead of killing the process mid-write."""
    from ..train.checkpoint import is_disk_full

    dest = Path(dest).expanduser().resolve()
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGXFSZ")
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN) if main else None
    try:
        yield
    except (OSError, RuntimeError, ModelError) as exc:
        if not (_short_write(exc) or is_disk_full(exc, where=dest.parent)):
            raise
        raise ExportDiskFull(f"no space left on device while writing the export to {dest}: the "
                             "partial files were removed and nothing was written there; free "
                             "disk space and run the export again") from None
    finally:
        if main:
            signal.signal(signal.SIGXFSZ, previous)


def _short_write(exc: BaseException) -> bool:
    """numpy's ``tofile`` reports a short write without an errno ("N requested and M written");
    on a regular file that only happens when the disk or a file-size limit is full."""
    text = str(exc)
    return isinstance(exc, OSError) and "requested and" in text and "written" in text
