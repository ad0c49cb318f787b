"""New tokens (``add_tokens``, ``add_special_tokens``/``new_special_tokens``) and ``resize_vocab``.

As LLaMA-Factory does: the tokens join the tokenizer before the data is tokenized, the
embeddings grow to fit (to a multiple of 64) and each new row starts at the mean of the old rows
plus small noise (``noise_init``). The run records the tokens in ``tunesmith_tokens.json`` so
that chat, predict, serve and export rebuild the same tokenizer and embedding size before they
attach the adapter.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

TOKENS_FILE = "tunesmith_tokens.json"
PAD_TO = 64  # rows padded to a multiple of this (tensor-core friendly, as LLaMA-Factory)


def add_new_tokens(tokenizer, tokens: list[str] | None, special: list[str] | None) -> list[str]:
    """Add ``tokens`` (plain) and ``special`` (never split, skipped in replies) to the tokenizer.

    Returns:
        The tokens that were new to it, in the order added.
    """
    before = set(tokenizer.get_vocab())
    if tokens:
        tokenizer.add_tokens(list(tokens), special_tokens=False)
    if special:
        tokenizer.add_tokens(list(special), special_tokens=True)
    return [t for t in [*(tokens or []), *(special or [])] if t not in before]


def resize_embeddings(model, tokenizer) -> list[int]:
    """Grow the embeddings to fit the tokenizer; new rows get the noisy mean of the old ones.

    Returns:
        The ids of the rows added for tokens (empty when the model already had room).
    """
    import torch

    old = _rows(model.get_input_embeddings())
    if len(tokenizer) <= old:
        return []
    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=PAD_TO, mean_resizing=False)
    new = model.get_input_embeddings().weight.shape[0]
    with torch.no_grad():
        _noisy_mean(model.get_input_embeddings().weight, old)
        output = model.get_output_embeddings()
        if output is not None and not getattr(model.config, "tie_word_embeddings", False):
            _noisy_mean(output.weight, old)
    model.config.vocab_size = new
    return list(range(old, len(tokenizer)))


def _rows(embedding) -> int:
    """Rows of an embedding layer; under DeepSpeed ZeRO-3 its weight is partitioned (shape 0),
    so the layer's own count (or DeepSpeed's ``ds_shape``) is read."""
    rows = getattr(embedding, "num_embeddings", None)
    return rows if rows is not None else getattr(embedding.weight, "ds_shape", embedding.weight.shape)[0]


def _noisy_mean(weight, old: int) -> None:
    """Rows ``old:`` = mean of rows ``:old`` + N(0, 1/sqrt(dim)) (LLaMA-Factory's noise_init)."""
    import torch

    mean = weight[:old].float().mean(dim=0, keepdim=True)
    noise = torch.randn_like(weight[old:], dtype=torch.float32) / math.sqrt(weight.shape[1])
    weight[old:] = (mean + noise).to(weight.dtype)


def write_tokens(out_dir, tokens: list[str] | None, special: list[str] | None,
                 vocab_rows: int) -> Path:
    """Record the run's new tokens next to its adapter/model."""
    path = Path(out_dir) / TOKENS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"add_tokens": list(tokens or []),
                                "add_special_tokens": list(special or []),
                                "vocab_rows": vocab_rows}, indent=2) + "\n", encoding="utf-8")
    return path


def read_tokens(run_dir) -> dict | None:
    """The new tokens a run recorded (:func:`write_tokens`), or None."""
    path = Path(run_dir) / TOKENS_FILE if run_dir else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def match_adapter_tokens(tokenizer, model, adapter_dir) -> None:
    """Give the base tokenizer and model the new tokens and embedding size an adapter was
    trained with, before the adapter is attached (its rows overwrite the placeholders)."""
    recorded = read_tokens(adapter_dir)
    if not recorded:
        return
    if tokenizer is not None:
        add_new_tokens(tokenizer, recorded["add_tokens"], recorded["add_special_tokens"])
    rows = int(recorded["vocab_rows"])
    if model.get_input_embeddings().weight.shape[0] < rows:
        model.resize_token_embeddings(rows, mean_resizing=False)
        model.config.vocab_size = rows
