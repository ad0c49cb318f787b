"""Sampling completions from the policy being trained, with the same engine as ``chat``.

``infer_backend: hf`` wraps the training model itself in the HF engine (batched, KV cache, stops
at end-of-turn; no copy of the weights). ``infer_backend: vllm`` (GPU) runs a colocated
``vllm.LLM`` whose weights are refreshed from the policy before each generation (LoRA deltas
added to copies of the base weights), as TRL's colocate mode does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..infer.engine import GenParams

if TYPE_CHECKING:
    from ..config import InferConfig, RunConfig


@dataclass
class Rollout:
    """Completions for a batch of prompts, ``num_generations`` per prompt, groups contiguous."""

    prompt_ids: list[list[int]]  # (N,) N = prompts x generations
    completion_ids: list[list[int]]
    texts: list[str]
    truncated: list[bool]


def gen_params(infer_cfg: InferConfig, max_completion_length: int) -> GenParams:
    """Sampling settings as in ``chat`` (temperature, top_p, top_k, repetition_penalty); online
    RL always samples, so temperature 0 (the default, greedy for chat) means 1.0."""
    return GenParams(max_new_tokens=max_completion_length,
                     temperature=infer_cfg.temperature or 1.0, top_p=infer_cfg.top_p,
                     top_k=infer_cfg.top_k, repetition_penalty=infer_cfg.repetition_penalty)


class PolicySampler:
    """Generates from the live training model through an Engine (``batch_generate``)."""

    def __init__(self, engine, model, sync=None):
        self.engine, self.model, self.sync = engine, model, sync

    def encode(self, messages: list[dict]) -> list[int]:
        return self.engine.encode(messages)

    def sample(self, conversations: list[list[dict]], num_generations: int,
               params: GenParams) -> Rollout:
        """``num_generations`` completions of each conversation's next assistant turn."""
        repeated = [c for c in conversations for _ in range(num_generations)]
        was_training = self.model.training
        if self.sync is not None:
            self.sync(self.model)
        self.model.eval()  # no dropout, and a KV cache even under gradient checkpointing
        try:
            with torch.no_grad():
                done = self.engine.batch_generate(repeated, params)
        finally:
            self.model.train(was_training)
        prompts = [self.engine.encode(c) for c in conversations]
        return Rollout([p for p in prompts for _ in range(num_generations)],
                       [list(c.token_ids or []) for c in done], [c.text for c in done],
                       [c.finish_reason == "length" for c in done])


def hf_sampler(model, tokenizer, template) -> PolicySampler:
    """The training model itself behind the HF engine."""
    from ..infer.hf import HFEngine

    engine = HFEngine(model, tokenizer, template)
    model.train()
    return PolicySampler(engine, model)


def _vllm_name(name: str) -> str:
    name = name.removeprefix("base_model.model.").replace(".base_layer", "")
    return name.replace("modules_to_save.default.", "")


def vllm_weights(model):
    """``(name, tensor)`` pairs of the policy under the names vLLM loads, adapter deltas added
    to copies of the base weights (the policy itself is never merged: an in-place merge and
    unmerge would drift the base weights by rounding, step after step)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = {}
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer) and hasattr(module, "get_delta_weight"):
            weight = module.get_base_layer().weight.detach()
            for adapter in module.active_adapters:
                weight = weight + module.get_delta_weight(adapter).to(weight.dtype)
            merged[_vllm_name(name) + ".weight"] = weight
    prefix = getattr(model, "prefix", "lora_")
    for name, param in model.named_parameters():
        if prefix in name or "original_module" in name:
            continue
        clean = _vllm_name(name)
        yield clean, merged.pop(clean, param.detach())
    yield from merged.items()


def vllm_sampler(cfg: RunConfig, model, tokenizer, template) -> PolicySampler:
    """A colocated vLLM engine over the base checkpoint, refreshed from the policy each step."""
    from ..infer.vllm import VLLMEngine, import_vllm
    from ..model.load import resolve_model_path

    vllm = import_vllm()
    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    llm = vllm.LLM(model=str(path),
                   dtype="auto", gpu_memory_utilization=0.3, enable_prefix_caching=True,
                   trust_remote_code=cfg.model.trust_remote_code)

    def sync(policy) -> None:
        runner = llm.llm_engine.model_executor.driver_worker.model_runner.model
        with torch.no_grad():
            for name, tensor in vllm_weights(policy):
                runner.load_weights([(name, tensor)])
        llm.reset_prefix_cache()

    return PolicySampler(VLLMEngine(llm, tokenizer, template), model, sync=sync)


def build_sampler(cfg: RunConfig, model, tokenizer, template) -> PolicySampler:
    """The sampler for ``infer_backend`` (hf or vllm)."""
    if cfg.infer.infer_backend == "vllm":
        return vllm_sampler(cfg, model, tokenizer, template)
    return hf_sampler(model, tokenizer, template)
