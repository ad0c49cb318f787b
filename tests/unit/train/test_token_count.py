"""Tokens seen: a packed batch (position ids, no attention mask) is counted whole, without the
Trainer's "Could not determine method to count non-padding tokens" warning on every batch."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch

from tunesmith.train.trainer import TunesmithTrainer


def _trainer(mode: str = "non_padding") -> TunesmithTrainer:
    trainer = object.__new__(TunesmithTrainer)  # only what token counting reads
    trainer.args = SimpleNamespace(include_num_input_tokens_seen=mode, device="cpu")
    trainer.state = SimpleNamespace(num_input_tokens_seen=0)
    trainer.accelerator = SimpleNamespace(gather=lambda t: t)
    trainer.model = SimpleNamespace(main_input_name="input_ids")
    trainer.processing_class = None
    return trainer


def test_packed_batch_counts_every_id_without_a_warning(caplog):
    trainer = _trainer()
    packed = {"input_ids": torch.ones(1, 37, dtype=torch.long),
              "position_ids": torch.arange(37)[None]}
    with caplog.at_level(logging.WARNING):
        trainer._track_num_input_tokens(packed)
    assert trainer.state.num_input_tokens_seen == 37
    assert not [r for r in caplog.records if "Could not determine" in r.getMessage()]


def test_padded_batch_counts_the_attention_mask():
    trainer = _trainer()
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    trainer._track_num_input_tokens({"input_ids": torch.ones(2, 4, dtype=torch.long),
                                     "attention_mask": mask})
    assert trainer.state.num_input_tokens_seen == 5
