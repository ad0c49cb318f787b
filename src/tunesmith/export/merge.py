"""``export``: merge an adapter into its base (``merge_and_unload``), verify, save atomically.

The story: check the request -> load the base unquantized in fp32 -> attach the adapter ->
probe logits -> merge -> probe again -> cast to the export dtype -> save into a temp dir ->
load the files back and probe -> write ``export_check.json`` and a model card -> rename into
``export_dir``. A failed check leaves nothing behind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError, ModelError
from ..hardware import resolve_dtype, torch_dtype
from .atomic import MARKER, atomic_dir, check_destination, disk_full_guard
from .check import build_report, compare_tensors, logits_of, probe_ids
from .formats import get_exporter
from .card import write_card

if TYPE_CHECKING:
    from ..config import RunConfig


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_request(cfg: RunConfig) -> None:
    """Refuse what cannot be exported before loading anything."""
    if not cfg.infer.export_dir:
        raise ConfigError("export needs export_dir: the directory to write the merged model to")
    refuse_adapter_as_model(cfg.model.model_name_or_path)
    if cfg.infer.export_quantization and cfg.infer.export_format != "gguf":
        raise ConfigError("export_quantization applies to export_format: gguf (got "
                          f"'{cfg.infer.export_format}'); safetensors keeps export_dtype")
    bits = cfg.model.quantization_bit
    if bits and not cfg.infer.export_dequantize:
        raise ModelError(f"cannot merge an adapter into a {bits}-bit quantized base "
                         f"(quantization_bit: {bits}): the merged weights would be lossy. Set "
                         "export_dequantize: true to merge into the unquantized base (loaded in "
                         "fp32 from model_name_or_path), or remove quantization_bit")
    if cfg.infer.export_legacy_format:
        log("note: export_legacy_format is ignored: tunesmith never writes pickle .bin weights "
            "(they can run code when loaded); export_format picks safetensors or gguf")


def refuse_adapter_as_model(name: str) -> None:
    """A LoRA-only folder given as the model: name the base it needs (one line)."""
    path = Path(str(name)).expanduser()
    if not (path / "adapter_config.json").is_file() or (path / "config.json").is_file():
        return
    config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    raise ModelError(f"model_name_or_path '{name}' is a LoRA adapter without its base model "
                     "(adapter_config.json, no config.json): export it with "
                     f"model_name_or_path=<base model> adapter_name_or_path={name}"
                     + (f" (it was trained on '{base}')" if base else ""))


def export_dtype(cfg: RunConfig, model_path: Path) -> str:
    """``export_dtype``, or for ``auto`` the dtype recorded in the base model's config.json."""
    if cfg.infer.export_dtype != "auto":
        return resolve_dtype(cfg.infer.export_dtype)
    config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    name = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return {"bfloat16": "bf16", "float16": "fp16"}.get(name, "fp32")


def load_parts(cfg: RunConfig):
    """Tokenizer, template, model path and the fp32 base on ``export_device``."""
    from ..data.templates import get_template
    from ..infer.load import resolve_template
    from ..model.load import load_model, load_tokenizer, resolve_model_path
    from ..model.tokens import match_adapter_tokens

    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    name, system = resolve_template(cfg, cfg.model.adapter_name_or_path, path)
    template = get_template(name, tokenizer, system)
    # Never quantized here: merging needs real weights (export_dequantize loads them in fp32).
    model = load_model(cfg.model, dtype="fp32", path=path)
    if cfg.model.adapter_name_or_path:  # a run that added tokens: the same tokenizer and rows
        match_adapter_tokens(tokenizer, model, cfg.model.adapter_name_or_path)
    return tokenizer, template, path, model.to(_device(cfg.infer.export_device))


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"export_device '{name}': no CUDA device here; use export_device: cpu")
    return name


def check_mergeable(adapter: str) -> None:
    """Refuse an adapter that cannot be merged (methods.adapter_merge_refusal decides), before
    the (slow) model load."""
    from ..infer.adapters import check_adapter_dir
    from ..methods import adapter_merge_refusal

    refusal = adapter_merge_refusal(check_adapter_dir(adapter))
    if refusal:
        raise ModelError(refusal)


