"""Request queue + batching for serving: one worker thread owns the model.

Design (chosen for a small CPU box, where a second model thread only fights for the same cores):

* ``submit`` puts a :class:`Job` (prompt token ids + :class:`GenParams`) in a bounded queue, or
  raises :class:`Overloaded` / :class:`ShuttingDown` at once, so callers never hang.
* The worker takes the oldest job plus every waiting job with the same sampling settings (up to
  ``max_batch``) and runs them as ONE left-padded ``model.generate`` call. The KV cache, padding and
  sampling are transformers' own; what we add is a per-row stopping criterion
  (:class:`_RowTracker`) that runs after every decode step: it streams each row's new text to its
  job, applies the row's own ``max_tokens`` and stop strings, and ends a row whose client has gone
  (``Job.cancel``). transformers pads finished rows and stops when every row is finished, so a
  disconnect ends that request's generation at the next token and a batch whose clients all left
  ends at once.
* Jobs arriving while a batch runs are admitted by re-batching: once the batch has decoded
  ``REBATCH_EVERY`` tokens and a compatible job waits with a free slot, the tracker ends the
  ``generate`` call; the open rows go back to the front of the queue with the tokens they have
  so far, and the next batch re-reads (prefills) prompt + generated tokens together with the new
  jobs. That costs one prefill per admission instead of merging KV caches, and bounds a newcomer's
  wait to about ``REBATCH_EVERY`` decode steps instead of the longest answer in the batch. With
  nobody waiting, a batch is one uninterrupted ``generate`` call.
* Seeded sampling runs alone, so a seed gives the same text as an unbatched request; greedy
  requests ignore the seed and batch freely.

Events reach the caller through ``Job.emit`` (thread-safe; the server wires it to an asyncio queue):
``("text", str)``, ``("done", finish_reason)``, ``("error", message)``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from .engine import GenParams

REBATCH_EVERY = 8  # decode steps between chances to admit waiting jobs into a running batch


class Overloaded(Exception):
    """Every slot and queue place is taken (HTTP 429)."""


class ShuttingDown(Exception):
    """The scheduler is draining for shutdown (HTTP 503)."""


class GenerationFailure(RuntimeError):
    """Raised inside generation after ``Job.fail_after`` tokens (fault injection: faults.py)."""


@dataclass
class Job:
    """One completion to produce (one choice of one request)."""

    prompt_ids: list[int]
    params: GenParams
    emit: Callable[[tuple], None]
    index: int = 0
    fail_after: int | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    completion_tokens: int = 0
    generated: list[int] = field(default_factory=list)  # new token ids so far
    sent_chars: int = 0  # characters of the decoded text already emitted
    finished_at: float | None = None
    cancelled_at: float | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    def cancel(self) -> None:
        """The client went away: stop this row at the next token."""
        if not self.cancelled.is_set() and self.finished_at is None:
            self.cancelled_at = time.monotonic()
        self.cancelled.set()


def _sampling_key(params: GenParams, serial: int) -> tuple:
    """Jobs with equal keys share one ``generate`` call (sampling settings are per call)."""
    if params.greedy:
        return ("greedy", params.repetition_penalty)
    if params.seed is not None:
        return ("seeded", serial)  # alone: reproducible
    return ("sample", params.temperature, params.top_p, params.top_k, params.repetition_penalty)


class Scheduler:
    """A bounded queue in front of one model worker thread.

    Args:
        engine: an HFEngine-like object (``model``, ``tokenizer``, ``eos_ids``).
        max_batch: rows decoded together (the server's ``max_concurrency``).
        max_queue: jobs allowed to wait beyond the running batch.
    """

    def __init__(self, engine, max_batch: int = 8, max_queue: int = 64):
        self.engine = engine
        self.max_batch = max(1, int(max_batch))
        self.max_queue = max(0, int(max_queue))
        self._waiting: deque[tuple[tuple, Job]] = deque()
        self._running: list[Job] = []
        self._cond = threading.Condition()
        self._serial = itertools.count()
        self._draining = False
        self._stopped = False
        self.counters = {"served": 0, "cancelled": 0, "failed": 0, "batches": 0,
                         "cancel_latency_max_s": 0.0}
        self._thread = threading.Thread(target=self._loop, name="tunesmith-scheduler", daemon=True)
        self._thread.start()

    # -- caller side ---------------------------------------------------------------------------
    def submit(self, jobs: list[Job]) -> None:
        """Queue jobs (all or none).

        Raises:
            ShuttingDown: draining for shutdown.
            Overloaded: not enough room for all of them.
        """
        with self._cond:
            if self._draining:
                raise ShuttingDown("the server is shutting down")
            live = sum(1 for j in self._running if not _done(j))
            if live + len(self._waiting) + len(jobs) > self.max_batch + self.max_queue:
                raise Overloaded("too many requests in flight")
            for job in jobs:
                self._waiting.append((_sampling_key(job.params, next(self._serial)), job))
            self._cond.notify_all()

    def stats(self) -> dict:
        """Slot and queue counts (``active``: rows still generating)."""
        with self._cond:
            active = sum(1 for j in self._running if not _done(j))
            queued = sum(1 for _, j in self._waiting if not j.cancelled.is_set())
            return {"active": active, "queued": queued, "max_concurrency": self.max_batch,
                    "max_queue": self.max_queue, "draining": self._draining, **self.counters}

    def drain(self, timeout: float) -> bool:
        """Refuse new jobs, wait up to ``timeout`` s for queued and running ones; True if idle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._draining = True
            while self._waiting or any(not _done(j) for j in self._running):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        """Stop the worker after the current batch (pending jobs get an error)."""
        with self._cond:
            self._draining = self._stopped = True
            for _, job in self._waiting:
                job.emit(("error", "the server is shutting down"))
            self._waiting.clear()
            self._cond.notify_all()

    # -- worker side ---------------------------------------------------------------------------
    def _next_batch(self) -> list[Job]:
        with self._cond:
            while not self._stopped:
                self._drop_cancelled()
                if self._waiting:
                    break
                self._cond.wait(0.5)
            if self._stopped:
                return []
            key = self._waiting[0][0]
            batch = [j for k, j in self._waiting if k == key][: self.max_batch]
            chosen = {id(j) for j in batch}
            self._waiting = deque((k, j) for k, j in self._waiting if id(j) not in chosen)
            self._running = batch
            return batch

    def _requeue(self, jobs: list[Job]) -> None:
        """Open rows of a preempted batch go first in line (they keep their keys)."""
        with self._cond:
            for job in reversed(jobs):
                self._waiting.appendleft((_sampling_key(job.params, next(self._serial)), job))
            self._cond.notify_all()

    def can_admit(self, batch: list[Job]) -> bool:
        """A waiting job could join ``batch`` (same sampling key, a free slot)."""
        open_rows = sum(1 for j in batch if not _done(j))
        if open_rows >= self.max_batch or not self._waiting:
            return False
        key = _sampling_key(batch[0].params, 0)
        with self._cond:
            return any(k == key and not j.cancelled.is_set() for k, j in self._waiting)

    def _drop_cancelled(self) -> None:
        gone = [j for _, j in self._waiting if j.cancelled.is_set()]
        if gone:
            self.counters["cancelled"] += len(gone)
            self._waiting = deque((k, j) for k, j in self._waiting if not j.cancelled.is_set())

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            try:
                self._run_batch(batch)
            except Exception as exc:  # noqa: BLE001 - reported to the batch's clients, not raised
                self._fail(batch, exc)
            finally:
                with self._cond:
                    self.counters["batches"] += 1
                    self._running = []
                    self._cond.notify_all()

    def _fail(self, batch: list[Job], exc: Exception) -> None:
        message = f"generation failed: {type(exc).__name__}"
        for job in batch:
            if not _done(job):
                job.finished_at = time.monotonic()
                self.counters["failed"] += 1
                job.emit(("error", message))

    def _run_batch(self, batch: list[Job]) -> None:
        import torch
        from transformers import StoppingCriteriaList

        tok, model = self.engine.tokenizer, self.engine.model
        eos_ids = list(self.engine.eos_ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos_ids[0]
        inputs = [j.prompt_ids + j.generated for j in batch]  # resumed rows re-read their tokens
        width = max(len(x) for x in inputs)
        ids = torch.tensor([[pad] * (width - len(x)) + x for x in inputs])  # (B, T) left-padded
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in inputs])  # (B, T)
        tracker = _RowTracker(batch, tok, eos_ids, self)
        kwargs = _sampling_kwargs(batch[0].params)
        budget = max(j.params.max_new_tokens - j.completion_tokens for j in batch)
        if batch[0].params.seed is not None and not batch[0].params.greedy:
            torch.manual_seed(batch[0].params.seed)  # seeded jobs run alone and are never preempted
        with torch.inference_mode():
            model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                           max_new_tokens=budget, eos_token_id=eos_ids, pad_token_id=pad,
                           stopping_criteria=StoppingCriteriaList([tracker]), **kwargs)
        if tracker.preempted:
            self._requeue([j for j in batch if not _done(j)])
        else:
            tracker.finish_all("length")

    def _finished(self, job: Job, reason: str) -> None:
        """Mark a row done (called by the tracker, on the worker thread)."""
        with self._cond:
            job.finished_at = time.monotonic()
            self.counters["cancelled" if reason == "cancelled" else "served"] += 1
            if reason == "cancelled" and job.cancelled_at is not None:
                latency = job.finished_at - job.cancelled_at  # client gone -> row stopped
                self.counters["cancel_latency_max_s"] = max(
                    self.counters["cancel_latency_max_s"], round(latency, 4))
            self._cond.notify_all()


