"""The transformers backend: the training template, stops at end-of-turn, streams, batches."""

from __future__ import annotations

import threading
from typing import Iterator

import torch

from ..data.templates import Template
from .engine import Completion, GenParams, check_context
from .stops import StopFilter, cut_at_stop


class HFEngine:
    """Generation with a loaded model + tokenizer + the template used in training."""

    def __init__(self, model, tokenizer, template: Template):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = template
        self.stop_strings = template.stop_strings(tokenizer)
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        """EOS plus the template's end-of-turn tokens (``<|im_end|>``, ``<|eot_id|>``, ...)."""
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
        """Token ids of the rendered prompt, ending with the assistant header."""
        text = self.template.generation_prompt(self.tokenizer, messages)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.encode(messages))

    def _gen_kwargs(self, params: GenParams, budget: int) -> dict:
        kwargs = dict(max_new_tokens=budget, eos_token_id=self.eos_ids,
                      pad_token_id=self.tokenizer.pad_token_id,
                      repetition_penalty=params.repetition_penalty)
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                          top_k=params.top_k)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return kwargs

    def _seed(self, params: GenParams) -> None:
        if params.seed is not None:
            torch.manual_seed(params.seed)
            if torch.cuda.is_available():
                torch.cuda.manual_seed_all(params.seed)

    def _finish(self, new_ids: list[int], params: GenParams, budget: int) -> tuple[str, str]:
        stopped = bool(new_ids) and new_ids[-1] in self.eos_ids
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, cut = cut_at_stop(text, params.stop)
        reason = "stop" if stopped or cut or len(new_ids) < budget else "length"
        return text, reason

    @torch.inference_mode()
    def generate(self, messages: list[dict], params: GenParams) -> Completion:
        return self.batch_generate([messages], params)[0]

    @torch.inference_mode()
    def batch_generate(self, conversations: list[list[dict]], params: GenParams) -> list[Completion]:
        """Generate for several conversations at once, left-padded (same answers as one by one).

        Raises:
            ContextLengthError: a prompt does not fit in the context.
        """
        if not conversations:
            return []
        prompts = [self.encode(m) for m in conversations]
        budget = min(check_context(len(p), params.max_new_tokens, self.context_length)
                     for p in prompts)
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])  # (B, T)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])  # (B, T)
        device = self.model.device
        self._seed(params)
        out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                  **self._gen_kwargs(params, budget))
        results = []
        for prompt, row in zip(prompts, out[:, width:].tolist()):
            new = _strip_after_eos(row, self.eos_ids, pad)
            text, reason = self._finish(new, params, budget)
            results.append(Completion(text, len(prompt), len(new), reason, new))
        return results

    def stream(self, messages: list[dict], params: GenParams) -> Iterator[str]:
        """Yield text pieces as they are generated; closing the iterator stops generation.

        Raises:
            ContextLengthError: the prompt does not fit (raised before anything is yielded).
        """
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        prompt = self.encode(messages)
        budget = check_context(len(prompt), params.max_new_tokens, self.context_length)
        ids = torch.tensor([prompt], device=self.model.device)  # (1, T)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                      stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]),
                      **self._gen_kwargs(params, budget))
        self._seed(params)
        job = _GenerationThread(self.model, streamer, kwargs)
        job.start()
        stops = StopFilter(params.stop)
        try:
            for piece in streamer:
                if text := stops.feed(piece):
                    yield text
            if text := stops.flush():
                yield text
        finally:
            cancel.set()  # a closed iterator (client gone) ends generation at the next token
            job.join()
        job.raise_error()


class _Cancelled:
    """A stopping criterion that ends generation once ``event`` is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool,
                          device=input_ids.device)


class _GenerationThread(threading.Thread):
    """Runs ``model.generate`` for a streamer; an exception ends the stream and is re-raised."""

    def __init__(self, model, streamer, kwargs: dict):
        super().__init__(daemon=True)
        self.model, self.streamer, self.kwargs = model, streamer, kwargs
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with torch.inference_mode():
                self.model.generate(**self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self.error = exc
            self.streamer.end()  # unblock the consumer instead of hanging forever

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def _strip_after_eos(row: list[int], eos_ids: list[int], pad: int) -> list[int]:
    for i, tok in enumerate(row):
        if tok in eos_ids:
            return row[: i + 1]
    while row and row[-1] == pad and pad not in eos_ids:
        row = row[:-1]
    return row
