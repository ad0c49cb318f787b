"""``reward_model: <dir>``: score completions with a model trained by ``stage: rm``.

The dir is an rm run's output (or its export): ``value_head.safetensors`` (the scalar head,
``train/reward_model.py``) beside a LoRA adapter (``adapter_config.json``, on the base it was
trained on) or a complete model (``config.json``). A completion's score is the head's value at
the last token of the rendered ``prompt + completion`` (its end-of-turn token), as the rm stage
scores a pair's answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...errors import ConfigError
from ..reward_model import HEAD_FILE
from . import RewardBatch, RewardFunction

if TYPE_CHECKING:
    from ...config import RunConfig


def check_reward_model_dir(path: str) -> Path:
    """The reward model dir, refused in one line when it lacks the value head or a model."""
    root = Path(path)
    if not (root / HEAD_FILE).is_file():
        raise ConfigError(f"key 'reward_model': {path} has no {HEAD_FILE} (train one with "
                          "stage: rm, or point at its output dir)")
    if not ((root / "config.json").is_file() or (root / "adapter_config.json").is_file()):
        raise ConfigError(f"key 'reward_model': {path} holds neither a model (config.json) nor "
                          "an adapter (adapter_config.json)")
    return root


class RewardModelScorer:
    """A frozen causal LM + value head scoring rendered conversations, one value each."""

    def __init__(self, model, tokenizer, template, batch_size: int = 8):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer, self.template = tokenizer, template
        self.batch_size = batch_size

    def _ids(self, prompt: list[dict], completion: str) -> list[int]:
        text = self.template.render(self.tokenizer, [*prompt, {"role": "assistant",
                                                               "content": completion}])
        return self.tokenizer(text.rstrip(" \n"), add_special_tokens=False)["input_ids"]

    @torch.inference_mode()
    def scores(self, batch: RewardBatch) -> list[float]:
        seqs = [self._ids(p, c) for p, c in zip(batch.prompts, batch.completions)]
        out: list[float] = []
        for start in range(0, len(seqs), self.batch_size):
            out += self._score(seqs[start:start + self.batch_size])
        return out

    def _score(self, seqs: list[list[int]]) -> list[float]:
        from ..policy_logps import decoder_hidden
        from ..reward_model import value_head

        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])  # (B, T) right-padded
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        device = next(self.model.parameters()).device
        hidden = decoder_hidden(self.model, ids.to(device), mask.to(device))  # (B, T, H)
        last = hidden[torch.arange(len(seqs)), mask.sum(1) - 1]  # (B, H)
        head = value_head(self.model)
        return head(last.to(head.weight.dtype)).squeeze(-1).float().tolist()


def _adapter_base(root: Path, cfg) -> str:
    """The base the rm adapter was trained on, where it is on disk; else the run's model."""
    config = json.loads((root / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    return base if base and Path(base).is_dir() else cfg.model.model_name_or_path


def load_reward_scorer(path: str, cfg: RunConfig, tokenizer, template) -> RewardFunction:
    """A RewardFunction named ``reward_model`` scoring with the model in ``path``."""
    from dataclasses import replace

    from ...model.load import load_model, resolve_model_path
    from ..reward_model import load_value_head

    root = check_reward_model_dir(path)
    if (root / "adapter_config.json").is_file():
        from ...infer.adapters import attach_adapter

        base_name = _adapter_base(root, cfg)
        base = load_model(replace(cfg.model, quantization_bit=None),
                          path=resolve_model_path(base_name, model_cfg=cfg.model))
        model = attach_adapter(base, str(root), base_name)
    else:
        model = load_model(replace(cfg.model, quantization_bit=None), path=root)
    load_value_head(model, root)
    return RewardFunction("reward_model", RewardModelScorer(model, tokenizer, template).scores)
