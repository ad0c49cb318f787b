"""A run's fingerprint: base model identity, data hash and the config that shapes the data order.

Saved in every checkpoint's completion marker and compared on resume: resuming a checkpoint with
another base model, other data or another batch layout silently trains something else, so it is
refused (both fingerprints shown) unless ``resume_force: true``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..digest import hash_file_sample
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import RunConfig


# Config keys that change what a resumed run would compute (not lr/max_steps: extending is fine).
KEY_CONFIG = ("train.seed", "train.per_device_train_batch_size", "train.gradient_accumulation_steps",
              "method.stage", "method.stage_params", "method.method", "method.params",
              "data.cutoff_len", "data.train_on", "model.template")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_hash(path: str | Path) -> str:
    """Identity of a local HF model dir: its config.json plus a sample of every weight file."""
    root = Path(path)
    h = hashlib.sha256()
    config = root / "config.json"
    if config.is_file():
        h.update(json.dumps(json.loads(config.read_text(encoding="utf-8")), sort_keys=True).encode())
    for weights in sorted(root.glob("*.safetensors")) + sorted(root.glob("*.bin")):
        hash_file_sample(weights, h)
    return h.hexdigest()[:16]


def data_hash(examples) -> str:
    """Hash of the tokenized examples (covers the files, the template and the cutoff)."""
    import numpy as np

    h = hashlib.sha256()
    for ex in examples:
        h.update(np.asarray(ex.input_ids, dtype=np.int64).tobytes())
        h.update(b"|")
        h.update(np.asarray(ex.labels, dtype=np.int64).tobytes())
        h.update(b"#")
    return h.hexdigest()[:16]


def _get(cfg, dotted: str):
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def run_fingerprint(cfg: RunConfig, model_path, data, world_size: int = 1) -> dict:
    """The fingerprint of this run (JSON-able)."""
    key = {k: _get(cfg, k) for k in KEY_CONFIG}
    key["world_size"] = world_size
    if hasattr(data.train, "identity"):  # a stream: its files and settings, never read whole
        data_id = {"hash": data.train.identity(), "train_examples": None}
    else:
        data_id = {"hash": data_hash(list(data.train) + list(data.eval)),
                   "train_examples": len(data.train)}
    return {"base_model": {"name": cfg.model.model_name_or_path, "hash": model_hash(model_path)},
            "data": data_id,
            "config": key, "config_hash": _digest(key)}


def _short(fp: dict) -> str:
    return (f"base {fp['base_model']['name']}#{fp['base_model']['hash']}, "
            f"data #{fp['data']['hash']}, config #{fp['config_hash']}")


def differences(saved: dict, current: dict) -> list[str]:
    """What differs between two fingerprints: base model, data, config keys."""
    diffs = []
    if saved["base_model"]["hash"] != current["base_model"]["hash"]:
        diffs.append("base model")
    if saved["data"]["hash"] != current["data"]["hash"]:
        diffs.append("data")
    if saved["config_hash"] != current["config_hash"]:
        keys = sorted(k for k in current["config"] if saved["config"].get(k) != current["config"][k])
        diffs.append("config (" + ", ".join(keys) + ")")
    return diffs


def check_resume(checkpoint: Path, saved: dict | None, current: dict, force: bool) -> str | None:
    """Raise ConfigError when the checkpoint belongs to another run, unless ``force``.

    Returns:
        A warning line when forced past a mismatch, else None.
    """
    if not saved:
        return None
    diffs = differences(saved, current)
    if not diffs:
        return None
    msg = (f"{checkpoint.name} was made by a different run ({', '.join(diffs)} differ): "
           f"checkpoint [{_short(saved)}] vs this run [{_short(current)}]")
    if force:
        return f"warning: resuming anyway (resume_force: true): {msg}"
    raise ConfigError(f"resume refused: {msg}; set resume_force: true to resume anyway")
