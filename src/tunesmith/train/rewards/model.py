"""``reward_model: <dir>``: score completions with a model trained by ``stage: rm``.

The interface this module needs from a reward model dir (LLaMA-Factory's layout for its
``stage: rm`` output, which ``AutoModelForCausalLMWithValueHead`` also reads):

* ``value_head.safetensors`` holding ``v_head.summary.weight`` (1, hidden) and
  ``v_head.summary.bias`` (1): the scalar head applied to the last layer's hidden state;
* the causal LM it sits on: the dir itself (a full model) or a LoRA adapter in it
  (``adapter_config.json``) on top of the run's base model.

A sequence's score is the head's value at its last token (the end-of-turn token of the
rendered ``prompt + completion``), as both LLaMA-Factory and TRL score.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...errors import ConfigError
from . import RewardBatch, RewardFunction

if TYPE_CHECKING:
    from ...config import RunConfig


HEAD_FILE = "value_head.safetensors"
HEAD_KEYS = ("v_head.summary.weight", "v_head.summary.bias")


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


def load_value_head(root: Path) -> torch.nn.Linear:
    """The scalar head (fp32) from ``value_head.safetensors``."""
    from safetensors.torch import load_file

    state = load_file(str(root / HEAD_FILE))
    missing = [k for k in HEAD_KEYS if k not in state]
    if missing:
        raise ConfigError(f"key 'reward_model': {root / HEAD_FILE} lacks {', '.join(missing)}")
    weight = state[HEAD_KEYS[0]].float()
    head = torch.nn.Linear(weight.shape[1], 1)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(state[HEAD_KEYS[1]].float().reshape(1))
    return head.requires_grad_(False)


class RewardModelScorer:
    """A frozen causal LM + value head scoring rendered conversations, one value each."""

    def __init__(self, model, head, tokenizer, template, batch_size: int = 8):
        self.model, self.head = model.eval(), head
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
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])  # (B, T) right-padded
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        device = next(self.model.parameters()).device
        hidden = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                            output_hidden_states=True).hidden_states[-1]  # (B, T, H)
        last = hidden[torch.arange(len(seqs)), mask.sum(1) - 1]  # (B, H)
        return self.head.to(last.device)(last.float()).squeeze(-1).tolist()


def load_reward_scorer(path: str, cfg: RunConfig, tokenizer, template) -> RewardFunction:
    """A RewardFunction named ``reward_model`` scoring with the model in ``path``."""
    from ...model.load import load_model, resolve_model_path

    root = check_reward_model_dir(path)
    if (root / "adapter_config.json").is_file():
        from ...infer.adapters import attach_adapter

        base = load_model(cfg.model, path=resolve_model_path(cfg.model.model_name_or_path,
                                                             model_cfg=cfg.model))
        model = attach_adapter(base, str(root), cfg.model.model_name_or_path)
    else:
        model = load_model(cfg.model, path=root)
    scorer = RewardModelScorer(model.requires_grad_(False), load_value_head(root), tokenizer,
                               template)
    return RewardFunction("reward_model", scorer.scores)
