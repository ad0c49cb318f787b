"""Continuous batching over any engine's :class:`~tunesmith.infer.engine.Decoder`.

A :class:`Job` is one completion. :class:`Batcher` keeps up to ``capacity`` jobs in a decoder and
feeds it token by token: each new token is checked against the end-of-turn ids, the job's
``max_new_tokens`` and stop strings, turned into text incrementally and handed to the job's
``emit`` callback; a finished or cancelled job is dropped from the decoder at once, so its slot
can be refilled before the next step (continuous batching). Nothing is generated past an
end-of-turn token. The server's scheduler (``scheduler.py``) runs a Batcher on its worker thread;
``generate_jobs`` and ``stream_job`` run one in the caller's thread for chat and predict.

Events: ``("text", str, logprobs | None)``, ``("done", finish_reason)``, ``("error", message)``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .engine import Completion, GenParams, TokenChoice

class GenerationFailure(RuntimeError):
    """Raised inside generation after ``Job.fail_after`` tokens (fault injection: faults.py)."""


@dataclass
class Job:
    """One completion to produce (one choice of one request)."""

    prompt_ids: list[int]
    params: GenParams
    emit: Callable[[tuple], None] | None = None
    index: int = 0
    fail_after: int | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    completion_tokens: int = 0  # new tokens, the end-of-turn token included
    generated: list[int] = field(default_factory=list)  # new token ids, end-of-turn excluded
    text: str = ""  # decoded text of ``generated`` so far
    sent_chars: int = 0  # characters of ``text`` already emitted
    logprobs: list[dict] = field(default_factory=list)  # per token, when params.logprobs
    sent_logprobs: int = 0
    end_token: int | None = None  # the end-of-turn token that ended the job, if one did
    finish_reason: str | None = None
    finished_at: float | None = None
    cancelled_at: float | None = None
    detok: tuple[int, int] = (0, 0)  # incremental detokenization offsets (prefix, read)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def cancel(self) -> None:
        """The client went away: stop this row at the next token."""
        if not self.cancelled.is_set() and self.finished_at is None:
            self.cancelled_at = time.monotonic()
        self.cancelled.set()


class Batcher:
    """Jobs in one decoder, advanced a token per :meth:`step`.

    Args:
        engine: an :class:`~tunesmith.infer.engine.Engine`.
        capacity: jobs decoded together.
    """

    def __init__(self, engine, capacity: int):
        self.engine = engine
        self.capacity = max(1, int(capacity))
        self.decoder = engine.decoder(self.capacity)
        self.eos = set(engine.eos_ids)
        self.live: list[Job] = []

    @property
    def free(self) -> int:
        return self.capacity - len(self.live)

    def admit(self, jobs: list[Job]) -> None:
        """Start ``jobs`` (at most :attr:`free`); their prefill runs in the next step."""
        if jobs:
            self.live += jobs
            self.decoder.add(jobs)

    def step(self) -> list[Job]:
        """Drop cancelled jobs, advance the rest by a token; returns the jobs that finished.

        An exception from the decoder fails every live job (their clients get an error event)
        and starts a fresh decoder, so the next jobs run on a clean state.
        """
        ended = [j for j in self.live if j.cancelled.is_set()]
        for job in ended:
            self._finish(job, "cancelled")
        if not self.live:
            return ended
        try:
            produced = self.decoder.step()
        except Exception as exc:  # noqa: BLE001 - reported to the jobs' clients
            return ended + self.fail_all(exc)
        for job, choices in produced:
            reason = self._feed_all(job, choices)
            if reason:
                ended.append(job)
        return ended

    def fail_all(self, exc: BaseException) -> list[Job]:
        """Every live job ends with an error event; the decoder is replaced."""
        failed = list(self.live)
        for job in failed:
            self._end(job, "error", f"generation failed: {type(exc).__name__}")
        self.live = []
        self.decoder = self.engine.decoder(self.capacity)
        return failed

    def _feed_all(self, job: Job, choices: list[TokenChoice]) -> str | None:
        for choice in choices:
            try:
                reason = self._feed(job, choice)
            except GenerationFailure as exc:
                self._end(job, "error", f"generation failed: {type(exc).__name__}")
                self._drop(job)
                return "error"
            if reason:
                self._finish(job, reason)
                return reason
        return None

    def _feed(self, job: Job, choice: TokenChoice) -> str | None:
        """Take one token; the finish reason when the job is done with it."""
        if job.cancelled.is_set():
            return "cancelled"
        job.completion_tokens += 1
        if job.params.logprobs:
            job.logprobs.append(self._logprob_entry(choice))
        if choice.token in self.eos:
            job.end_token = choice.token
            return "stop"
        job.generated.append(choice.token)
        if job.fail_after is not None and job.completion_tokens > job.fail_after:
            raise GenerationFailure("test hook: generation failed on purpose")
        job.text += self._new_text(job)
        if self._release(job, final=False):
            return "stop"
        if job.completion_tokens >= job.params.max_new_tokens:
            return "length"
        return None

    def _new_text(self, job: Job) -> str:
        """Text the newest token adds (decoding a short window: multi-byte characters and
        tokenizers that merge spaces come out right, at O(1) per token)."""
        prefix, read = job.detok
        before = self.engine.decode(job.generated[prefix:read])
        after = self.engine.decode(job.generated[prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            job.detok = (read, len(job.generated))
            return after[len(before):]
        return ""

    def _logprob_entry(self, choice: TokenChoice) -> dict:
        text = self.engine.token_text(choice.token)
        top = [{"token": self.engine.token_text(t), "logprob": lp,
                "bytes": list(self.engine.token_text(t).encode("utf-8"))}
               for t, lp in (choice.top or [])]
        return {"token": text, "logprob": choice.logprob, "bytes": list(text.encode("utf-8")),
                "top_logprobs": top}

    def _release(self, job: Job, final: bool) -> bool:
        """Emit the text that is now safe; True when a stop string was reached (cut before it)."""
        from .stops import find_stop, safe_prefix

        cut = find_stop(job.text, job.params.stop)
        if cut is not None:
            job.text, safe = job.text[:cut], cut
        else:
            safe = len(job.text) if final else safe_prefix(job.text, job.params.stop)
        if safe > job.sent_chars or (final and job.sent_logprobs < len(job.logprobs)):
            lps = job.logprobs[job.sent_logprobs:] if job.params.logprobs else None
            job.sent_logprobs = len(job.logprobs)
            if job.emit is not None:
                job.emit(("text", job.text[job.sent_chars:safe], lps))
            job.sent_chars = safe
        return cut is not None

    def _finish(self, job: Job, reason: str) -> None:
        if reason != "cancelled":
            self._release(job, final=True)
        self._end(job, reason)
        self._drop(job)

    def _end(self, job: Job, reason: str, message: str | None = None) -> None:
        job.finish_reason, job.finished_at = reason, time.monotonic()
        if job.emit is None or reason == "cancelled":
            return
        job.emit(("error", message) if reason == "error" else ("done", reason))

    def _drop(self, job: Job) -> None:
        if job in self.live:
            self.live.remove(job)
            self.decoder.drop(job)


def completion_of(job: Job) -> Completion:
    """The finished job as a Completion."""
    ends = [job.end_token] if job.end_token is not None else []
    return Completion(job.text, job.prompt_tokens, job.completion_tokens,
                      job.finish_reason or "length", job.generated + ends,
                      job.logprobs if job.params.logprobs else None)


def generate_jobs(engine, jobs: list[Job], capacity: int,
                  on_done: Callable[[int], None] | None = None) -> list[Job]:
    """Run ``jobs`` to the end, ``capacity`` at a time, each freed slot refilled at once.

    Args:
        engine: the engine.
        jobs: the jobs, in any order (they finish in whatever order they end).
        capacity: rows decoded together.
        on_done: called with the number of jobs that just finished (progress bars).
    Raises:
        RuntimeError: the decoder failed (the message of the error event).
    """
    waiting, batcher = deque(jobs), Batcher(engine, capacity)
    while waiting or batcher.live:
        batcher.admit([waiting.popleft() for _ in range(min(batcher.free, len(waiting)))])
        ended = batcher.step()
        failed = [j for j in ended if j.finish_reason == "error"]
        if failed:
            raise RuntimeError(f"generation failed for row {failed[0].index}")
        if ended and on_done:
            on_done(len(ended))
    return jobs


def stream_job(engine, job: Job) -> Iterator[str]:
    """Yield ``job``'s text as it is generated; closing the iterator stops generation."""
    pieces: deque = deque()
    job.emit = pieces.append
    batcher = Batcher(engine, 1)
    batcher.admit([job])
    try:
        while batcher.live:
            batcher.step()
            while pieces:
                event = pieces.popleft()
                if event[0] == "text" and event[1]:
                    yield event[1]
                elif event[0] == "error":
                    raise RuntimeError(event[1])
    finally:
        if batcher.live:
            job.cancel()  # the consumer went away: free the row
            batcher.step()
