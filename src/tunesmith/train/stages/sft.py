"""``stage: sft``: supervised fine-tuning on conversations, labels on the assistant's turns."""

from __future__ import annotations

from . import Stage, register_stage

register_stage(Stage(
    name="sft",
    summary="supervised fine-tuning on chat data (labels: the assistant's tokens)",
    data_kind="chat",
    passes=True,
))
