"""Dataset names -> files, via LLaMA-Factory's ``dataset_info.json`` in ``dataset_dir``.

Paths are resolved and checked for containment in ``dataset_dir`` (no ``../``, absolute paths or
symlinks that escape it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

INFO_FILE = "dataset_info.json"


@dataclass
class DatasetSpec:
    name: str
    path: Path
    format: str = "auto"
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    num_samples: int | None = None
    ranking: bool = False


def load_registry(dataset_dir: Path) -> dict:
    info = dataset_dir / INFO_FILE
    if not info.is_file():
        return {}
    try:
        data = json.loads(info.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{info}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{info}: expected an object mapping dataset names to entries")
    return data


def contained(base: Path, relative: str, what: str) -> Path:
    """``base/relative`` resolved, refusing anything that escapes ``base``."""
    if Path(relative).is_absolute():
        raise DataError(f"{what}: absolute path '{relative}' not allowed; use a path inside {base}")
    root = base.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(root):
        raise DataError(f"{what}: path '{relative}' escapes dataset_dir {base}")
    return target


_LF_FORMATS = {"alpaca": "alpaca", "sharegpt": "sharegpt", "openai": "openai"}


def spec_from_entry(name: str, entry: dict, dataset_dir: Path) -> DatasetSpec:
    """One ``dataset_info.json`` entry as a DatasetSpec."""
    if not isinstance(entry, dict):
        raise DataError(f"{dataset_dir / INFO_FILE}: entry '{name}' must be an object")
    if "file_name" not in entry:
        hint = " (hub/ms/script datasets are not available offline)" if any(
            k in entry for k in ("hf_hub_url", "ms_hub_url", "script_url")) else ""
        raise DataError(f"{dataset_dir / INFO_FILE}: entry '{name}' has no file_name{hint}")
    path = contained(dataset_dir, entry["file_name"], f"dataset '{name}'")
    if not path.exists():
        raise DataError(f"dataset '{name}': file '{entry['file_name']}' not found in {dataset_dir}")
    fmt = _LF_FORMATS.get(entry.get("formatting", "alpaca"), entry.get("formatting", "alpaca"))
    columns = dict(entry.get("columns") or {})
    tags = dict(entry.get("tags") or {})
    return DatasetSpec(name, path, fmt, columns, tags, entry.get("num_samples"),
                       bool(entry.get("ranking")))


def resolve_dataset(name: str, dataset_dir: str) -> DatasetSpec:
    """A registry name in ``dataset_dir/dataset_info.json`` or a file/dir path."""
    base = Path(dataset_dir)
    count = None
    if ":" in name and name.rsplit(":", 1)[1].isdigit():
        name, count = name.rsplit(":", 1)[0], int(name.rsplit(":", 1)[1])
    registry = load_registry(base) if base.is_dir() else {}
    if name in registry:
        spec = spec_from_entry(name, registry[name], base)
    elif Path(name).exists():
        spec = DatasetSpec(Path(name).stem, Path(name))
    else:
        from ..config import suggest

        known = sorted(registry)
        hint = f"; registered in {base / INFO_FILE}: {', '.join(known)}" if known else ""
        raise DataError(f"dataset '{name}': not a file and not registered{suggest(name, known)}{hint}")
    if count is not None:
        spec.num_samples = count
    return spec
