"""Read data files into ``(origin, row)`` pairs, with file:line for JSONL and file[i] for JSON.

Malformed files (truncated JSON, non-UTF-8 bytes) are a DataError naming the file and line.
A UTF-8 BOM is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ..errors import DataError

SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".arrow")


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start})") from None


def read_jsonl(path: Path) -> Iterator[tuple[str, object]]:
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{lineno}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None


def read_json(path: Path) -> Iterator[tuple[str, object]]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.lineno > 1 or text.lstrip().startswith("{") and "\n{" in text:
            # Maybe JSON Lines saved as .json
            if text.lstrip().startswith("{") and text.count("\n") > 0:
                yield from read_jsonl(path)
                return
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    for i, row in enumerate(data):
        yield f"{path}[{i}]", row


def read_table(path: Path) -> Iterator[tuple[str, object]]:
    import datasets

    kind = {".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}[path.suffix]
    try:
        table = datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as exc:  # datasets raises many types for a bad file
        raise DataError(f"{path}: cannot read {kind}: {str(exc).splitlines()[0]}") from None
    for i, row in enumerate(table):
        yield f"{path}[{i}]", row


def read_file(path: Path) -> Iterator[tuple[str, object]]:
    """Rows of one file (by suffix) or of every data file in a directory."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
        if not files:
            raise DataError(f"{path}: directory has no data files ({', '.join(SUFFIXES)})")
        for f in files:
            yield from read_file(f)
        return
    if not path.is_file():
        raise DataError(f"data file '{path}' not found")
    if path.suffix == ".jsonl":
        yield from read_jsonl(path)
    elif path.suffix == ".json":
        yield from read_json(path)
    elif path.suffix in (".csv", ".parquet", ".arrow"):
        yield from read_table(path)
    else:
        raise DataError(f"{path}: unsupported file type '{path.suffix}' (expected {', '.join(SUFFIXES)})")