def merge_adapter(model, adapter: str, base_name: str, ids):
    """(merged model, adapter logits): probe with the adapter attached, then merge it in."""
    from ..infer.adapters import attach_adapter

    model = attach_adapter(model, adapter, base_name)
    reference = logits_of(model, ids)
    try:  # peft's own failure for an adapter type our refusal does not know: still one line
        merged = model.merge_and_unload()
    except (AttributeError, NotImplementedError, ValueError) as exc:
        kind = getattr(model.peft_config.get("default"), "peft_type", "this adapter type")
        raise ModelError(f"adapter {adapter}: {kind} cannot be merged into the base ({exc}); "
                         "serve it with adapter_name_or_path instead") from None
    return merged, reference


def verify_saved(exporter, out_dir: Path, files: list[str], model, ids, merged, dtype: str):
    """(saved-tensor report, logits of the saved model, extra report keys) for the check."""
    if exporter.verify is not None:
        return exporter.verify(out_dir, files, model, ids, merged)
    loaded = exporter.load(out_dir, dtype, model.device)
    tensors = compare_tensors(model.state_dict(), loaded.state_dict())
    return tensors, logits_of(loaded, ids), {}


def run_export(cfg: RunConfig) -> dict:
    """Export per ``cfg``; returns the check report (also in ``export_dir/export_check.json``).

    Raises:
        ModelError: quantized base without export_dequantize, unmergeable adapter, or a failed
            check (then nothing is written).
    """
    check_request(cfg)
    dest = Path(cfg.infer.export_dir).expanduser().resolve()
    check_destination(dest)
    exporter = get_exporter(cfg.infer.export_format)
    if exporter.check is not None:
        exporter.check(cfg)
    adapter = cfg.model.adapter_name_or_path
    if adapter:
        check_mergeable(adapter)
    tokenizer, template, path, model = load_parts(cfg)
    ids = probe_ids(tokenizer, template)
    if adapter:
        model, reference = merge_adapter(model, adapter, cfg.model.model_name_or_path, ids)
        log(f"merged adapter {adapter} into {cfg.model.model_name_or_path}")
    else:
        reference = logits_of(model, ids)
    merged = logits_of(model, ids)
    dtype = export_dtype(cfg, path)
    model = model.to(torch_dtype(dtype))
    with disk_full_guard(dest), atomic_dir(dest) as tmp:
        files = exporter.save(model, tokenizer, template, tmp, cfg) + _copy_value_head(cfg, tmp)
        tensors, saved_logits, extra = verify_saved(exporter, tmp, files, model, ids, merged, dtype)
        report = {**build_report(reference, merged, tensors, saved_logits, dtype), **extra}
        _write_record(tmp, dest, cfg, report, files, dtype, template)
        if not report["passed"]:
            raise ModelError("export check failed (merged model differs from the adapter model: "
                             f"{json.dumps({k: report[k] for k in ('merge', 'saved')})}); "
                             "nothing was written to export_dir")
    return {**report, "export_dir": str(dest), "files": files, "dtype": dtype}


def _copy_value_head(cfg, tmp: Path) -> list[str]:
    """A reward model's head (``value_head.safetensors`` of an rm run) goes with the export."""
    import shutil

    from ..train.reward_model import HEAD_FILE

    for folder in (cfg.model.adapter_name_or_path, cfg.model.model_name_or_path):
        if folder and (Path(folder) / HEAD_FILE).is_file():
            shutil.copy2(Path(folder) / HEAD_FILE, tmp / HEAD_FILE)
            return [HEAD_FILE]
    return []


def _write_record(tmp: Path, dest: Path, cfg, report: dict, files: list[str], dtype: str,
                  template) -> None:
    (tmp / "export_check.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    meta = {"export_dir": str(dest), "base": cfg.model.model_name_or_path, "adapter": cfg.model.adapter_name_or_path,
            "template": template.name, "default_system": template.default_system,
            "dtype": dtype, "format": cfg.infer.export_format,
            "export_size_gb": cfg.infer.export_size, "files": files,
            "check_passed": report["passed"]}
    write_card(tmp, meta, report)
    (tmp / MARKER).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
