"""The vLLM backend (``infer_backend: vllm``, GPU machines): same template, stops and params.

vllm is imported only when this backend is chosen. The offline ``vllm.LLM`` batches requests
itself (continuous batching); ``stream`` yields the finished answer as one piece.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Iterator

from ..errors import MissingExtraError
from .engine import Completion, GenParams, check_context
from .stops import cut_at_stop


def import_vllm():
    """The vllm module, or a one-line error naming the install command."""
    try:
        return importlib.import_module("vllm")
    except ImportError:
        err = MissingExtraError("vllm", "vllm", "infer_backend: vllm")
        err.args = ("infer_backend: vllm needs the 'vllm' package (Linux + CUDA GPU): "
                    "pip install vllm   (or use infer_backend: hf)",)
        raise err from None


class VLLMEngine:
    """The Engine interface over ``vllm.LLM`` (+ an optional LoRA adapter)."""

    def __init__(self, llm, tokenizer, template, lora_request=None):
        self.llm, self.tokenizer, self.template = llm, tokenizer, template
        self.lora_request = lora_request
        self.stop_strings = template.stop_strings(tokenizer)
        ids = {tokenizer.eos_token_id, *(tokenizer.convert_tokens_to_ids(s.strip())
                                         for s in self.stop_strings)}
        self.eos_ids = sorted(i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id)

    @property
    def context_length(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def encode(self, messages: list[dict]) -> list[int]:
        text = self.template.generation_prompt(self.tokenizer, messages)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.encode(messages))

    def _sampling(self, params: GenParams, budget: int):
        vllm = import_vllm()
        return vllm.SamplingParams(
            max_tokens=budget, temperature=0.0 if params.greedy else params.temperature,
            top_p=params.top_p, top_k=params.top_k if params.top_k else -1,
            repetition_penalty=params.repetition_penalty, seed=params.seed,
            stop=list(params.stop) or None, stop_token_ids=self.eos_ids,
            skip_special_tokens=True)

    def batch_generate(self, conversations: list[list[dict]], params: GenParams) -> list[Completion]:
        prompts = [self.encode(m) for m in conversations]
        budget = min(check_context(len(p), params.max_new_tokens, self.context_length)
                     for p in prompts)
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts],
                                    self._sampling(params, budget),
                                    lora_request=self.lora_request, use_tqdm=False)
        results = []
        for prompt, out in zip(prompts, outputs):
            best = out.outputs[0]
            text, _ = cut_at_stop(best.text, params.stop)
            reason = "length" if best.finish_reason == "length" else "stop"
            results.append(Completion(text, len(prompt), len(best.token_ids), reason,
                                      list(best.token_ids)))
        return results

    def generate(self, messages: list[dict], params: GenParams) -> Completion:
        return self.batch_generate([messages], params)[0]

    def stream(self, messages: list[dict], params: GenParams) -> Iterator[str]:
        yield self.generate(messages, params).text


def _lora_rank(adapter: str) -> int:
    config = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    return int(config.get("r", 16))


def load_vllm(cfg, adapter: str | None = None) -> VLLMEngine:
    """Build a VLLMEngine for the config's model (+ LoRA adapter) and training template."""
    vllm = import_vllm()
    from ..data.templates import get_template
    from ..model.load import load_tokenizer, resolve_model_path
    from .adapters import check_adapter_dir
    from .load import resolve_template

    adapter = adapter if adapter is not None else cfg.model.adapter_name_or_path
    if adapter:
        check_adapter_dir(adapter)
    path = resolve_model_path(cfg.model.model_name_or_path)
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
