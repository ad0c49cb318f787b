"""Dataset names -> files or hub datasets, via LLaMA-Factory's ``dataset_info.json`` in
``dataset_dir``.

Paths are resolved and checked for containment in ``dataset_dir`` (no ``../``, absolute paths or
symlinks that escape it). An entry with ``hf_hub_url``/``ms_hub_url`` (which win over
``file_name``, as in LLaMA-Factory), or a ``dataset: org/name`` that is neither registered nor a
path, is a hub dataset (data/hub_data.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..hub import is_hub_id, hub_source
from .hub_data import HubDataset

INFO_FILE = "dataset_info.json"


@dataclass
class DatasetSpec:
    name: str
    path: Path
    format: str = "auto"
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    num_samples: int | None = None
    ranking: bool = False  # chosen/rejected pairs (LLaMA-Factory ``ranking: true``)
    kto: bool = False  # one answer with a desirable/undesirable tag (``columns.kto_tag``)
    declared: bool = False  # from dataset_info.json (its ranking/kto_tag flags are binding)
    hub: HubDataset | None = None  # set for a hub dataset (path is then its ID, never a file)


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


def contained(base: Path, relative, what: str) -> Path:
    """``base/relative`` resolved (symlinks followed), refusing anything outside ``base``.

    Containment is checked on resolved paths, not string prefixes, so ``../``, absolute paths,
    ``a/../../x`` and symlinks that point out of ``base`` are all refused.
    """
    if not isinstance(relative, str) or not relative.strip() or "\x00" in relative:
        raise DataError(f"{what}: file_name must be a non-empty relative path, got {relative!r}")
    if Path(relative).is_absolute() or relative.startswith("~"):
        raise DataError(f"{what}: absolute path '{relative}' not allowed; use a path inside {base}")
    root = base.resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, bad names
        raise DataError(f"{what}: cannot resolve '{relative}': {exc}") from None
    if target == root or not target.is_relative_to(root):
        raise DataError(f"{what}: path '{relative}' escapes dataset_dir {base}")
    return target


def _entry_error(dataset_dir: Path, name: str, message: str) -> DataError:
    return DataError(f"{dataset_dir / INFO_FILE}: entry '{name}': {message}")


def spec_from_entry(name: str, entry: dict, dataset_dir: Path) -> DatasetSpec:
    """One ``dataset_info.json`` entry as a DatasetSpec (file_name, formatting, columns, tags,
    ranking, split, num_samples as LLaMA-Factory defines them)."""
    if not isinstance(entry, dict):
        raise _entry_error(dataset_dir, name, "must be an object")
    hub = _hub_entry(name, entry, dataset_dir)
    if hub is None and "file_name" not in entry:
        hint = (" (om_hub_url/script_url datasets are not supported: use hf_hub_url, ms_hub_url "
                "or a file)") if any(k in entry for k in ("om_hub_url", "script_url")) else ""
        raise _entry_error(dataset_dir, name, f"has no file_name{hint}")
    path = Path(hub.repo_id) if hub else contained(dataset_dir, entry["file_name"],
                                                   f"dataset '{name}'")
    if hub is None and not path.exists():
        raise DataError(f"dataset '{name}': file '{entry['file_name']}' not found in {dataset_dir}")
    formatting = _formatting(entry)
    if formatting not in _known_formats():
        raise _entry_error(dataset_dir, name, f"formatting '{formatting}' is not one of "
                           f"{', '.join(_known_formats())}")
    if hub is None and entry.get("split", "train") != "train":
        raise _entry_error(dataset_dir, name, f"split '{entry['split']}': local files have only "
                           "a 'train' split; point file_name at the file for that split")
    num = entry.get("num_samples")
    if num is not None and (not isinstance(num, int) or isinstance(num, bool) or num <= 0):
        raise _entry_error(dataset_dir, name, f"num_samples must be a positive integer, got {num!r}")
    for key in ("columns", "tags"):
        if not isinstance(entry.get(key) or {}, dict):
            raise _entry_error(dataset_dir, name, f"{key} must be an object")
    columns = dict(entry.get("columns") or {})
    if formatting == "text" and set(columns) == {"prompt"}:
        columns = {"text": columns["prompt"]}
    ranking = entry.get("ranking", False)
    if not isinstance(ranking, bool):
        raise _entry_error(dataset_dir, name, f"ranking must be true or false, got {ranking!r}")
    kto = "kto_tag" in columns or bool(entry.get("kto_tag"))
    return DatasetSpec(name, path, formatting, columns, dict(entry.get("tags") or {}), num,
                       ranking=ranking, kto=kto, declared=True, hub=hub)


def _hub_entry(name: str, entry: dict, dataset_dir: Path) -> HubDataset | None:
    """An entry's hub dataset, chosen as LLaMA-Factory does: ``ms_hub_url`` when
    USE_MODELSCOPE_HUB=1 (or when it is the only URL), else ``hf_hub_url``."""
    hf, ms = entry.get("hf_hub_url"), entry.get("ms_hub_url")
    if not hf and not ms:
        return None
    use_ms = bool(ms) and (hub_source("auto") == "modelscope" or not hf)
    repo_id = ms if use_ms else hf
    for key in ("hf_hub_url", "ms_hub_url", "subset", "split", "folder"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise _entry_error(dataset_dir, name, f"{key} must be a string")
    return HubDataset(repo_id, "modelscope" if use_ms else "huggingface", entry.get("subset"),
                      entry.get("split") or "train", entry.get("folder"), entry.get("revision"))


def _known_formats() -> list[str]:
    from .formats import FORMATS

    return ["auto", *FORMATS]


def _formatting(entry: dict) -> str:
    """The entry's format: LLaMA-Factory's ``formatting`` (default alpaca) or any of ours.

    LLaMA-Factory's pre-training datasets are alpaca entries whose only column is ``prompt``
    (e.g. ``columns: {prompt: text}``): those are read as plain text.
    """
    formatting = entry.get("formatting", "alpaca")
    columns = entry.get("columns")
    if formatting == "alpaca" and isinstance(columns, dict) and set(columns) == {"prompt"}:
        return "text"
    return formatting


def resolve_dataset(name: str, dataset_dir: str, subset: str | None = None,
                    split: str = "train") -> DatasetSpec:
    """A registry name in ``dataset_dir/dataset_info.json``, a file/dir path, or a hub ID.

    Args:
        subset, split: the part of a hub dataset given by ID (``dataset: org/name``).
    """
    base = Path(dataset_dir)
    count = None
    if ":" in name and name.rsplit(":", 1)[1].isdigit():
        name, count = name.rsplit(":", 1)[0], int(name.rsplit(":", 1)[1])
        if count <= 0:
            raise DataError(f"dataset '{name}:{count}': the sample count must be positive")
    registry = load_registry(base) if base.is_dir() else {}
    if name in registry:
        spec = spec_from_entry(name, registry[name], base)
    elif Path(name).exists():
        spec = DatasetSpec(Path(name).stem, Path(name))
    elif is_hub_id(name):
        spec = DatasetSpec(name, Path(name), hub=HubDataset(name, hub_source("auto"), subset, split))
    else:
        from ..config_parse import suggest

        known = sorted(registry)
        hint = f"; registered in {base / INFO_FILE}: {', '.join(known)}" if known else ""
        hub = "" if "/" in name else "; a hub dataset is given by its full ID (org/name)"
        raise DataError(f"dataset '{name}': not a file and not registered{suggest(name, known)}"
                        f"{hint}{hub}")
    if count is not None:
        spec.num_samples = count
    return spec
