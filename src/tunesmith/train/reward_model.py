"""A reward model: the causal LM with a scalar value head on its last hidden state.

The head (``v_head``, a bias-free ``Linear(hidden, 1)``, as transformers' sequence-classification
``score``) is attached to the base model after the method wraps it, so adapters never target
it; it is trained in full under every method and saved beside the adapter or model as
``value_head.safetensors`` (LLaMA-Factory's file name), which ``export`` copies and ``predict``/
``serve`` load. A sequence's reward is the head applied to the hidden state of its last token.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .fast_loss import _base_model, supports_fast_loss

HEAD_FILE = "value_head.safetensors"
HEAD_KEY = "v_head.weight"


def attach_value_head(model, seed_std: float | None = None):
    """Add a trainable ``v_head`` to ``model``'s base (initialised as transformers initialises
    a classification head: normal(0, initializer_range)). Returns the model."""
    base = _base_model(model)
    hidden = base.config.get_text_config().hidden_size
    std = seed_std if seed_std is not None else getattr(base.config, "initializer_range", 0.02)
    head = torch.nn.Linear(hidden, 1, bias=False, device=base.device, dtype=torch.float32)
    torch.nn.init.normal_(head.weight, std=std)
    base.v_head = head
    return model


def value_head(model) -> torch.nn.Linear:
    return _base_model(model).v_head


def _hidden(model, batch: dict) -> torch.Tensor:
    from .pref_logps import model_inputs

    extra = model_inputs(batch)
    if supports_fast_loss(model):
        return _base_model(model).get_decoder()(input_ids=batch["input_ids"], use_cache=False,
                                                 **extra)[0]
    out = model(input_ids=batch["input_ids"], use_cache=False, output_hidden_states=True, **extra)
    return out.hidden_states[-1][:, -batch["input_ids"].shape[1]:]  # drop virtual tokens


def reward_scores(model, batch: dict) -> torch.Tensor:
    """(n_seqs,) fp32 rewards of a ``data/pair_collate.py`` batch (each sequence's last token)."""
    hidden = _hidden(model, batch)
    picked = hidden.reshape(-1, hidden.shape[-1])[batch["last_pos"]]  # (S, H)
    head = value_head(model)
    return head(picked.to(head.weight.dtype)).squeeze(-1).float()  # autocast still applies


def save_value_head(model, out_dir) -> Path:
    from safetensors.torch import save_file

    path = Path(out_dir) / HEAD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({HEAD_KEY: value_head(model).weight.detach().float().contiguous().cpu()}, str(path))
    return path


def load_value_head(model, folder) -> bool:
    """Load ``value_head.safetensors`` from ``folder`` into ``model``'s head (attaching one if
    missing). Returns False when the folder has none."""
    from safetensors.torch import load_file

    path = Path(folder) / HEAD_FILE
    if not path.is_file():
        return False
    weight = load_file(str(path))[HEAD_KEY]
    if not hasattr(_base_model(model), "v_head"):
        attach_value_head(model)
    with torch.no_grad():
        value_head(model).weight.copy_(weight.to(value_head(model).weight))
    return True
