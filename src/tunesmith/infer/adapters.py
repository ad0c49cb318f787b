"""Attach a trained adapter (or load a full fine-tuned model dir) with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..errors import ModelError
from ..model.signature import BASE_SIGNATURE_FILE, base_signature


def check_adapter_dir(adapter_dir: str) -> Path:
    """The adapter directory, or a one-line ModelError saying what is wrong with it."""
    path = Path(adapter_dir).expanduser()
    if not path.exists():
        raise ModelError(f"adapter_name_or_path '{adapter_dir}': not found (expected the output "
                         "dir of a LoRA/QLoRA run, or one of its checkpoint-N dirs)")
    if not path.is_dir():
        raise ModelError(f"adapter_name_or_path '{adapter_dir}': is a file, expected a directory")
    if not (path / "adapter_config.json").is_file():
        hint = (" it holds a full model: use it as model_name_or_path instead"
                if (path / "config.json").is_file() else
                " expected a tunesmith/PEFT adapter directory")
        raise ModelError(f"adapter_name_or_path '{adapter_dir}': no adapter_config.json there;{hint}")
    return path


def attach_adapter(model, adapter_dir: str, base_name: str = ""):
    """Wrap ``model`` with the PEFT adapter in ``adapter_dir``; the base must match."""
    from peft import PeftModel

    path = check_adapter_dir(adapter_dir)
    check_adapter_base(path, model)
    try:
        return PeftModel.from_pretrained(model, str(path))
    except (RuntimeError, ValueError, KeyError) as exc:
        # Shape mismatches surface here when no base signature was written.
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"adapter {path} does not fit base model '{base_name}': {first}") from None


def check_adapter_base(path: Path, model) -> None:
    """Refuse an adapter whose recorded base shape differs from the model's."""
    meta = path / BASE_SIGNATURE_FILE
    if not meta.is_file():
        return
    try:
        expected = json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{meta}: not valid JSON ({exc})") from None
    actual = base_signature(model)
    diffs = [f"{k}: adapter {expected[k]} vs model {actual.get(k)}"
             for k in actual if k in expected and expected[k] != actual.get(k)]
    if diffs:
        raise ModelError(f"adapter {path} was trained on a different base model ("
                         + "; ".join(diffs) + ")")


def training_template(run_dir: str | Path | None) -> tuple[str, str | None] | None:
    """``(template, default_system)`` recorded by the run that wrote ``run_dir``, if any.

    Chat, predict and export reuse the training template so the model sees at inference
    exactly what it learned from (the classic never-stops bug is a template mismatch).
    """
    if not run_dir:
        return None
    exported = Path(run_dir) / "tunesmith_export.json"  # a merged model from `tunesmith export`
    if exported.is_file():
        meta = json.loads(exported.read_text(encoding="utf-8"))
        return str(meta.get("template") or "auto"), meta.get("default_system")
    saved = Path(run_dir) / "tunesmith_config.yaml"
    if not saved.is_file():
        return None
    try:
        flat = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return None
    if not isinstance(flat, dict) or not flat.get("template"):
        return None
    return str(flat["template"]), flat.get("default_system")
