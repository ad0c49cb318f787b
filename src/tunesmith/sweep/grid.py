"""``--grid "learning_rate=1e-4,2e-4 lora_rank=8,64"`` -> the list of points to run, and their names.

Syntax: space-separated ``key=v1,v2,...`` assignments (``--grid`` may be repeated). A value that
itself contains commas (``lora_target=q_proj,v_proj``) is written with ``|`` between the choices
instead: ``lora_target=q_proj,v_proj|all`` is two choices. Values stay strings; the config parser
types them, so ``1e-4`` is named ``1e-4`` in the run directory, as the user wrote it.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from dataclasses import dataclass

from ..errors import ConfigError

# Keys a sweep sets itself for every run: sweeping them would break the run layout.
RESERVED = ("output_dir", "run_name", "resume_from_checkpoint")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
MAX_NAME = 96


@dataclass(frozen=True)
class Grid:
    """The swept keys in order, each with its list of values (as strings)."""

    axes: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.axes]

    @property
    def size(self) -> int:
        n = 1
        for _, values in self.axes:
            n *= len(values)
        return n


def _split_values(key: str, text: str) -> tuple[str, ...]:
    sep = "|" if "|" in text else ","
    values = tuple(v.strip() for v in text.split(sep))
    if not text.strip() or any(not v for v in values):
        raise ConfigError(f"--grid: '{key}' has an empty value list or an empty value in '{text}'; "
                          f"expected {key}=v1,v2")
    if len(set(values)) != len(values):
        raise ConfigError(f"--grid: '{key}' lists a value twice in '{text}'")
    return values


def parse_grid(specs: list[str] | str) -> Grid:
    """Parse one or more ``--grid`` strings into a Grid.

    Raises:
        ConfigError: a malformed assignment, an empty list, a repeated or reserved key.
    """
    if isinstance(specs, str):
        specs = [specs]
    axes: dict[str, tuple[str, ...]] = {}
    for token in " ".join(specs).split():
        key, eq, text = token.partition("=")
        key = key.lstrip("-").replace("-", "_")
        if not eq or not _KEY.match(key):
            raise ConfigError(f"--grid: '{token}' is not key=v1,v2,...")
        if key in axes:
            raise ConfigError(f"--grid: key '{key}' is given twice")
        if key in RESERVED:
            raise ConfigError(f"--grid: '{key}' cannot be swept (the sweep sets it for each run)")
        axes[key] = _split_values(key, text)
    if not axes:
        raise ConfigError("--grid: nothing to sweep; expected e.g. --grid \"learning_rate=1e-4,2e-4\"")
    return Grid(tuple(axes.items()))


def grid_points(grid: Grid, samples: int | None = None, seed: int = 0,
                max_runs: int | None = None) -> list[dict[str, str]]:
    """Every point of the grid in order, or ``samples`` distinct random ones (seeded).

    ``max_runs`` keeps the first N of those.
    """
    keys = grid.keys
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in grid.axes))]
    if samples is not None:
        if samples <= 0:
            raise ConfigError(f"--samples: must be a positive number, got {samples}")
        points = random.Random(seed).sample(points, min(samples, len(points)))
    if max_runs is not None:
        if max_runs <= 0:
            raise ConfigError(f"--max-runs: must be a positive number, got {max_runs}")
        points = points[:max_runs]
    return points


def point_name(point: dict[str, str]) -> str:
    """A safe directory name ``key=value,key=value`` (odd characters -> ``_``; long -> hashed)."""
    name = ",".join(f"{k}={_UNSAFE.sub('_', v)}" for k, v in point.items())
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(repr(sorted(point.items())).encode()).hexdigest()[:8]
        name = f"{name[:MAX_NAME - 9]}-{digest}"
    return name


def point_tags(point: dict[str, str]) -> list[str]:
    """Tracker tags for a run: ``key=value`` for each swept parameter."""
    return [f"{k}={v}" for k, v in point.items()]
