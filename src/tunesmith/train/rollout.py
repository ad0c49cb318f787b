"""Sampling completions from the policy being trained, with the same engine as ``chat``.

``infer_backend: hf`` wraps the training model itself in the HF engine (batched, KV cache, stops
at end-of-turn). With ``rollout_merge`` (auto: where a copy of the adapted weights fits) each
generation decodes from a copy with the LoRA adapter folded in: the lean decoder's fused weights
(``infer/lean.py``) where it covers the model, else the adapter merged into the base weights and
the base weights put back exactly afterwards; either way one matmul per layer instead of three,
with no casts.
``infer_backend: vllm`` (GPU) runs a colocated ``vllm.LLM`` whose weights are refreshed from the
policy before each generation (LoRA deltas added to copies of the base weights), as TRL's
colocate mode does.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import torch

from ..infer.engine import GenParams
from ..infer.packed import packed_linears

if TYPE_CHECKING:
    from ..config import InferConfig, RunConfig


@dataclass
class Rollout:
    """Completions for a batch of prompts, ``num_generations`` per prompt, groups contiguous."""

    prompt_ids: list[list[int]]  # (N,) N = prompts x generations
    completion_ids: list[list[int]]
    texts: list[str]
    truncated: list[bool]

    def select(self, rows: list[int]) -> Rollout:
        """The rollout of these rows only."""
        return Rollout(*([getattr(self, f)[i] for i in rows]
                         for f in ("prompt_ids", "completion_ids", "texts", "truncated")))


def gen_params(infer_cfg: InferConfig, max_completion_length: int) -> GenParams:
    """Sampling settings as in ``chat`` (temperature, top_p, top_k, repetition_penalty); online
    RL always samples, so temperature 0 (the default, greedy for chat) means 1.0."""
    return GenParams(max_new_tokens=max_completion_length,
                     temperature=infer_cfg.temperature or 1.0, top_p=infer_cfg.top_p,
                     top_k=infer_cfg.top_k, repetition_penalty=infer_cfg.repetition_penalty)


def _adapted_weights(model) -> list | None:
    """The base weights (and biases) a merge of the model's adapter would change, or None when the
    adapter cannot be merged for generation (no PEFT adapter, a quantized or sharded base)."""
    if not hasattr(model, "merge_adapter"):
        return None
    from peft.tuners.tuners_utils import BaseTunerLayer

    tensors = []
    for module in model.modules():
        if not isinstance(module, BaseTunerLayer) or not getattr(module, "active_adapters", None):
            continue
        base = module.get_base_layer()
        weight = getattr(base, "weight", None)
        if weight is None or not weight.is_floating_point() or weight.numel() == 0 \
                or type(weight) not in (torch.Tensor, torch.nn.Parameter):
            return None  # bitsandbytes/DeepSpeed/FSDP parameters: a merge would not be exact
        tensors.append(weight)
        if getattr(base, "bias", None) is not None:
            tensors.append(base.bias)
    return tensors or None


def choose_rollout_merge(setting, model) -> tuple[bool, str]:
    """Decide ``rollout_merge`` (true, false or auto) for this model, with the reason."""
    from ..errors import ConfigError
    from ..hardware import copy_fits

    if setting is False:
        return False, "off (rollout_merge: false)"
    tensors = _adapted_weights(model)
    if tensors is None:
        if setting is True:
            raise ConfigError("rollout_merge: true needs a LoRA-style adapter on an unquantized, "
                              "unsharded base model; use rollout_merge: auto or false")
        return False, "off: the adapter cannot be merged exactly here (no adapter, or a " \
                      "quantized or sharded base)"
    fits, need = copy_fits(tensors)
    if setting is True:
        return True, f"on (rollout_merge: true; {need:,.0f} MiB copy of the adapted weights)"
    if not fits:
        return False, f"off: a {need:,.0f} MiB copy of the adapted weights does not fit"
    return True, f"on: generation runs on merged weights ({need:,.0f} MiB copy, restored exactly)"


@contextmanager
def merged_adapter(model, enabled: bool) -> Iterator[None]:
    """Generate with the adapter merged into the base weights: one matmul per layer instead of
    the base's plus LoRA's two, in the base dtype, with no casts. The base weights are copied
    first and put back bit for bit afterwards (merging and unmerging alone would drift them by
    rounding, step after step)."""
    if not enabled:
        yield
        return
    saved = [(t, t.detach().clone()) for t in _adapted_weights(model)]
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()
        for tensor, copy in saved:
            tensor.data.copy_(copy)


class PolicySampler:
    """Generates from the live training model through an Engine (``batch_generate``).

    ``merge``: generate from a copy of the weights with the adapter folded in: the lean decoder
    (``infer/lean.py``: fused, prepacked copies, the model untouched) where it covers the model,
    else the adapter merged in place (``merged_adapter``) with prepacked linear layers (``pack``).
    """

    def __init__(self, engine, model, sync=None, merge: bool = False, pack: bool = False,
                 log=None):
        self.engine, self.model, self.sync = engine, model, sync
        self.merge, self.pack, self.log = merge, pack, log
        self.keep: dict = {}  # the output head's lean copy, while its weight is unchanged

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
            with torch.no_grad(), self.decoding():
                done = self.engine.batch_generate(repeated, params)
        finally:
            self.model.train(was_training)
        prompts = [self.engine.encode(c) for c in conversations]
        return Rollout([p for p in prompts for _ in range(num_generations)],
                       [list(c.token_ids or []) for c in done], [c.text for c in done],
                       [c.finish_reason == "length" for c in done])

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """The weights one generation decodes with (see the class doc)."""
        lean = None
        if self.merge and hasattr(self.engine, "lean"):
            from ..infer.lean import build

            lean, why = build(self.model, self.keep)
            if self.log is not None:
                self.log(f"rollouts decode with {why}")
                self.log = None
        if lean is None:
            with merged_adapter(self.model, self.merge), packed_linears(self.model, self.pack):
                yield
            return
        self.engine.lean = lean
        try:
            yield
        finally:
            self.engine.lean = None


def hf_sampler(model, tokenizer, template, merge: bool = False, log=None) -> PolicySampler:
    """The training model itself behind the HF engine; with ``merge``, each generation decodes
    from a copy with the adapter folded in (see :class:`PolicySampler`)."""
    from ..infer.hf import HFEngine
    from ..infer.packed import choose_packing

    engine = HFEngine(model, tokenizer, template)
    model.train()
    return PolicySampler(engine, model, merge=merge, pack=choose_packing(model), log=log)


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


def _distributed_env() -> None:
    """The rank variables vLLM's in-process launcher reads (set by torchrun when distributed)."""
    import socket

    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                       ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(sock.getsockname()[1])


def vllm_sampler(cfg: RunConfig, model, tokenizer, template) -> PolicySampler:
    """A colocated vLLM engine over the base checkpoint, refreshed from the policy each step."""
    from ..infer.vllm import VLLMEngine, import_vllm
    from ..model.load import resolve_model_path

    vllm = import_vllm()
    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    _distributed_env()
    llm = vllm.LLM(model=str(path), dtype="auto", gpu_memory_utilization=0.3,
                   enable_prefix_caching=True, trust_remote_code=cfg.model.trust_remote_code,
                   # the engine lives in this process, so its model takes the policy's weights
                   distributed_executor_backend="external_launcher")

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
    from .run import log

    merge, why = choose_rollout_merge(cfg.infer.rollout_merge, model)
    log(f"rollout_merge: {cfg.infer.rollout_merge} -> {why}")
    return hf_sampler(model, tokenizer, template, merge=merge, log=log)
