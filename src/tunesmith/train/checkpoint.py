"""Atomic checkpoints: write into a staging dir, add a completion marker, then ``os.replace``.

A checkpoint directory ``checkpoint-N`` counts only if it holds ``tunesmith_complete.json``
(written last, inside the staging dir, before the rename). A crash mid-write leaves at most a
``.staging-*`` dir, which is never picked and is removed on the next run.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from pathlib import Path

from ..errors import ModelError, TunesmithError

MARKER = "tunesmith_complete.json"
STAGING_PREFIX = ".staging-"
_CKPT = re.compile(r"^checkpoint-(\d+)$")
DISK_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
DISK_WORDS = ("no space", "file too large", "disk quota", "write failed", "file write failed")


class DiskFullError(TunesmithError):
    """A checkpoint or the final model could not be written: the disk (or quota) is full."""


def staging_root(run_dir: str | Path, step: int) -> Path:
    """Where checkpoint-``step`` is written before it is renamed into place."""
    # The same name on every rank: in DDP each rank writes its own RNG state into it.
    return Path(run_dir) / f"{STAGING_PREFIX}checkpoint-{step}"


def is_complete(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete ``checkpoint-N`` dirs of a run, oldest step first."""
    root = Path(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if p.is_dir() and (m := _CKPT.match(p.name)) and is_complete(p)]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest COMPLETE checkpoint, or None."""
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


def clean_stale(run_dir: str | Path) -> list[Path]:
    """Remove staging leftovers of crashed writes (unmarked ``checkpoint-N`` dirs are only ignored:
    tunesmith never creates one, so they are not ours to delete)."""
    root = Path(run_dir)
    removed = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith(STAGING_PREFIX):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def write_marker(path: Path, step: int, fingerprint: dict | None) -> None:
    """The completion marker: written last, fsynced, so a present marker means a whole checkpoint."""
    files = sorted(str(f.relative_to(path)) for f in path.rglob("*") if f.is_file())
    body = {"step": step, "files": files, "fingerprint": fingerprint, "time": time.time()}
    tmp = path / (MARKER + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(body, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path / MARKER)


def publish(staged: Path, final: Path) -> None:
    """Move a finished staging dir into place (replacing an older dir of the same step)."""
    if final.exists():
        trash = final.with_name(f"{STAGING_PREFIX}old-{final.name}-{os.getpid()}")
        os.replace(final, trash)
        os.replace(staged, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staged, final)
    _fsync_dir(final.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException, where: str | Path | None = None) -> bool:
    """True for ENOSPC/EFBIG/EDQUOT, also when torch/safetensors wrap them in RuntimeError.

    torch's zip writer reports a short write only as "unexpected pos N vs M", so when ``where``
    is given a 1 MiB probe write there decides: if it fails with a disk errno, the disk is full.
    """
    cause = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in DISK_ERRNOS:
            return True
        if any(w in str(cause).lower() for w in DISK_WORDS):
            return True
        cause = cause.__cause__ or cause.__context__
    return where is not None and not _can_write(Path(where))


def _can_write(folder: Path, size: int = 1 << 20) -> bool:
    probe = folder / f".tunesmith-space-probe-{os.getpid()}"
    try:
        with probe.open("wb") as fh:
            fh.write(b"\0" * size)
            fh.flush()
            os.fsync(fh.fileno())
        return True
    except OSError as err:
        return err.errno not in DISK_ERRNOS
    finally:
        probe.unlink(missing_ok=True)


def disk_full_error(target: Path, run_dir: Path) -> DiskFullError:
    prev = latest_checkpoint(run_dir)
    kept = f"the previous checkpoint {prev.name} is intact" if prev else "no earlier checkpoint"
    return DiskFullError(f"no space left on device while writing {target}: {kept}; free disk "
                         "space, then rerun with resume_from_checkpoint=auto")


def resolve_resume(value: str | None, run_dir: str | Path) -> Path | None:
    """``auto`` -> newest complete checkpoint (None if none); a path -> checked to be complete."""
    if value in (None, "", "false", "False", "no"):
        return None
    if value in ("auto", "true", "True", "latest"):
        return latest_checkpoint(run_dir)
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ModelError(f"resume_from_checkpoint '{value}': no such directory")
    if not is_complete(path):
        newest = latest_checkpoint(path.parent)
        hint = f"; the newest complete one is {newest}" if newest else ""
        raise ModelError(f"resume_from_checkpoint '{value}': incomplete checkpoint (no {MARKER}, "
                         f"its write was interrupted){hint}")
    return path


def read_marker(path: str | Path) -> dict:
    return json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
