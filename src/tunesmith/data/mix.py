"""Several datasets as one row stream: ``mix_strategy`` with LLaMA-Factory's names and meanings.

- ``concat``: every row of the first dataset, then of the second, ...
- ``interleave_under``: alternate between datasets (round robin, or a seeded draw weighted by
  ``interleave_probs``) and stop as soon as one runs out (undersampling the longer ones;
  ``datasets.interleave_datasets(stopping_strategy="first_exhausted")``).
- ``interleave_over``: alternate the same way, start a dataset again when it runs out, and stop once
  every dataset has run out at least once (oversampling the shorter ones; ``all_exhausted``).

Rows are mixed before they are converted and tokenized, in the streaming and the in-memory paths
alike, so both train on the same rows in the same order.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator

STRATEGIES = ("concat", "interleave_under", "interleave_over")


def mix(openers: list[Callable[[], Iterator]], strategy: str = "concat",
        probs: list[float] | None = None, seed: int = 0) -> Iterator[tuple[int, object]]:
    """``(dataset index, row)`` pairs of several row streams mixed per ``strategy``.

    Args:
        openers: one callable per dataset returning a fresh iterator over its rows (called again
            when ``interleave_over`` starts a dataset over).
        strategy: one of :data:`STRATEGIES`.
        probs: drawing weights per dataset (interleave only); None: round robin.
        seed: seed of the weighted draw.
    Returns:
        An iterator; it ends per the strategy.
    """
    if strategy == "concat" or len(openers) == 1:
        return _concat(openers)
    return _interleave(openers, strategy == "interleave_over", probs, seed)


def _concat(openers) -> Iterator[tuple[int, object]]:
    for i, opener in enumerate(openers):
        for row in opener():
            yield i, row


def _interleave(openers, oversample: bool, probs, seed: int) -> Iterator[tuple[int, object]]:
    iters = [opener() for opener in openers]
    exhausted = [False] * len(openers)
    pick = _picker(len(openers), probs, seed)
    while True:
        i = pick()
        try:
            yield i, next(iters[i])
            continue
        except StopIteration:
            exhausted[i] = True
        if not oversample or all(exhausted):
            return
        iters[i] = openers[i]()  # start this dataset again (oversampling)
        try:
            yield i, next(iters[i])
        except StopIteration:  # an empty dataset cannot be oversampled
            return


def _picker(n: int, probs, seed: int) -> Callable[[], int]:
    """Round robin without ``probs``; else a seeded weighted draw."""
    if probs is None:
        counter = iter(range(1 << 62))
        return lambda: next(counter) % n
    rng = random.Random(seed)
    return lambda: rng.choices(range(n), weights=probs)[0]


def once_then(first: Iterator, reopen: Callable[[], Iterator]) -> Callable[[], Iterator]:
    """An opener that returns ``first`` (already opened) on its first call and ``reopen()`` after."""
    state = {"first": first}

    def opener() -> Iterator:
        it = state.pop("first", None)
        return it if it is not None else reopen()

    return opener
