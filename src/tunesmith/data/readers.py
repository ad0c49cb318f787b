"""Read data files lazily into ``(origin, row)`` pairs: ``file:line`` for JSONL and CSV,
``file[i]`` for JSON and Parquet.

Every reader is a generator, so ``streaming`` never holds a whole JSONL/CSV/Parquet file in
memory (JSONL is read line by line, CSV row by row, Parquet one record batch at a time). A JSON
array has no streaming form and is parsed whole.

A line that cannot be read (invalid JSON, a non-UTF-8 byte) is yielded as a :class:`BadRow`
instead of raising, so ``data validate`` can list every bad line; the training loader turns the
first one into a DataError naming ``file:line``. A UTF-8 BOM is accepted.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterator

from ..errors import DataError

SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".arrow")


class BadRow:
    """A line that could not be parsed; ``message`` names the problem."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"BadRow({self.reason}: {self.message})"


def _decode(data: bytes, path: Path, line: int, offset: int = 0) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                        f"{offset + exc.start})") from None


def read_jsonl(path: Path) -> Iterator[tuple[str, object]]:
    """One row per non-blank line, read lazily; bad lines come back as BadRow."""
    offset = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw, offset = raw[3:], 3
            where = f"{path}:{lineno}"
            try:
                line = _decode(raw, path, lineno, offset)
            except DataError as err:
                yield where, BadRow("not_utf8", str(err).split(": ", 1)[1])
                offset += len(raw)
                continue
            offset += len(raw)
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, BadRow("invalid_json", f"invalid JSON: {exc.msg} (column {exc.colno})")


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start})") from None


def read_json(path: Path) -> Iterator[tuple[str, object]]:
    """A JSON array (or one object) of rows; JSON Lines saved as ``.json`` is read as JSONL."""
    text = _read_text(path)
    if not text.strip():
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("{") and "\n" in text.strip() and exc.msg == "Extra data":
            yield from read_jsonl(path)  # JSON Lines saved with a .json suffix
            return
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    for i, row in enumerate(data):
        yield f"{path}[{i}]", row


def read_csv(path: Path) -> Iterator[tuple[str, object]]:
    """CSV rows (header first) as string dicts; an empty cell is a missing value."""
    with open(path, "rb") as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        try:
            for row in reader:
                # reader.line_num is the line the row ended on (rows may span lines)
                yield f"{path}:{reader.line_num}", {k: (v if v != "" else None)
                                                   for k, v in row.items() if k is not None}
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{reader.line_num + 1}: not valid UTF-8 (byte "
                            f"0x{exc.object[exc.start]:02x})") from None
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: invalid CSV: {exc}") from None


def read_parquet(path: Path) -> Iterator[tuple[str, object]]:
    """Parquet rows, one record batch at a time."""
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(str(path))
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: cannot read parquet: {str(exc).splitlines()[0]}") from None
    i = 0
    for batch in pfile.iter_batches(batch_size=512):
        for row in batch.to_pylist():
            yield f"{path}[{i}]", row
            i += 1


def read_arrow(path: Path) -> Iterator[tuple[str, object]]:
    import datasets

    try:
        table = datasets.Dataset.from_file(str(path))
    except Exception as exc:  # datasets raises many types for a bad file
        raise DataError(f"{path}: cannot read arrow: {str(exc).splitlines()[0]}") from None
    for i, row in enumerate(table):
        yield f"{path}[{i}]", row


READERS = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv,
           ".parquet": read_parquet, ".arrow": read_arrow}


def is_saved_dataset(path: Path) -> bool:
    """A directory written by ``datasets``' ``save_to_disk``."""
    return path.is_dir() and (path / "state.json").is_file() and (path / "dataset_info.json").is_file()


def read_saved_dataset(path: Path) -> Iterator[tuple[str, object]]:
    import datasets

    try:
        table = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises many types for a bad directory
        raise DataError(f"{path}: cannot load the saved dataset: {str(exc).splitlines()[0]}") from None
    if isinstance(table, datasets.DatasetDict):
        if "train" not in table:
            raise DataError(f"{path}: saved DatasetDict has no 'train' split ({', '.join(table)})")
        table = table["train"]
    for i, row in enumerate(table):
        yield f"{path}[{i}]", row


# Registry and metadata files that sit beside data files and are never rows.
_NOT_DATA = {"dataset_info.json", "state.json", "dataset_dict.json"}


def data_files(path: Path) -> list[Path]:
    """The files a dataset path stands for (a file, or a directory's data files, sorted)."""
    if is_saved_dataset(path):
        return sorted(p for p in path.rglob("*") if p.is_file())
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.suffix in SUFFIXES and p.is_file() and p.name not in _NOT_DATA)
        if not files:
            raise DataError(f"{path}: directory has no data files ({', '.join(SUFFIXES)})")
        return files
    if not path.is_file():
        raise DataError(f"data file '{path}' not found")
    if path.suffix not in READERS:
        raise DataError(f"{path}: unsupported file type '{path.suffix}' (expected {', '.join(SUFFIXES)})")
    return [path]


def read_file(path: Path) -> Iterator[tuple[str, object]]:
    """Rows of one file (by suffix) or of every data file in a directory, lazily."""
    if is_saved_dataset(path):
        yield from read_saved_dataset(path)
        return
    for f in data_files(path):
        yield from READERS[f.suffix](f)
