"""Attach a trained adapter (or load a full fine-tuned model dir) with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError


def attach_adapter(model, adapter_dir: str, base_name: str):
    """Wrap ``model`` with the PEFT adapter in ``adapter_dir``; the base must match."""
    from peft import PeftModel

    path = Path(adapter_dir)
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise ModelError(f"adapter_name_or_path '{adapter_dir}': no adapter_config.json there "
                         "(expected a tunesmith/PEFT adapter directory)")
    check_adapter_base(path, model)
    return PeftModel.from_pretrained(model, str(path))


def check_adapter_base(path: Path, model) -> None:
    """Refuse an adapter whose recorded base shape differs from the model's."""
    meta = path / "tunesmith_base.json"
    if not meta.is_file():
        return
    expected = json.loads(meta.read_text(encoding="utf-8"))
    actual = base_signature(model)
    diffs = [f"{k}: adapter {expected[k]} vs model {actual.get(k)}"
             for k in expected if expected[k] != actual.get(k)]
    if diffs:
        raise ModelError(f"adapter {path} was trained on a different base model ("
                         + "; ".join(diffs) + ")")


def base_signature(model) -> dict:
    """Fields that identify a base model's architecture and size."""
    c = model.config
    return {"model_type": c.model_type, "hidden_size": getattr(c, "hidden_size", None),
            "num_hidden_layers": getattr(c, "num_hidden_layers", None),
            "vocab_size": getattr(c, "vocab_size", None)}
