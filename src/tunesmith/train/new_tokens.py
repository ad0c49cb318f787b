"""Training with new tokens: grow the embeddings and make the new rows trainable.

With LoRA the new rows are trained through peft's ``trainable_token_indices`` (only those rows
are trained and saved; a tied output layer follows them), and an untied output layer is trained
in full (``modules_to_save``), as LLaMA-Factory adds both embedding layers there. Other adapter
methods train both embedding layers through ``modules_to_save``; ``full`` trains everything and
``freeze`` adds them to ``freeze_extra_modules``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..model.tokens import add_new_tokens, resize_embeddings, write_tokens

if TYPE_CHECKING:
    from ..config import RunConfig


def add_run_tokens(cfg: RunConfig, tokenizer) -> list[str]:
    """Add the config's new tokens to the tokenizer (before any data is tokenized)."""
    return add_new_tokens(tokenizer, cfg.model.add_tokens, cfg.model.add_special_tokens)


def _layer_names(model) -> tuple[str, str | None]:
    """Leaf names of the input and (untied) output embedding layers."""
    names = {id(m): n.split(".")[-1] for n, m in model.named_modules()}
    out = model.get_output_embeddings()
    tied = getattr(model.config, "tie_word_embeddings", False)
    return names[id(model.get_input_embeddings())], None if tied or out is None else names[id(out)]


def _extend(values, *names) -> list[str]:
    return list(dict.fromkeys([*(values or []), *[n for n in names if n]]))


def train_new_rows(model, tokenizer, method, params, cfg: RunConfig):
    """Resize ``model`` to the tokenizer and return ``params`` that train the new rows.

    Returns:
        The method parameters to apply (unchanged when no rows were added).
    """
    ids = resize_embeddings(model, tokenizer)
    if not ids:
        return params
    embed, output = _layer_names(model)
    fields = {f.name for f in dataclasses.fields(params)}
    if method.name == "full":  # every row trains already
        return params
    if "freeze_extra_modules" in fields:
        return dataclasses.replace(params, freeze_extra_modules=_extend(
            params.freeze_extra_modules, embed, output))
    if "trainable_token_indices" in fields:
        return dataclasses.replace(params, trainable_token_indices=ids,
                                   modules_to_save=_extend(params.modules_to_save, output) or None)
    if "modules_to_save" in fields:
        return dataclasses.replace(params, modules_to_save=_extend(params.modules_to_save, embed,
                                                                   output))
    raise ConfigError(f"new tokens need trainable embedding rows, which method '{method.name}' "
                      "cannot train: use lora, full or freeze")


def record_tokens(cfg: RunConfig, model, out_dir) -> None:
    """Write ``tunesmith_tokens.json`` when the run added tokens (read by chat/serve/export)."""
    if cfg.model.add_tokens or cfg.model.add_special_tokens or cfg.model.resize_vocab:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        write_tokens(out_dir, cfg.model.add_tokens, cfg.model.add_special_tokens,
                     int(base.config.vocab_size))
