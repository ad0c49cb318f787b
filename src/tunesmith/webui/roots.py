"""The two directories the web UI may touch, and the containment check for every user path.

A path typed in the browser is resolved (symlinks followed, ``..`` collapsed) and must lie inside
one of the allowed roots; string-prefix checks are not enough (``/saves-evil`` starts with
``/saves``), so ``Path.is_relative_to`` is used on resolved paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import TunesmithError

DEFAULT_HOST = "127.0.0.1"  # never a public interface unless --host/--share say so
DEFAULT_PORT = 7860
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class PathRefused(TunesmithError):
    """A path from the browser points outside the data and output roots."""


@dataclass(frozen=True)
class Roots:
    data: Path
    output: Path

    @classmethod
    def create(cls, data_root: str | Path, output_root: str | Path) -> "Roots":
        """Resolved roots; the output root is created (the UI writes runs there)."""
        out = Path(output_root).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        return cls(Path(data_root).expanduser().resolve(), out.resolve())


def inside(root: Path, user_path: str | Path, what: str = "path") -> Path:
    """``user_path`` (relative to ``root``, or absolute) resolved, refused if it escapes ``root``.

    Raises:
        PathRefused: empty, or outside ``root`` after resolving ``..`` and symlinks.
    """
    text = str(user_path).strip()
    if not text or "\x00" in text:
        raise PathRefused(f"{what}: empty or invalid path")
    root = Path(root).resolve()
    candidate = Path(text).expanduser()
    target = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not target.is_relative_to(root):
        raise PathRefused(f"{what} '{text}' is outside {root}; the web UI only uses files there")
    return target


def inside_any(roots: list[Path], user_path: str | Path, what: str = "path") -> Path:
    """The first root that contains ``user_path``; refused if none does."""
    for root in roots:
        try:
            return inside(root, user_path, what)
        except PathRefused:
            continue
    names = ", ".join(str(r) for r in roots)
    raise PathRefused(f"{what} '{user_path}' is outside the allowed folders ({names})")


def run_dir(roots: Roots, name: str) -> Path:
    """``output_root/name`` for a run name typed in the UI (kept literally: ``;``, ``$()`` are
    just characters in a directory name, never passed to a shell)."""
    name = str(name).strip()
    if not name or name in (".", ".."):
        raise PathRefused("run name: empty")
    target = inside(roots.output, name, "run name")
    if target == roots.output:
        raise PathRefused("run name: must name a folder inside the output root")
    return target


def public_bind_warning(host: str, share: bool, auth: bool) -> str | None:
    """A warning when the UI is reachable beyond this machine without a login."""
    if auth or (host in LOOPBACK and not share):
        return None
    where = "a public share link" if share else f"host {host}"
    return (f"WARNING: the web UI is served on {where} without authentication: anyone who can "
            "reach it can train, read runs and use this machine. Set TUNESMITH_WEBUI_AUTH="
            "user:password, or bind 127.0.0.1")
