"""Hub datasets as ``(origin, row)`` pairs, like ``readers.read_file`` for local files.

``dataset: org/name`` (with ``subset``/``split``) and LLaMA-Factory's ``hf_hub_url``/``ms_hub_url``
entries in ``dataset_info.json`` load through ``datasets.load_dataset`` (Hugging Face: cached under
``HF_DATASETS_CACHE``, ``HF_ENDPOINT`` for a mirror, ``HF_TOKEN`` for gated sets,
``HF_HUB_OFFLINE=1`` for the cache only) or through ``modelscope``'s ``MsDataset``
(``USE_MODELSCOPE_HUB=1`` or an ``ms_hub_url`` entry). Rows then go through the same format
detection, column mapping, drop counting and data report as rows of a local file; every failure is
one line naming the dataset (a DataError, exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from ..errors import DataError, TunesmithError, require
from ..hub import describe_failure, gated_message, hub_settings, offline_message


@dataclass(frozen=True)
class HubDataset:
    """Where a hub dataset lives and which part of it to read."""

    repo_id: str
    source: str = "huggingface"  # "huggingface" | "modelscope"
    subset: str | None = None
    split: str = "train"
    folder: str | None = None  # data_dir inside the repo (LLaMA-Factory's "folder")
    revision: str | None = None

    @property
    def label(self) -> str:
        parts = [self.repo_id] + [p for p in (self.subset, self.folder) if p]
        return f"{'/'.join(parts)}[{self.split}]"


def load_hub_dataset(src: HubDataset, *, streaming: bool = False):
    """The ``datasets`` Dataset (or IterableDataset when streaming) of one hub dataset.

    Raises:
        DataError: one line: unknown, gated, offline and not cached, unknown subset or split,
            disk full, or the ``modelscope`` package missing.
    """
    load = _load_modelscope if src.source == "modelscope" else _load_huggingface
    try:
        return load(src, streaming)
    except TunesmithError:
        raise
    except Exception as exc:  # datasets/hub clients raise many types; each maps to one line
        raise DataError(_describe(exc, src)) from None


def _load_huggingface(src: HubDataset, streaming: bool):
    import datasets

    return datasets.load_dataset(src.repo_id, src.subset, split=src.split, data_dir=src.folder,
                                 revision=src.revision, streaming=streaming)


def _load_modelscope(src: HubDataset, streaming: bool):
    module = require("modelscope", "modelscope", f"loading dataset '{src.repo_id}' from ModelScope")
    dataset = module.MsDataset.load(src.repo_id, subset_name=src.subset, data_dir=src.folder,
                                    split=src.split, use_streaming=streaming)
    return dataset.to_hf_dataset() if hasattr(dataset, "to_hf_dataset") else dataset


def _describe(exc: Exception, src: HubDataset) -> str:
    """One line for a failed load (datasets wraps the hub errors in its own types)."""
    settings = hub_settings(src.source)
    if settings.source == "huggingface":
        settings = replace(settings, cache_dir=_datasets_cache())
    what = f"dataset '{src.repo_id}'"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if type(exc).__name__ == "DatasetNotFoundError":
        if "gated" in text:
            return gated_message(what, src.repo_id, settings, "dataset")
        return (f"{what} not found on {settings.endpoint}: check the ID's spelling (org/name); a "
                "private dataset needs HF_TOKEN")
    if isinstance(exc, ValueError):  # unknown subset or split: datasets names the valid ones
        return f"{what}: {text} (set subset: / split:)"
    if isinstance(exc, ConnectionError) and settings.offline:
        return offline_message(what, src.repo_id, settings, "dataset")
    return str(describe_failure(exc, src.repo_id, settings, "dataset", src.revision))


def _datasets_cache() -> Path:
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE)


def read_hub(src: HubDataset, *, streaming: bool = False) -> Iterator[tuple[str, object]]:
    """Rows of a hub dataset, lazily, as ``("org/name[split][i]", row)``."""
    dataset = load_hub_dataset(src, streaming=streaming)
    for i, row in enumerate(dataset):
        yield f"{src.label}[{i}]", row


def cache_files(src: HubDataset) -> list[Path]:
    """The local Arrow files of a (non-streamed) hub dataset: the tokenized-data cache key
    hashes them, so a new upstream revision is a cache miss."""
    dataset = load_hub_dataset(src)
    return [Path(f["filename"]) for f in getattr(dataset, "cache_files", None) or []]


def download_dataset(repo_id: str, *, subset: str | None = None, split: str = "train",
                     revision: str | None = None, hub: str | None = "auto") -> str:
    """Fetch a dataset into the ``datasets`` cache ahead of time (``tunesmith download --dataset``).

    Returns:
        A one-line summary: rows and where they are cached.
    """
    from ..hub import hub_source

    src = HubDataset(repo_id, hub_source(hub), subset, split, None, revision)
    dataset = load_hub_dataset(src)
    where = ", ".join(str(p.parent) for p in cache_files(src)[:1]) or "the datasets cache"
    return f"{src.label}: {len(dataset)} rows cached in {where}"
