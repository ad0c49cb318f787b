"""Load a tokenizer and model from a config: bundled name, local HF dir, .gguf file or hub ID.

Safetensors only by default (pickle ``.bin``/``.pt`` can run code when loaded); custom model
code only with ``trust_remote_code: true``.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sys

from ..errors import ModelError
from ..hardware import detect, resolve_dtype, torch_dtype
from ..hub import HubUnreachable, ModelRequest, is_hub_id, resolve_model
from ..paths import models_dir
from .bundled import BUNDLED, bundled_for_hub_id, convert_gguf, ensure_bundled

if TYPE_CHECKING:
    from ..config import ModelConfig


def _gguf_cache_dir(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return models_dir() / f"gguf-{gguf.stem}-{key[:12]}"


def resolve_model_path(name: str, *, quiet: bool = False,
                       model_cfg: ModelConfig | None = None) -> Path:
    """A local HF checkpoint dir for a bundled name, a directory, a ``.gguf`` file or a hub ID.

    Args:
        name: ``model_name_or_path`` (or an adapter's base).
        quiet: no progress messages.
        model_cfg: the ModelConfig whose ``model_revision``, ``hf_token``, ``hub`` and
            ``allow_pickle`` apply to a hub ID (without it: the default branch, HF_TOKEN).
    Raises:
        ModelError: the name is neither bundled, an existing path nor an ID that can be had
            (see hub.py for the one-line hub failures).
    """
    if name in BUNDLED:
        return ensure_bundled(name, quiet=quiet)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        dest = _gguf_cache_dir(path)
        if not (dest / "config.json").is_file():
            convert_gguf(path, dest, quiet=quiet)
        return dest
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model_name_or_path '{name}': directory has no config.json "
                             "(expected a Hugging Face model directory)")
        return path
    if is_hub_id(name) and not Path(name.split("/")[0]).is_dir():  # saves/typo: a local path
        return _resolve_hub_id(name, quiet, model_cfg)
    known = ", ".join(BUNDLED)
    raise ModelError(f"model_name_or_path '{name}': not found (expected a bundled model "
                     f"[{known}], a local Hugging Face directory, a .gguf file or a hub ID "
                     "like Qwen/Qwen2.5-0.5B-Instruct)")


def _resolve_hub_id(name: str, quiet: bool, model_cfg) -> Path:
    """A hub ID through hub.py; the bundled model's own ID falls back to the bundled weights
    when it is neither cached nor reachable (so the examples run offline as written)."""
    req = ModelRequest.from_config(model_cfg, name) if model_cfg is not None else ModelRequest(name)
    try:
        return resolve_model(req, quiet=quiet)
    except HubUnreachable:
        bundled = bundled_for_hub_id(name)
        if bundled is None or req.revision not in (None, "main"):
            raise
        if not quiet:
            print(f"{name}: not cached and the hub is offline or unreachable; using the bundled "
                  f"copy ({bundled})", file=sys.stderr, flush=True)
        return ensure_bundled(bundled, quiet=quiet)


def check_weights_safe(path: Path, allow_pickle: bool) -> None:
    """Refuse pickle-only checkpoints unless ``allow_pickle`` (pickle can execute code)."""
    if any(path.glob("*.safetensors")) or allow_pickle:
        return
    pickles = [p.name for p in path.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    if pickles:
        raise ModelError(f"{path}: weights are pickle files ({pickles[0]}), which can run code when "
                         "loaded; convert them to safetensors or set allow_pickle: true if you "
                         "trust the source")


def check_remote_code(path: Path, trust: bool) -> None:
    """Refuse models that need custom Python code unless ``trust_remote_code`` is set."""
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("auto_map") and not trust:
        raise ModelError(f"{path}: this model ships its own Python code (auto_map in config.json); "
                         "set trust_remote_code: true only if you trust its source")


def load_tokenizer(model_cfg: ModelConfig, path: Path | None = None):
    """The model's tokenizer, with a pad token set (never silently equal to a masked EOS)."""
    from transformers import AutoTokenizer

    path = path or resolve_model_path(model_cfg.model_name_or_path, model_cfg=model_cfg)
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=model_cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        # Labels mark EOS explicitly (data/tokenize.py), so pad == eos never hides EOS.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def flash_attention_installed() -> bool:
    """The flash-attn package (``attn_implementation: flash_attention_2``) is importable."""
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def gpu_attention(dtype: str | None = None, capability: tuple[int, int] | None = None) -> str:
    """``attn_implementation: auto`` on a GPU: flash_attention_2 when flash-attn is installed,
    the GPU is Ampere or newer (sm_80+: its kernels need it) and the weights are 16-bit (it takes
    no fp32); sdpa otherwise (PyTorch's fused kernels, always there).

    Args:
        dtype: the weights' dtype (``fp32`` rules flash-attention out).
        capability: (major, minor) of the GPU; default GPU 0's, or sm_80 when there is none
            (``estimate --gpu`` on a CPU machine).
    """
    capability = capability or detect().cuda_capability or (8, 0)
    if flash_attention_installed() and capability >= (8, 0) and dtype != "fp32":
        return "flash_attention_2"
    return "sdpa"


def attn_implementation(name: str, dtype: str | None = None) -> str:
    """``auto``: ``hybrid`` on CPU (math attention for short rows, sdpa for long; see
    model/attention.py), :func:`gpu_attention` on a GPU; any other name is transformers' own."""
    from .attention import register

    if name == "hybrid" or (name == "auto" and detect().device == "cpu"):
        return register()
    if name != "auto":
        return name
    return gpu_attention(dtype)


@contextmanager
def no_loading_bar():
    """Without transformers 5's per-tensor "Loading weights" bar: the weights are local by now
    (downloads, with their own progress, happen in resolve_model_path) and a local load takes a
    second, so the bar only adds a screen of carriage returns to logs."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def load_model(model_cfg: ModelConfig, *, dtype: str | None = None, path: Path | None = None,
               quantization_config=None, device_map=None):
    """Load a causal LM in the resolved dtype (``auto`` picks by hardware)."""
    from transformers import AutoModelForCausalLM

    path = path or resolve_model_path(model_cfg.model_name_or_path, model_cfg=model_cfg)
    check_weights_safe(path, model_cfg.allow_pickle)
    check_remote_code(path, model_cfg.trust_remote_code)
    kwargs = dict(dtype=torch_dtype(dtype or model_cfg.dtype),
                  trust_remote_code=model_cfg.trust_remote_code,
                  attn_implementation=attn_implementation(model_cfg.attn_implementation,
                                                          resolve_dtype(dtype or model_cfg.dtype)),
                  use_safetensors=not model_cfg.allow_pickle or None)
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device_map is not None:
        kwargs["device_map"] = device_map
    with no_loading_bar():
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    if detect().device == "cuda" and quantization_config is None and device_map is None:
        model = model.to("cuda")
    return model
