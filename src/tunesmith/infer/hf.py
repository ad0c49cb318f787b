"""The transformers backend: the training template, stops at end-of-turn, continuous batching.

Generation runs on :class:`~tunesmith.infer.slots.HFDecoder` (a slot KV cache refilled as rows
finish) through :mod:`.batching`, for chat, predict and serve alike. Models whose adapters
prepend virtual tokens (prefix/prompt tuning: PEFT prompt learning) run through
``model.generate`` instead (:class:`GenerateDecoder`), a batch at a time.
"""

from __future__ import annotations

import torch

from ..data.templates import Template
from .base import TemplateEngine
from .engine import TokenChoice


class HFEngine(TemplateEngine):
    """Generation with a loaded model + tokenizer + the template used in training."""

    def __init__(self, model, tokenizer, template: Template):
        super().__init__(tokenizer, template)
        self.model = model.eval()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        extra = gen_eos if isinstance(gen_eos, list) else [gen_eos]
        self.eos_ids = sorted(self.end_of_turn_ids() | {i for i in extra if i is not None})
        self.lean = None  # a LeanForward (infer/lean.py) while the weights stay as it copied them

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    def decoder(self, capacity: int):
        """A fresh decoder holding up to ``capacity`` rows."""
        if getattr(getattr(self.model, "active_peft_config", None), "is_prompt_learning", False):
            return GenerateDecoder(self.model, self.tokenizer, self.eos_ids)
        from .json_mode import constraint_factory
        from .slots import HFDecoder

        return HFDecoder(self.model, capacity, constraint_factory(self), self.lean)


class GenerateDecoder:
    """A decoder over ``model.generate`` for models the slot cache cannot run (PEFT prompt
    learning prepends virtual tokens inside ``generate``): every pending row is generated to its
    end in one left-padded call, and its tokens are returned at once."""

    def __init__(self, model, tokenizer, eos_ids: list[int]):
        self.model, self.tokenizer, self.eos_ids = model, tokenizer, eos_ids
        self.capacity, self.pending = 1 << 30, []

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, jobs: list) -> None:
        self.pending += jobs

    def drop(self, job) -> None:
        if job in self.pending:
            self.pending.remove(job)

    @torch.inference_mode()
    def step(self) -> list:
        jobs, self.pending = self.pending, []
        width = max(len(j.prompt_ids) for j in jobs)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        ids = torch.tensor([[pad] * (width - len(j.prompt_ids)) + j.prompt_ids for j in jobs])
        mask = (torch.arange(width)[None] >= torch.tensor([width - len(j.prompt_ids) for j in jobs])[:, None]).long()
        p = jobs[0].params
        sample = {"do_sample": False} if p.greedy else {"do_sample": True, "temperature": p.temperature,
                                                         "top_p": p.top_p, "top_k": p.top_k}
        out = self.model.generate(input_ids=ids.to(self.model.device),
                                  attention_mask=mask.to(self.model.device),
                                  max_new_tokens=max(j.params.max_new_tokens for j in jobs),
                                  eos_token_id=self.eos_ids, pad_token_id=pad,
                                  repetition_penalty=p.repetition_penalty, **sample)
        return [(job, [TokenChoice(t) for t in row]) for job, row in zip(jobs, out[:, width:].tolist())]

