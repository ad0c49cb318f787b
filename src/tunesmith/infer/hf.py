"""The transformers backend: the training template, stops at end-of-turn, streams, batches."""

from __future__ import annotations

import threading
from typing import Iterator

import torch

from ..data.templates import Template
from .engine import Completion, GenParams


class HFEngine:
    """Generation with a loaded model + tokenizer + the template used in training."""

    def __init__(self, model, tokenizer, template: Template):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = template
        self.stop_strings = template.stop_strings(tokenizer)
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        for s in self.stop_strings:
            tok = self.tokenizer.convert_tokens_to_ids(s.strip())
            if isinstance(tok, int) and tok != self.tokenizer.unk_token_id:
                ids.add(tok)
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return sorted(i for i in ids if i is not None)

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    def encode(self, messages: list[dict]) -> list[int]:
        text = self.template.generation_prompt(self.tokenizer, messages)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.encode(messages))

    def _gen_kwargs(self, params: GenParams) -> dict:
        kwargs = dict(max_new_tokens=params.max_new_tokens, eos_token_id=self.eos_ids,
                      pad_token_id=self.tokenizer.pad_token_id,
                      repetition_penalty=params.repetition_penalty)
        if params.temperature and params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                          top_k=params.top_k)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=params.stop, tokenizer=self.tokenizer)
        return kwargs

    def _seed(self, params: GenParams) -> None:
        if params.seed is not None:
            torch.manual_seed(params.seed)

    def _finish(self, new_ids: list[int], params: GenParams) -> tuple[str, str]:
        stopped = bool(new_ids) and new_ids[-1] in self.eos_ids
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        for s in params.stop:
            if s in text:
                text, stopped = text[: text.index(s)], True
        reason = "stop" if stopped or len(new_ids) < params.max_new_tokens else "length"
        return text, reason

    @torch.inference_mode()
    def generate(self, messages: list[dict], params: GenParams) -> Completion:
        return self.batch_generate([messages], params)[0]

    @torch.inference_mode()
    def batch_generate(self, conversations: list[list[dict]], params: GenParams) -> list[Completion]:
        """Generate for several conversations at once, left-padded."""
        self._seed(params)
        prompts = [self.encode(m) for m in conversations]
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])  # (B, T)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])  # (B, T)
        device = self.model.device
        out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                  **self._gen_kwargs(params))
        results = []
        for prompt, row in zip(prompts, out[:, width:].tolist()):
            new = _strip_after_eos(row, self.eos_ids, pad)
            text, reason = self._finish(new, params)
            results.append(Completion(text, len(prompt), len(new), reason))
        return results

    def stream(self, messages: list[dict], params: GenParams) -> Iterator[str]:
        """Yield text pieces as they are generated."""
        from transformers import TextIteratorStreamer

        self._seed(params)
        ids = torch.tensor([self.encode(messages)], device=self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                      **self._gen_kwargs(params))
        thread = threading.Thread(target=self._generate_quietly, kwargs=kwargs, daemon=True)
        thread.start()
        yield from streamer
        thread.join()

    @torch.inference_mode()
    def _generate_quietly(self, **kwargs):
        self.model.generate(**kwargs)


def _strip_after_eos(row: list[int], eos_ids: list[int], pad: int) -> list[int]:
    for i, tok in enumerate(row):
        if tok in eos_ids:
            return row[: i + 1]
    while row and row[-1] == pad and pad not in eos_ids:
        row = row[:-1]
    return row


def load_engine(cfg, adapter: str | None = None):
    """An HFEngine for the config's model (+ adapter), with the config's template."""
    from ..data.templates import get_template
    from ..model.load import load_model, load_tokenizer, resolve_model_path
    from .adapters import attach_adapter

    path = resolve_model_path(cfg.model.model_name_or_path)
    adapter = adapter if adapter is not None else cfg.model.adapter_name_or_path
    tokenizer = load_tokenizer(cfg.model, path)
    model = load_model(cfg.model, path=path)
    if adapter:
        model = attach_adapter(model, adapter, cfg.model.model_name_or_path)
    template = get_template(cfg.model.template, tokenizer, cfg.model.default_system)
    return HFEngine(model, tokenizer, template)
