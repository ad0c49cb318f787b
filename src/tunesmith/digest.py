"""Cheap identities of large files: name, size and a sample from each end.

Used where hashing gigabytes would cost more than the work it guards: a resumed run's base model
(``train/fingerprint.py``) and a streamed dataset's files (``data/stream.py``).
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_BYTES = 1 << 20  # bytes hashed from each end of a file


def hash_file_sample(path: Path, h) -> None:
    """Feed ``path``'s name, size and its first/last MiB into the hash object ``h``.

    For a safetensors file the first MiB holds the header (tensor names, shapes, dtypes).
    """
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with path.open("rb") as fh:
        h.update(fh.read(SAMPLE_BYTES))
        if size > 2 * SAMPLE_BYTES:
            fh.seek(size - SAMPLE_BYTES)
            h.update(fh.read(SAMPLE_BYTES))
