"""Engines that implement only the Engine interface (infer/engine.py): a scripted one, and the
vLLM engine over a stand-in for vLLM's LLMEngine (no GPU, no vllm package)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

from tunesmith.infer.batching import Job, completion_of, generate_jobs, stream_job
from tunesmith.infer.engine import TokenChoice, check_context

ANSWER = "Hello from the fake engine."


class ScriptedDecoder:
    """Every row answers ANSWER one token per step, then the end-of-turn token."""

    def __init__(self, engine, capacity: int):
        self.engine, self.capacity = engine, capacity
        self.rows: list = []
        self.dropped: list = []

    def __len__(self):
        return len(self.rows)

    def add(self, jobs):
        assert len(self.rows) + len(jobs) <= self.capacity
        self.rows += jobs

    def drop(self, job):
        self.rows.remove(job)
        self.dropped.append(job)

    def step(self):
        script = self.engine.answer_ids + [self.engine.eos_ids[0]]
        return [(job, [TokenChoice(script[min(job.completion_tokens, len(script) - 1)])])
                for job in self.rows]


class FakeEngine:
    """The Engine interface and nothing else: no ``model`` for anything to reach into."""

    def __init__(self, tokenizer, template):
        self.tokenizer, self.template = tokenizer, template
        self.eos_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>")]
        self.answer_ids = tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
        self.decoders: list[ScriptedDecoder] = []

    @property
    def context_length(self) -> int:
        return 512

    def encode(self, messages):
        text = self.template.generation_prompt(self.tokenizer, messages)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_text(self, text):
        return self.tokenizer(text)["input_ids"]

    def decode(self, ids):
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def token_text(self, token):
        return self.tokenizer.decode([token])

    def count_tokens(self, messages):
        return len(self.encode(messages))

    def decoder(self, capacity):
        self.decoders.append(ScriptedDecoder(self, capacity))
        return self.decoders[-1]

    def _job(self, messages, params, index=0):
        prompt = self.encode(messages)
        check_context(len(prompt), params.max_new_tokens, self.context_length)
        return Job(prompt, params, index=index)

    def generate(self, messages, params):
        return self.batch_generate([messages], params)[0]

    def batch_generate(self, conversations, params, *, max_batch=None, on_done=None):
        jobs = [self._job(m, params, i) for i, m in enumerate(conversations)]
        generate_jobs(self, jobs, max_batch or 4, on_done)
        return [completion_of(j) for j in jobs]

    def stream(self, messages, params):
        return stream_job(self, self._job(messages, params))


# -- a stand-in for vLLM ---------------------------------------------------------------------------
@dataclass
class _Logprob:
    logprob: float


@dataclass
class _Completion:
    token_ids: list
    finish_reason: str | None
    logprobs: list | None


@dataclass
class _Output:
    request_id: str
    outputs: list
    finished: bool


class FakeLLMEngine:
    """vLLM's ``LLMEngine`` surface the backend uses: add_request, step (deltas), abort."""

    def __init__(self, answer_ids: list[int], stop_id: int):
        self.answer_ids, self.stop_id = answer_ids, stop_id
        self.requests: dict[str, dict] = {}
        self.aborted: list[str] = []
        self.model_config = types.SimpleNamespace(max_model_len=512)

    def add_request(self, request_id, prompt, params, lora_request=None):
        assert params.output_kind == "delta"
        self.requests[request_id] = {"sent": 0, "params": params}

    def abort_request(self, ids):
        for rid in ids:
            self.aborted.append(rid)
            self.requests.pop(rid, None)

    def step(self):
        outs = []
        script = self.answer_ids + [self.stop_id]
        for rid, req in list(self.requests.items()):
            token = script[req["sent"]]
            req["sent"] += 1
            done = token == self.stop_id or req["sent"] >= req["params"].max_tokens
            lps = [{token: _Logprob(-0.5), 7: _Logprob(-2.0)}] if req["params"].logprobs else None
            reason = None if not done else "stop" if token == self.stop_id else "length"
            outs.append(_Output(rid, [_Completion([token], reason, lps)], done))
            if done:
                del self.requests[rid]
        return outs


def install_fake_vllm(monkeypatch) -> None:
    """A ``vllm`` module with SamplingParams and RequestOutputKind, nothing else."""

    class SamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    module = types.ModuleType("vllm")
    module.SamplingParams = SamplingParams
    module.RequestOutputKind = types.SimpleNamespace(DELTA="delta")
    monkeypatch.setitem(sys.modules, "vllm", module)
