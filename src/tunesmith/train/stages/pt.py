"""``stage: pt``: causal-LM (pre-)training on plain text; every token is a label."""

from __future__ import annotations

from ...errors import ConfigError
from . import Stage, register_stage


def _check(cfg) -> None:
    if cfg.data.train_on != "all_assistant":
        raise ConfigError("stage: pt trains on every token of plain text; remove 'train_on'")


register_stage(Stage(
    name="pt",
    summary="causal LM (pre-)training on plain text (labels: every token)",
    data_kind="text",
    needs_template=False,
    check=_check,
    passes=True,
))
