"""The EXPORTERS registry: ``export_format`` -> how to save a merged model and load it back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass(frozen=True)
class Exporter:
    name: str
    save: Callable  # (model, tokenizer, template, out_dir, cfg) -> list of file names
    load: Callable  # (out_dir, dtype name, device) -> model, for the export check
    check: Callable | None = None  # (cfg) -> None: refuse a request before anything loads
    # (out_dir, files, model, ids, merged logits) -> (saved report, saved logits, extra report
    # keys); None: load the files back with ``load`` and compare tensors bit for bit
    verify: Callable | None = None


# Discovery imports every module of the export package, so a new format (gguf.py) is one file
# that calls register_exporter; its heavy dependency is imported only when it saves or loads.
EXPORTERS: Registry[Exporter] = Registry("format", key="export_format", package=__package__)


def register_exporter(name: str, load: Callable, check: Callable | None = None,
                      verify: Callable | None = None):
    """Decorator registering a save function (its loader, request check and verifier) under
    ``name``."""
    return EXPORTERS.register(name, lambda save: Exporter(name, save, load, check, verify))


def get_exporter(name: str) -> Exporter:
    """The exporter for ``export_format``; unknown -> ConfigError listing the known names."""
    return EXPORTERS.get(name)


def end_of_turn_ids(tokenizer, template) -> list[int]:
    """EOS plus the template's end-of-turn tokens, so other runtimes stop where we do."""
    ids = {tokenizer.eos_token_id}
    for s in template.stop_strings(tokenizer):
        tok = tokenizer.convert_tokens_to_ids(s.strip())
        if isinstance(tok, int) and tok != tokenizer.unk_token_id:
            ids.add(tok)
    return sorted(i for i in ids if i is not None)


def prepare_tokenizer(tokenizer, template):
    """Carry a named training template into the exported tokenizer's chat_template."""
    if template.jinja:
        tokenizer.chat_template = template.jinja
    return tokenizer


def load_safetensors(out_dir: Path, dtype: str, device):
    from transformers import AutoModelForCausalLM

    from ..hardware import torch_dtype

    model = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch_dtype(dtype),
                                                 use_safetensors=True)
    return model.to(device).eval()


@register_exporter("safetensors", load_safetensors)
def save_safetensors(model, tokenizer, template, out_dir: Path, cfg: RunConfig) -> list[str]:
    """Safetensors shards of at most ``export_size`` GB (+ index), config, generation config,
    tokenizer."""
    eos = end_of_turn_ids(tokenizer, template)
    model.generation_config.eos_token_id = eos if len(eos) > 1 else eos[0]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    max_shard = max(1, int(cfg.infer.export_size * 10**9))  # GB as transformers counts it (10^9)
    model.save_pretrained(str(out_dir), max_shard_size=max_shard)
    prepare_tokenizer(tokenizer, template).save_pretrained(str(out_dir))
    return sorted(p.name for p in out_dir.iterdir())
