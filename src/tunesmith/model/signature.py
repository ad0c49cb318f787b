"""The base model's signature, saved next to an adapter (``tunesmith_base.json``).

Training writes it (``methods.finish_save``); loading an adapter (``infer/adapters``) compares it
with the model it is attached to and refuses another base with a one-line error.
"""

from __future__ import annotations

import json
from pathlib import Path

BASE_SIGNATURE_FILE = "tunesmith_base.json"


def base_signature(model) -> dict:
    """Fields that identify a base model's architecture and size."""
    c = model.config
    return {"model_type": c.model_type, "hidden_size": getattr(c, "hidden_size", None),
            "num_hidden_layers": getattr(c, "num_hidden_layers", None),
            "vocab_size": getattr(c, "vocab_size", None)}


def write_base_signature(model, out_dir) -> Path:
    """Record the base model's shape in ``out_dir`` (a PEFT wrapper is unwrapped first).

    Args:
        model: the trained model (PEFT-wrapped or not).
        out_dir: the adapter/model directory.
    Returns:
        The path written.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    path = Path(out_dir) / BASE_SIGNATURE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(base_signature(base), indent=2) + "\n", encoding="utf-8")
    return path
