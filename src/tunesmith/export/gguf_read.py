"""Read a GGUF file's tensor index fast: skip the metadata, map each tensor's bytes.

gguf-py's ``GGUFReader`` builds a numpy view for every element of every metadata array; for a
150k-token vocabulary that takes minutes in Python. The check only needs the tensors, so the
metadata values are stepped over (their layout: GGUF spec, ``ggml/docs/gguf.md``).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# GGUF metadata value types -> size in bytes (8 = string, 9 = array: variable)
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorEntry:
    """One tensor: ``shape`` in numpy order (rows first), ``type`` a GGMLQuantizationType."""

    name: str
    shape: tuple[int, ...]
    type: object
    data: np.ndarray  # raw bytes, (rows, bytes per row)


class _Cursor:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def unpack(self, fmt: str):
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return value[0] if len(value) == 1 else value

    def string(self) -> str:
        n = self.unpack("Q")
        self.pos += n
        return bytes(self.buf[self.pos - n:self.pos]).decode("utf-8", errors="replace")

    def skip(self, vtype: int) -> None:
        if vtype in _SCALAR:
            self.pos += _SCALAR[vtype]
        elif vtype == _STRING:
            n = self.unpack("Q")  # read first: `pos += unpack()` would lose unpack's step
            self.pos += n
        else:
            item, count = self.unpack("IQ")
            if item in _SCALAR:
                self.pos += _SCALAR[item] * count
            else:
                for _ in range(count):
                    self.skip(item)


def read_tensors(path: str | Path) -> list[TensorEntry]:
    """Every tensor of a GGUF file with its raw bytes (memory-mapped, nothing copied).

    Raises:
        ValueError: not a GGUF file.
    """
    import gguf

    with open(path, "rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    cur = _Cursor(buf)
    if bytes(buf[:4]) != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file")
    cur.pos = 8  # magic + version
    n_tensors, n_kv = cur.unpack("QQ")
    alignment = 32
    for _ in range(n_kv):
        key, vtype = cur.string(), cur.unpack("I")
        if key == "general.alignment" and vtype == 4:
            alignment = cur.unpack("I")
        else:
            cur.skip(vtype)
    infos = []
    for _ in range(n_tensors):
        name, n_dims = cur.string(), cur.unpack("I")
        dims = [cur.unpack("Q") for _ in range(n_dims)]
        infos.append((name, tuple(reversed(dims)), gguf.GGMLQuantizationType(cur.unpack("I")),
                      cur.unpack("Q")))
    start = -(-cur.pos // alignment) * alignment
    array = np.frombuffer(buf, dtype=np.uint8)
    return [TensorEntry(name, shape, qtype, _bytes(array, start + offset, shape, qtype))
            for name, shape, qtype, offset in infos]


def _bytes(array: np.ndarray, offset: int, shape: tuple, qtype) -> np.ndarray:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[qtype]
    row = shape[-1] // block * size
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return array[offset:offset + rows * row].reshape(rows, row)
