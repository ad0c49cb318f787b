"""``tunesmith doctor``: check versions against their floors, the CPU and chosen dtype, the
bundled model cache, and free disk in the output dir. Exit 0 when all is well, 1 otherwise.

Each check is a function returning ``Check``s (a registry, so adding one is one function).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

# Versions with no known advisories (RELIABILITY.md case 35) or that tunesmith's code needs.
FLOORS = {"torch": "2.10", "transformers": "5.0", "peft": "0.18", "datasets": "4.0",
          "accelerate": "1.10", "safetensors": "0.4", "pyyaml": "6.0", "gradio": "6.16",
          "starlette": "1.0.1"}
OPTIONAL = {"gradio": "webui", "starlette": "serve"}  # missing only disables that extra


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def add_arguments(parser) -> None:
    parser.add_argument("--output-dir", default="saves",
                        help="where runs will be written (free disk is checked there)")
    parser.add_argument("--min-free-gb", type=float, default=2.0,
                        help="fail when less disk than this is free in the output dir")


def check_versions(args) -> list[Check]:
    from packaging.version import Version

    out = []
    for package, floor in FLOORS.items():
        try:
            installed = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            extra = OPTIONAL.get(package)
            out.append(Check(package, extra is not None, "not installed" + (
                f" (optional: pip install 'tunesmith[{extra}]')" if extra else "")))
            continue
        ok = Version(installed) >= Version(floor)
        out.append(Check(package, ok, f"{installed} (needs >= {floor})"))
    return out


def check_hardware(args) -> list[Check]:
    from ..hardware import detect

    hw = detect()
    return [Check("hardware", True, f"{hw.device}: {hw.name}; CPU capability {hw.cpu_capability}; "
                                    f"dtype {hw.auto_dtype} ({hw.reason})")]


def safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file (8-byte little-endian length, then JSON).

    Raises:
        ValueError: truncated or not a safetensors file.
    """
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ValueError("shorter than 8 bytes")
        (size,) = struct.unpack("<Q", raw)
        if size <= 0 or size > 100 * 2**20 or size + 8 > path.stat().st_size:
            raise ValueError(f"bad header length {size}")
        header = json.loads(fh.read(size))
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max((v["data_offsets"][1] for v in tensors.values()), default=0)
    if 8 + size + end > path.stat().st_size:
        raise ValueError("data shorter than the header says (truncated file)")
    return header


def model_cache_problem(path: Path) -> str | None:
    """Why a converted model directory is unusable, or None when it looks whole."""
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return f"config.json unreadable ({type(exc).__name__})"
    shards = sorted(path.glob("*.safetensors"))
    if not shards:
        return "no .safetensors weights"
    for shard in shards:
        try:
            safetensors_header(shard)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"{shard.name}: {exc}"
    return None


def check_model_cache(args) -> list[Check]:
    from ..model.bundled import BUNDLED, cached_dir, gguf_path, is_converted

    out = []
    for name, model in BUNDLED.items():
        if not is_converted(name):
            try:
                detail = f"not converted yet; source {gguf_path(model).name} present"
                out.append(Check(f"model {name}", True, detail))
            except Exception as exc:  # noqa: BLE001 - ModelError or a broken package
                out.append(Check(f"model {name}", False, str(exc)))
            continue
        problem = model_cache_problem(cached_dir(name))
        fix = f"; delete {cached_dir(name)} and run `tunesmith models --convert`"
        out.append(Check(f"model {name}", problem is None,
                         f"{cached_dir(name)} OK" if problem is None else problem + fix))
    return out


def check_disk(args) -> list[Check]:
    path = Path(args.output_dir).expanduser().resolve()
    probe = next(p for p in [path, *path.parents] if p.exists())
    free_gb = shutil.disk_usage(probe).free / 2**30
    ok = free_gb >= args.min_free_gb
    return [Check("disk", ok, f"{free_gb:.1f} GiB free at {probe} (needs >= {args.min_free_gb} GiB)")]


CHECKS = [check_versions, check_hardware, check_model_cache, check_disk]


def run(args) -> int:
    results = [c for check in CHECKS for c in check(args)]
    for c in results:
        print(f"[{'ok' if c.ok else 'FAIL':>4}] {c.name:14} {c.detail}")
    failed = [c for c in results if not c.ok]
    if failed:
        print(f"\n{len(failed)} problem(s): " + "; ".join(f"{c.name}: {c.detail}" for c in failed))
        return 1
    print("\nall checks passed")
    return 0
