"""The vLLM backend (``infer_backend: vllm``, GPU machines): same template, stops and params.

vllm is imported only when this backend is chosen. :class:`VLLMDecoder` puts each row into
vLLM's own engine (``LLM.llm_engine``: ``add_request``/``step``/``abort_request``), which
batches them continuously on the GPU; every ``step`` hands back the tokens each row gained
(``RequestOutputKind.DELTA``), so chat, predict and serve stream token by token through the
same :mod:`.batching` loop as the transformers backend.
"""

from __future__ import annotations

import importlib
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MissingExtraError
from .base import TemplateEngine
from .engine import GenParams, TokenChoice

if TYPE_CHECKING:
    from ..config import RunConfig
    from .batching import Job


def import_vllm():
    """The vllm module, or a one-line error naming the install command."""
    try:
        return importlib.import_module("vllm")
    except ImportError:
        err = MissingExtraError("vllm", "vllm", "infer_backend: vllm")
        err.args = ("infer_backend: vllm needs the 'vllm' package (Linux + CUDA GPU): "
                    "pip install vllm   (or use infer_backend: hf)",)
        raise err from None


class VLLMEngine(TemplateEngine):
    """The Engine interface over ``vllm.LLM`` (+ an optional LoRA adapter)."""

    default_batch = 64  # vLLM schedules its own batches; more rows in flight keep the GPU busy

    def __init__(self, llm, tokenizer, template, lora_request=None):
        super().__init__(tokenizer, template)
        self.llm, self.lora_request = llm, lora_request
        self.eos_ids = sorted(self.end_of_turn_ids())
        self._ids = itertools.count()

    @property
    def context_length(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def decoder(self, capacity: int) -> "VLLMDecoder":
        return VLLMDecoder(self, capacity)

    def request_id(self) -> str:
        return f"tunesmith-{next(self._ids)}"

    def sampling(self, params: GenParams):
        """vLLM SamplingParams for a row: the stops are ours (end-of-turn ids, stop strings and
        max_tokens are checked by the batching loop), the tokens come back as deltas."""
        vllm = import_vllm()
        kwargs = dict(
            max_tokens=params.max_new_tokens,
            temperature=0.0 if params.greedy else params.temperature, top_p=params.top_p,
            top_k=params.top_k if params.top_k else -1,
            repetition_penalty=params.repetition_penalty, seed=params.seed,
            frequency_penalty=params.frequency_penalty, presence_penalty=params.presence_penalty,
            logit_bias=dict(params.logit_bias) or None, stop_token_ids=self.eos_ids,
            logprobs=max(params.top_logprobs, 1) if params.logprobs else None,
            skip_special_tokens=True, output_kind=_delta_kind(vllm))
        if params.json_object:
            kwargs.update(_json_constraint(vllm))
        return vllm.SamplingParams(**kwargs)


def _delta_kind(vllm):
    kinds = getattr(vllm, "RequestOutputKind", None) or importlib.import_module(
        "vllm.sampling_params").RequestOutputKind
    return kinds.DELTA


def _json_constraint(vllm) -> dict:
    """Guided decoding to a JSON object (vLLM's newer and older names)."""
    params = importlib.import_module("vllm.sampling_params")
    if hasattr(params, "StructuredOutputsParams"):
        return {"structured_outputs": params.StructuredOutputsParams(json_object=True)}
    return {"guided_decoding": params.GuidedDecodingParams(json_object=True)}


class VLLMDecoder:
    """The :class:`~tunesmith.infer.engine.Decoder` over vLLM's engine: rows become requests,
    ``step`` returns each request's new tokens, ``drop`` aborts a request at once."""

    def __init__(self, engine: VLLMEngine, capacity: int):
        self.engine, self.capacity = engine, capacity
        self.core = engine.llm.llm_engine
        self.rows: dict[str, Job] = {}
        self.ids: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, jobs: list) -> None:
        for job in jobs:
            rid = self.engine.request_id()
            self.core.add_request(rid, {"prompt_token_ids": list(job.prompt_ids)},
                                  self.engine.sampling(job.params),
                                  lora_request=self.engine.lora_request)
            self.rows[rid], self.ids[id(job)] = job, rid

    def drop(self, job) -> None:
        rid = self.ids.pop(id(job), None)
        if rid is not None and self.rows.pop(rid, None) is not None:
            self.core.abort_request([rid])

    def step(self) -> list:
        produced = []
        for out in self.core.step():
            job = self.rows.get(out.request_id)
            if job is None:
                continue
            choices = _choices(out.outputs[0], job.params.top_logprobs)
            if out.finished:
                self.rows.pop(out.request_id, None)
                self.ids.pop(id(job), None)
                choices += self._ending(out.outputs[0], choices)
            if choices:
                produced.append((job, choices))
        return produced

    def _ending(self, completion, choices: list[TokenChoice]) -> list[TokenChoice]:
        """A request vLLM ended itself (a stop token it does not report) ends our row too."""
        if completion.finish_reason == "stop" and not (choices and choices[-1].token in self.engine.eos_ids):
            return [TokenChoice(self.engine.eos_ids[0])]
        return []


def _choices(completion, top_n: int) -> list[TokenChoice]:
    tokens = list(completion.token_ids)
    steps = completion.logprobs or [None] * len(tokens)
    out = []
    for token, alts in zip(tokens, steps):
        if not alts:
            out.append(TokenChoice(token))
            continue
        ranked = sorted(alts.items(), key=lambda kv: -kv[1].logprob)[:top_n]
        out.append(TokenChoice(token, float(alts[token].logprob) if token in alts else None,
                               [(t, float(lp.logprob)) for t, lp in ranked]))
    return out


def _lora_rank(adapter: str) -> int:
    config = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    return int(config.get("r", 16))


def load_vllm(cfg: RunConfig, adapter: str | None = None) -> VLLMEngine:
    """Build a VLLMEngine for the config's model (+ LoRA adapter) and training template."""
    vllm = import_vllm()
    from ..data.templates import get_template
    from ..model.load import load_tokenizer, resolve_model_path
    from .adapters import check_adapter_dir
    from .load import resolve_template

    adapter = adapter if adapter is not None else cfg.model.adapter_name_or_path
    if adapter:
        check_adapter_dir(adapter)
    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    tokenizer = load_tokenizer(cfg.model, path)
    kwargs = dict(model=str(path), dtype="auto", trust_remote_code=cfg.model.trust_remote_code)
    if adapter:
        kwargs.update(enable_lora=True, max_lora_rank=max(8, _lora_rank(adapter)))
    llm = vllm.LLM(**kwargs)
    lora = None
    if adapter:
        from vllm.lora.request import LoRARequest

        lora = LoRARequest("adapter", 1, str(Path(adapter).resolve()))
    name, system = resolve_template(cfg, adapter, path)
    return VLLMEngine(llm, tokenizer, get_template(name, tokenizer, system), lora)
