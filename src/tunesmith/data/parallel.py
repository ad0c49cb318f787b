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
from typing import TYPE_CHECKING, Iterator

from .conversation import RowError

if TYPE_CHECKING:
    from ..config import DataConfig


_WORKER: dict = {}  # tokenizer, template and settings of this worker process (set before fork)


def _encode(batch: list) -> list:
    """Worker side: encode one batch; a RowError travels back as (reason, message, key)."""
    from .load import encode_for_kind

    w = _WORKER
    out = encode_for_kind(batch, w["tokenizer"], w["template"], w["data_cfg"], w["kind"])
    return [("__row_error__", r.reason, str(r), r.key) if isinstance(r, RowError) else r for r in out]


def _restore(results: list) -> list:
    return [RowError(r[1], r[2], r[3]) if isinstance(r, tuple) and r and r[0] == "__row_error__"
            else r for r in results]


def encode_batches(batches: Iterator[list], tokenizer, template, data_cfg: DataConfig,
                   kind: str = "chat") -> Iterator[tuple[list, list]]:
    """``(batch, results)`` for each batch of conversations (or preference records), in order.

    Args:
        batches: lists of conversations.
        data_cfg: the data config (``train_on``, ``cutoff_len``, ``preprocessing_num_workers``:
            the number of processes; 1 or a platform without fork encodes here).
        kind: the stage's data kind.
    Returns:
        An iterator of each batch with ``load.encode_for_kind``'s results for it.
    """
    from .load import encode_for_kind

    workers = getattr(data_cfg, "preprocessing_num_workers", None) or 1
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for batch in batches:
            yield batch, encode_for_kind(batch, tokenizer, template, data_cfg, kind)
        return
    _WORKER.update(tokenizer=tokenizer, template=template, data_cfg=data_cfg, kind=kind)
    try:
        yield from _pooled(batches, workers)
    finally:
        _WORKER.clear()


def _pooled(batches, workers):
    # the fast tokenizer's own thread pool must not be used in forked children
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    ctx = multiprocessing.get_context("fork")
    pending: deque = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for batch in batches:
            pending.append((batch, pool.submit(_encode, batch)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, _restore(future.result())
        while pending:
            done, future = pending.popleft()
            yield done, _restore(future.result())
