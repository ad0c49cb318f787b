"""``preprocessing_num_workers``: render and tokenize batches of conversations in worker processes.

Reading and converting rows stays in the calling process (it is cheap and keeps drop counting in
one place); the costly part, rendering with the Jinja template and the tokenizer call, runs in a
pool of forked processes that inherit the tokenizer and template. At most ``2 x workers`` batches
are in flight, so memory does not grow with the dataset, and results come back in submission
order, so the examples are exactly those one process makes (tests/unit/data/test_scale_data.py).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator

from .conversation import RowError
from .tokenize import encode_batch

_WORKER: dict = {}  # tokenizer, template and settings of this worker process (set before fork)


def _encode(batch: list) -> list:
    """Worker side: encode one batch; a RowError travels back as (reason, message, key)."""
    w = _WORKER
    out = encode_batch(batch, w["tokenizer"], w["template"], train_on=w["train_on"],
                       cutoff_len=w["cutoff_len"])
    return [("__row_error__", r.reason, str(r), r.key) if isinstance(r, RowError) else r for r in out]


def _restore(results: list) -> list:
    return [RowError(r[1], r[2], r[3]) if isinstance(r, tuple) and r and r[0] == "__row_error__"
            else r for r in results]


def encode_batches(batches: Iterator[list], tokenizer, template, train_on: str, cutoff_len: int,
                   workers: int = 1) -> Iterator[tuple[list, list]]:
    """``(batch, results)`` for each batch of conversations, in order.

    Args:
        batches: lists of conversations.
        workers: processes; 1 (or a platform without fork) encodes here.
    Returns:
        An iterator of each batch with :func:`tokenize.encode_batch`'s results for it.
    """
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for batch in batches:
            yield batch, encode_batch(batch, tokenizer, template, train_on=train_on,
                                      cutoff_len=cutoff_len)
        return
    yield from _pooled(batches, workers, tokenizer, template, train_on, cutoff_len)


def _pooled(batches, workers, tokenizer, template, train_on, cutoff_len):
    _WORKER.update(tokenizer=tokenizer, template=template, train_on=train_on, cutoff_len=cutoff_len)
    # the fast tokenizer's own thread pool must not be used in forked children
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    ctx = multiprocessing.get_context("fork")
    pending: deque = deque()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for batch in batches:
                pending.append((batch, pool.submit(_encode, batch)))
                if len(pending) >= 2 * workers:
                    done, future = pending.popleft()
                    yield done, _restore(future.result())
            while pending:
                done, future = pending.popleft()
                yield done, _restore(future.result())
    finally:
        _WORKER.clear()
