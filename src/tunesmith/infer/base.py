"""The Engine interface implemented once over a tokenizer, a template and a decoder.

A backend subclasses :class:`TemplateEngine` and supplies ``decoder(capacity)`` (its
continuous-batching core), ``context_length`` and ``eos_ids``; prompts, text, chat, predict and
streaming are the same for every backend.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator

from .batching import Job, completion_of, generate_jobs, stream_job
from .engine import Completion, GenParams, check_context


class TemplateEngine:
    """Chat generation with the template used in training.

    Attributes:
        tokenizer: the model's tokenizer.
        template: the chat template (``data.templates.Template``).
        eos_ids: EOS and the template's end-of-turn token ids (set by the backend).
        default_batch: rows decoded together by ``batch_generate`` unless told otherwise.
    """

    default_batch = 16

    def __init__(self, tokenizer, template):
        self.tokenizer, self.template = tokenizer, template
        self.stop_strings = template.stop_strings(tokenizer)
        self._texts: dict[int, str] = {}

    def end_of_turn_ids(self) -> set[int]:
        """EOS plus the template's end-of-turn tokens (``<|im_end|>``, ``<|eot_id|>``, ...)."""
        ids = {self.tokenizer.eos_token_id}
        for s in self.stop_strings:
            tok = self.tokenizer.convert_tokens_to_ids(s.strip())
            if isinstance(tok, int) and tok != self.tokenizer.unk_token_id:
                ids.add(tok)
        return {i for i in ids if i is not None}

    def encode(self, messages: list[dict]) -> list[int]:
        """Token ids of the rendered prompt, ending with the assistant header."""
        text = self.template.generation_prompt(self.tokenizer, messages)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_text(self, text: str) -> list[int]:
        """Token ids of a raw prompt (``/v1/completions``), as the tokenizer adds them."""
        return list(self.tokenizer(text)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def token_text(self, token: int) -> str:
        """The text of one token (logprobs, the JSON constraint); cached."""
        if token not in self._texts:
            piece = self.tokenizer.convert_ids_to_tokens(int(token))
            self._texts[token] = self.tokenizer.convert_tokens_to_string([piece])
        return self._texts[token]

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.encode(messages))

    def job(self, messages: list[dict], params: GenParams, index: int = 0) -> Job:
        """A job for ``messages``, its budget shortened to the context.

        Raises:
            ContextLengthError: the prompt alone fills the context.
        """
        prompt = self.encode(messages)
        budget = check_context(len(prompt), params.max_new_tokens, self.context_length)
        if budget != params.max_new_tokens:
            params = replace(params, max_new_tokens=budget)
        return Job(prompt, params, index=index)

    def generate(self, messages: list[dict], params: GenParams) -> Completion:
        return self.batch_generate([messages], params)[0]

    def batch_generate(self, conversations: list[list[dict]], params: GenParams, *,
                       max_batch: int | None = None,
                       on_done: Callable[[int], None] | None = None) -> list[Completion]:
        """Generate for several conversations, ``max_batch`` rows decoded together and each
        finished row's slot refilled at once (the same answers as one by one).

        Raises:
            ContextLengthError: a prompt does not fit in the context.
        """
        jobs = [self.job(m, params, i) for i, m in enumerate(conversations)]
        generate_jobs(self, jobs, max_batch or self.default_batch, on_done)
        return [completion_of(j) for j in jobs]

    def stream(self, messages: list[dict], params: GenParams) -> Iterator[str]:
        """Yield text pieces as they are generated; closing the iterator stops generation.

        Raises:
            ContextLengthError: the prompt does not fit (raised before anything is yielded).
        """
        return stream_job(self, self.job(messages, params))
