"""Speed keys tunesmith decides per run when they are left at ``auto``.

``gradient_checkpointing: auto`` turns checkpointing on only when the run would not fit in
memory without it: the estimate (``tunesmith estimate``'s memory model) of the peak without
checkpointing is compared with the memory this machine has free (or the ``--gpu`` size an
estimate is asked for). Checkpointing recomputes every layer's forward in the backward pass, so
it costs about a third of a step; memory is the only reason to pay that. ``packing: auto`` is
decided per batch by the collator (``data/packing.py``); here it only gets its log line.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


HEADROOM = 0.85  # plan to use at most this share of the free memory (the rest: other processes,
# the allocator's slack, and the estimate's own error of up to ~30% on multi-turn data)


def choose_checkpointing(cfg: RunConfig, memory, budget_mb: float | None = None):
    """Decide ``gradient_checkpointing: auto`` from a memory estimate made without it.

    Args:
        cfg: the run config (the method may rule checkpointing out).
        memory: a ``MemoryEstimate`` computed with checkpointing off.
        budget_mb: memory to fit in (a GPU size); None reads what this machine has free.
    Returns:
        ``(memory as chosen, on, reason)``.
    """
    from ..hardware import available_memory_mb
    from ..methods import get_method

    if not get_method(cfg.method.method).gradient_checkpointing:
        return memory, False, f"off: method '{cfg.method.method}' cannot train with it"
    budget = budget_mb if budget_mb is not None else available_memory_mb()
    need, with_it = memory.peak_mb, memory.peak_if_ckpt_toggled_mb
    if budget is None:
        return memory, False, "off: free memory unknown on this machine"
    where = f"{budget:,.0f} MiB {'given' if budget_mb is not None else 'free'}"
    if need <= HEADROOM * budget:
        return memory, False, f"off: the estimated peak {need:,.0f} MiB fits in {where}"
    chosen = dataclasses.replace(memory, peak_mb=with_it, peak_if_ckpt_toggled_mb=need,
                                 checkpointing=True)
    return chosen, True, (f"on: the estimated peak without it, {need:,.0f} MiB, does not fit in "
                          f"{where} (with it: {with_it:,.0f} MiB)")


def resolve_speed_keys(cfg: RunConfig, examples, log, stage=None) -> bool:
    """Turn ``gradient_checkpointing: auto`` into true/false on ``cfg`` (in place) before the
    model is loaded, and log both automatic choices with the reason.

    Args:
        cfg: the run config; ``cfg.train.gradient_checkpointing`` becomes a bool.
        examples: the tokenized training rows (the largest batch drives the estimate).
        log: a ``print``-like function for the one-line notes.
        stage: the run's stage (the packing note is for stages that pad or pack their rows).
    Returns:
        True when checkpointing was decided here (training arguments must be rebuilt).
    """
    if cfg.data.packing == "auto" and _pads_or_packs(stage):
        log("packing: auto -> packs batches whose rows differ in length (padding-free, same "
            "loss); a batch of equal-length rows stays padded")
    if cfg.train.gradient_checkpointing != "auto":
        return False
    on, reason = _decide(cfg, examples)
    cfg.train.gradient_checkpointing = on
    log(f"gradient_checkpointing: auto -> {reason}")
    return True


def _decide(cfg, examples) -> tuple[bool, str]:
    from ..estimate import estimate_run  # the memory model (estimate/memory.py)

    if not examples:
        return False, "off: no training rows to estimate from"
    try:
        est = estimate_run(cfg, examples=examples)
    except Exception as exc:  # noqa: BLE001 - an estimate gap must not stop training
        return False, f"off: the memory estimate failed ({type(exc).__name__}: {exc})"
    return est.memory.checkpointing, est.checkpointing_choice


def _pads_or_packs(stage) -> bool:
    """The stage batches with the padding-or-packing collator that ``packing`` switches."""
    from .stages import Stage

    default = Stage.__dataclass_fields__["collator"].default
    return stage is None or stage.collator is default
