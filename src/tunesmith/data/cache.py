"""Tokenized-dataset cache, keyed by content so a stale entry can never be served.

The key is a sha256 over: the bytes of every data file, the tokenizer (its full serialized
``tokenizer.json`` when it is a fast tokenizer, else its vocabulary, plus special tokens and chat
template), the template's Jinja and system prompt, and every setting that changes the tokens
(cutoff_len, train_on, format, columns, tags, placeholders, sample limits, stage). Entries live in
``paths.data_cache_dir()/<key>/`` as flat numpy arrays (loaded with ``allow_pickle=False``) and
a JSON report; they are written to a temporary directory and renamed, so a killed run never
leaves a half-written entry that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..paths import publish
from .report import DataReport
from .tokenize import Example

CACHE_VERSION = 2
MAX_ENTRIES = 32  # older entries are pruned (least recently used first)
# The code that turns rows into tokens: any change to it invalidates every entry.
_CODE = ("conversation.py", "formats.py", "readers.py", "hub_data.py", "templates.py",
         "template_library.py", "tokenize.py", "load.py", "registry.py", "preference.py",
         "mix.py", "parallel.py", "tools.py")


def code_fingerprint() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in _CODE:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def file_digest(path: Path, h=None):
    """sha256 of a file's bytes, read in chunks (large files never sit in memory)."""
    h = h or hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h


def tokenizer_fingerprint(tokenizer) -> str:
    """A digest of everything about the tokenizer that changes ids."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    extra = {"special": tokenizer.special_tokens_map, "added": sorted(tokenizer.get_added_vocab().items()),
             "chat_template": getattr(tokenizer, "chat_template", None),
             "eos": tokenizer.eos_token_id, "bos": tokenizer.bos_token_id}
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def cache_key(files: list[Path], tokenizer, template, settings: dict) -> str:
    """The cache key for tokenizing ``files`` with ``tokenizer``/``template`` under ``settings``."""
    h = hashlib.sha256(f"tunesmith-data-cache-v{CACHE_VERSION}".encode())
    h.update(code_fingerprint().encode())
    for f in files:
        h.update(f.name.encode())
        h.update(file_digest(f).digest())
    h.update(tokenizer_fingerprint(tokenizer).encode())
    if template is not None:
        tpl = {"name": template.name, "jinja": template.jinja, "system": template.default_system,
               "think": [template.think_open, template.think_close]}
        h.update(json.dumps(tpl, sort_keys=True).encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _root(root: Path | None) -> Path:
    if root is not None:
        return root
    from ..paths import data_cache_dir

    return data_cache_dir()


def load(key: str, root: Path | None = None) -> tuple[list[Example], DataReport] | None:
    """The cached examples and report for ``key``, or None on a miss (or a damaged entry)."""
    import numpy as np

    entry = _root(root) / key
    if not (entry / "meta.json").is_file():
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        arrays = {n: np.load(entry / f"{n}.npy", allow_pickle=False)
                  for n in ("ids", "labels", "offsets", "truncated", "rows", "flags")}
    except (OSError, ValueError):
        return None
    try:
        os.utime(entry)  # recently used: pruned last
    except OSError:  # a concurrent run replaced or pruned it after we read it: what we read is whole
        pass
    ids, labels, offsets = arrays["ids"].tolist(), arrays["labels"].tolist(), arrays["offsets"].tolist()
    examples = [Example(ids[a:b], labels[a:b], bool(t), int(r), int(f))
                for a, b, t, r, f in zip(offsets[:-1], offsets[1:], arrays["truncated"],
                                         arrays["rows"], arrays["flags"])]
    return examples, DataReport.from_dict(meta["report"])


def save(key: str, examples: list[Example], report: DataReport, root: Path | None = None) -> Path:
    """Write an entry atomically (temp dir + rename); a whole existing entry is kept, a damaged one replaced."""
    import numpy as np

    root = _root(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    lengths = [len(e.input_ids) for e in examples]
    offsets = np.zeros(len(examples) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths) if lengths else []
    np.save(tmp / "ids.npy", _flat(examples, "input_ids"))
    np.save(tmp / "labels.npy", _flat(examples, "labels"))
    np.save(tmp / "offsets.npy", offsets)
    np.save(tmp / "truncated.npy", np.array([e.truncated for e in examples], dtype=bool))
    np.save(tmp / "rows.npy", np.array([e.row for e in examples], dtype=np.int64))
    np.save(tmp / "flags.npy", np.array([e.flag for e in examples], dtype=np.int64))
    (tmp / "meta.json").write_text(json.dumps({"version": CACHE_VERSION, "report": report.to_dict()},
                                              ensure_ascii=False), encoding="utf-8")
    entry = publish(tmp, root / key, "meta.json")
    prune(root)
    return entry


def _flat(examples: list[Example], attr: str):
    import numpy as np

    return np.array([t for e in examples for t in getattr(e, attr)], dtype=np.int64)


def prune(root: Path, keep: int = MAX_ENTRIES) -> None:
    """Remove the least recently used entries beyond ``keep``, and temp dirs of killed runs."""
    import time

    for tmp in root.glob(".*"):
        if tmp.is_dir() and time.time() - tmp.stat().st_mtime > 3600:
            shutil.rmtree(tmp, ignore_errors=True)
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)
