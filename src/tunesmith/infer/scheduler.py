"""Request queue + continuous batching for serving: one worker thread owns the engine.

Design (chosen for a small CPU box, where a second model thread only fights for the same cores):

* ``submit`` puts :class:`~tunesmith.infer.batching.Job` s (prompt token ids + ``GenParams``) in a
  bounded queue, or raises :class:`Overloaded` / :class:`ShuttingDown` at once, so callers never
  hang.
* The worker keeps up to ``max_batch`` jobs in the engine's decoder (:class:`Batcher`). Before
  every decode step, waiting jobs take the free slots -- a finished or cancelled row's slot is
  refilled at once, whatever its neighbours' sampling settings (each row samples with its own
  rule and, when seeded, its own generator, so a seed gives the same text in any batch).
* A client that goes away sets ``Job.cancel``: the row is dropped before the next step.
* Only the :class:`~tunesmith.infer.engine.Engine` interface is used, so every backend (HF, vLLM,
  a test's fake) serves the same way.

Events reach the caller through ``Job.emit`` (thread-safe; the server wires it to an asyncio queue):
``("text", str, logprobs)``, ``("done", finish_reason)``, ``("error", message)``.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from .batching import Batcher, GenerationFailure, Job

__all__ = ["GenerationFailure", "Job", "Overloaded", "Scheduler", "ShuttingDown"]


class Overloaded(Exception):
    """Every slot and queue place is taken (HTTP 429)."""


class ShuttingDown(Exception):
    """The scheduler is draining for shutdown (HTTP 503)."""


class Scheduler:
    """A bounded queue in front of one worker thread that runs continuous batching.

    Args:
        engine: an :class:`~tunesmith.infer.engine.Engine`.
        max_batch: rows decoded together (the server's ``max_concurrency``).
        max_queue: jobs allowed to wait beyond the running rows.
    """

    def __init__(self, engine, max_batch: int = 8, max_queue: int = 64):
        self.engine = engine
        self.max_batch = max(1, int(max_batch))
        self.max_queue = max(0, int(max_queue))
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []
        self._cond = threading.Condition()
        self._draining = False
        self._stopped = False
        self.counters = {"served": 0, "cancelled": 0, "failed": 0, "steps": 0,
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
            live = sum(1 for j in self._running if not j.done)
            if live + len(self._waiting) + len(jobs) > self.max_batch + self.max_queue:
                raise Overloaded("too many requests in flight")
            self._waiting.extend(jobs)
            self._cond.notify_all()

    def stats(self) -> dict:
        """Slot and queue counts (``active``: rows still generating)."""
        with self._cond:
            active = sum(1 for j in self._running if not j.done)
            queued = sum(1 for j in self._waiting if not j.cancelled.is_set())
            return {"active": active, "queued": queued, "max_concurrency": self.max_batch,
                    "max_queue": self.max_queue, "draining": self._draining, **self.counters}

    def drain(self, timeout: float) -> bool:
        """Refuse new jobs, wait up to ``timeout`` s for queued and running ones; True if idle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._draining = True
            while self._waiting or any(not j.done for j in self._running):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        """Stop the worker after the current step (pending jobs get an error)."""
        with self._cond:
            self._draining = self._stopped = True
            for job in self._waiting:
                job.emit(("error", "the server is shutting down"))
            self._waiting.clear()
            self._cond.notify_all()

    # -- worker side ---------------------------------------------------------------------------
    def _loop(self) -> None:
        batcher = Batcher(self.engine, self.max_batch)
        while True:
            if not self._admit(batcher):
                return
            ended = batcher.step()
            self._record(batcher, ended)

    def _admit(self, batcher: Batcher) -> bool:
        """Move waiting jobs into free slots (waiting while there is nothing to do); False
        once the scheduler is stopped."""
        with self._cond:
            while not self._stopped:
                self._drop_cancelled()
                if self._waiting or batcher.live:
                    break
                self._cond.wait(0.5)
            if self._stopped:
                return False
            take = [self._waiting.popleft() for _ in range(min(batcher.free, len(self._waiting)))]
            self._running = [j for j in self._running if not j.done] + take
        batcher.admit(take)
        return True

    def _drop_cancelled(self) -> None:
        gone = [j for j in self._waiting if j.cancelled.is_set()]
        if gone:
            self.counters["cancelled"] += len(gone)
            self._waiting = deque(j for j in self._waiting if not j.cancelled.is_set())

    def _record(self, batcher: Batcher, ended: list[Job]) -> None:
        with self._cond:
            self.counters["steps"] += 1
            for job in ended:
                reason = job.finish_reason
                key = {"cancelled": "cancelled", "error": "failed"}.get(reason, "served")
                self.counters[key] += 1
                if reason == "cancelled" and job.cancelled_at is not None:
                    latency = job.finished_at - job.cancelled_at  # client gone -> row stopped
                    self.counters["cancel_latency_max_s"] = max(
                        self.counters["cancel_latency_max_s"], round(latency, 4))
            self._running = list(batcher.live)
            self._cond.notify_all()
