"""Speed keys tunesmith decides per run when they are left at ``auto``.

``gradient_checkpointing: auto`` picks one of three modes from the estimate (``tunesmith
estimate``'s memory model) of the peak in each, against the memory this machine has free (or the
``--gpu`` size an estimate is asked for):
- off, when it fits and the activations are at most ``ACTIVATIONS_SHARE`` of that peak: there is
  little for checkpointing to save;
- selective (model/checkpointing.py), when the activations are most of the peak, or when only
  checkpointing makes it fit: it keeps the products' outputs and recomputes the element-wise work,
  about 45% less activation memory for about 6% of the speed (docs/performance.md);
- full, when selective does not fit either: it recomputes every layer's forward in the backward
  pass (about a third of a step), so memory is the only reason to pay for it.
``cpu_allocator: auto`` follows that choice: ``lean`` (model/allocator.py) when checkpointing is on.
``packing: auto`` is decided per batch by the collator (``data/packing.py``); here it only gets
its log line.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig


HEADROOM = 0.85  # plan to use at most this share of the free memory (the rest: other processes,
# the allocator's slack, and the estimate's own error of up to ~30% on multi-turn data)


ACTIVATIONS_SHARE = 0.5  # above this share of the peak, activations are worth 6% to halve


def choose_checkpointing(cfg: RunConfig, memory, budget_mb: float | None = None):
    """Decide ``gradient_checkpointing: auto`` from a memory estimate made without it.

    Args:
        cfg: the run config (the method may rule checkpointing out).
        memory: a ``MemoryEstimate`` computed with checkpointing off.
        budget_mb: memory to fit in (a GPU size); None reads what this machine has free.
    Returns:
        ``(memory as chosen, mode, reason)``; mode is False, ``"selective"`` or True (full).
    """
    from ..hardware import available_memory_mb
    from ..methods import get_method

    if not get_method(cfg.method.method).gradient_checkpointing:
        return memory, False, f"off: method '{cfg.method.method}' cannot train with it"
    budget = budget_mb if budget_mb is not None else available_memory_mb()
    off, sel, full = memory.peak_off_mb, memory.peak_selective_mb, memory.peak_full_mb
    if budget is None:
        return memory, False, "off: free memory unknown on this machine"
    where = f"{budget:,.0f} MiB {'given' if budget_mb is not None else 'free'}"
    share = memory.activations_mb / max(off, 1.0)
    if off <= HEADROOM * budget and share <= ACTIVATIONS_SHARE:
        return memory, False, (f"off: the estimated peak {off:,.0f} MiB fits in {where} and "
                               f"activations are {share:.0%} of it")
    if sel <= HEADROOM * budget:
        why = (f"activations are {share:.0%} of the {off:,.0f} MiB peak without it"
               if off <= HEADROOM * budget else f"the estimated peak without it, {off:,.0f} MiB, "
               f"does not fit in {where}")
        return (dataclasses.replace(memory, peak_mb=sel, peak_if_ckpt_toggled_mb=off,
                                    checkpointing="selective"), "selective",
                f"selective: {why}; keeping only the products' outputs: {sel:,.0f} MiB")
    chosen = dataclasses.replace(memory, peak_mb=full, peak_if_ckpt_toggled_mb=off,
                                 checkpointing=True)
    return chosen, True, (f"full: the estimated peak without it, {off:,.0f} MiB, and with "
                          f"selective checkpointing, {sel:,.0f} MiB, do not fit in {where} "
                          f"(full: {full:,.0f} MiB)")


def resolve_speed_keys(cfg: RunConfig, examples, log, stage=None) -> bool:
    """Turn ``gradient_checkpointing: auto`` into true/false on ``cfg`` (in place) before the
    model is loaded, and log both automatic choices with the reason.

    Args:
        cfg: the run config; ``cfg.train.gradient_checkpointing`` becomes False, True or
            ``"selective"``.
        examples: the tokenized training rows (the largest batch drives the estimate).
        log: a ``print``-like function for the one-line notes.
        stage: the run's stage (the packing note is for stages that pad or pack their rows).
    Returns:
        True when checkpointing was decided here (training arguments must be rebuilt).
    """
    if cfg.data.packing == "auto" and _pads_or_packs(stage):
        log("packing: auto -> packs batches whose rows differ in length (padding-free, same "
            "loss); a batch of equal-length rows stays padded")
    decided = cfg.train.gradient_checkpointing == "auto"
    if decided:
        mode, reason = _decide(cfg, examples)
        cfg.train.gradient_checkpointing = mode
        log(f"gradient_checkpointing: auto -> {reason}")
    apply_cpu_allocator(cfg, log)
    return decided


def apply_cpu_allocator(cfg: RunConfig, log) -> str:
    """Resolve ``cpu_allocator`` (after the checkpointing choice: ``auto`` follows it) and put it
    into effect for this process before the model is loaded; returns the mode."""
    from ..hardware import detect
    from ..model import allocator

    mode, why = allocator.resolve(cfg.train.cpu_allocator, detect().device,
                                  cfg.train.gradient_checkpointing)
    if cfg.train.cpu_allocator == "auto":
        log(f"cpu_allocator: auto -> {mode}: {why}")
    problem = allocator.apply(mode)
    if problem:
        log(problem)
    return mode


def _decide(cfg, examples) -> tuple[bool | str, str]:
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