def _done(job: Job) -> bool:
    return job.finished_at is not None


def _preemptible(params: GenParams) -> bool:
    """Seeded sampling runs alone and uninterrupted, so the seed reproduces its text."""
    return params.greedy or params.seed is None


def _sampling_kwargs(params: GenParams) -> dict:
    kwargs = {"repetition_penalty": params.repetition_penalty}
    if params.greedy:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                      top_k=params.top_k)
    return kwargs


class _RowTracker:
    """A per-row stopping criterion that also streams each row's text to its job."""

    def __init__(self, jobs: list[Job], tokenizer, eos_ids: list[int], scheduler: Scheduler):
        self.jobs, self.tokenizer, self.eos = jobs, tokenizer, set(eos_ids)
        self.scheduler = scheduler
        self.steps = 0
        self.preempted = False

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        last = input_ids[:, -1].tolist()
        for row, (job, token) in enumerate(zip(self.jobs, last)):
            if not _done(job):
                self._step(row, job, token)
        self.steps += 1
        done = [_done(j) for j in self.jobs]
        if (not all(done) and self.steps % REBATCH_EVERY == 0
                and _preemptible(self.jobs[0].params) and self.scheduler.can_admit(self.jobs)):
            self.preempted, done = True, [True] * len(done)  # end this call; rows resume
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _step(self, row: int, job: Job, token: int) -> None:
        if job.cancelled.is_set():
            return self._end(job, "cancelled")
        if token in self.eos:
            self._flush(row, job, final=True)
            return self._end(job, "stop")
        job.generated.append(token)
        job.completion_tokens += 1
        if job.fail_after is not None and job.completion_tokens > job.fail_after:
            raise GenerationFailure("test hook: generation failed on purpose")
        if self._flush(row, job, final=False):
            return self._end(job, "stop")
        if job.completion_tokens >= job.params.max_new_tokens:
            self._flush(row, job, final=True)
            self._end(job, "length")

    def _flush(self, row: int, job: Job, final: bool) -> bool:
        """Emit newly safe text; True when a stop string was reached (text cut before it)."""
        text = self.tokenizer.decode(job.generated, skip_special_tokens=True)
        cut = _cut_at_stop(text, job.params.stop)
        if cut is not None:
            safe, hit = cut, True
        elif final:
            safe, hit = len(text), False
        else:
            safe, hit = _safe_prefix(text, job.params.stop), False
        if safe > job.sent_chars:
            job.emit(("text", text[job.sent_chars:safe]))
            job.sent_chars = safe
        return hit

    def _end(self, job: Job, reason: str) -> None:
        self.scheduler._finished(job, reason)
        if reason != "cancelled":
            job.emit(("done", reason))

    def finish_all(self, reason: str) -> None:
        """Rows still open when ``generate`` returned ran out of the batch budget."""
        for row, job in enumerate(self.jobs):
            if not _done(job):
                if job.cancelled.is_set():
                    self._end(job, "cancelled")
                    continue
                self._flush(row, job, final=True)
                self._end(job, reason)


def _cut_at_stop(text: str, stops: list[str]) -> int | None:
    """Index of the earliest stop string in ``text``, or None."""
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


def _safe_prefix(text: str, stops: list[str]) -> int:
    """How much of ``text`` can be shown: hold back a trailing partial stop string or a
    half-decoded character (U+FFFD while a multi-byte character is incomplete)."""
    end = len(text.rstrip("\ufffd"))
    for s in stops:
        for k in range(min(len(s) - 1, end), 0, -1):
            if text[:end].endswith(s[:k]):
                end = min(end, len(text[:end]) - k)
                break
    return end
