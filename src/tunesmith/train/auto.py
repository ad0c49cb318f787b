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


# On a CPU, W2's batch of 5 packed bins (832 tokens) without checkpointing: one bin per pass
# 50-56 s a step at 3.7 GiB peak RSS, two bins 55-58 s at 6.9 GiB, the whole batch 62-66 s at
# 7.6 GiB (AMD EPYC Zen 1, fp32, fused LoRA; docs/performance.md): the smallest passes win.
MIN_PASS_TOKENS = 512  # passes are not made smaller than this (whole rows): below it the
# per-pass overhead and the smaller products cost more than the memory saved is worth


def pass_sizes(cfg: RunConfig, tokens: int, width: int, stage=None) -> list[int]:
    """Tokens per forward/backward pass to consider for the largest batch (``tokens`` fed as
    rows, bins or pairs up to ``width`` tokens each), largest first.

    ``micro_batch_tokens: auto`` with ``gradient_checkpointing: auto`` (for stages whose batches
    can run in passes, ``Stage.passes``): the whole batch, then half its rows per pass, a
    quarter, ... down to one row, none under ``MIN_PASS_TOKENS``; a number: the passes it allows;
    0, or a stage whose batches run in one pass: the whole batch."""
    value = cfg.train.micro_batch_tokens
    width = max(1, min(width, tokens))
    if not splits(stage) or value == 0 or (
            value == "auto" and cfg.train.gradient_checkpointing != "auto"):
        return [tokens]
    if value != "auto":
        return [min(tokens, max(1, value // width) * width)]
    sizes, per = [tokens], max(1, tokens // width)
    while per > 1 and (per + 1) // 2 * width >= MIN_PASS_TOKENS:
        per = (per + 1) // 2
        sizes.append(per * width)
    return sizes


_ACT = {False: "activations_mb", "selective": "activations_selective_mb", True: "activations_ckpt_mb"}
_PEAK = {False: "peak_off_mb", "selective": "peak_selective_mb", True: "peak_full_mb"}


def _peak(memory, mode, size: int, tokens: int) -> tuple[float, float]:
    """(peak, activations) in MiB for passes of ``size`` of the batch's ``tokens`` tokens: the
    activations of one pass are live at a time."""
    whole_act = getattr(memory, _ACT[mode])
    act = whole_act * size / tokens
    return max(memory.loading_mb, getattr(memory, _PEAK[mode]) - whole_act + act), act


def peak_in_passes(memory, size: int, tokens: int):
    """``memory`` (as estimated for its checkpointing mode) with the batch run in passes of
    ``size`` tokens."""
    peak, _ = _peak(memory, memory.checkpointing, size, tokens)
    return dataclasses.replace(memory, peak_mb=peak, pass_tokens=size)


def choose_checkpointing(cfg: RunConfig, memory, budget_mb: float | None = None,
                         sizes: list[int] | None = None, tokens: int = 0, cpu: bool = False):
    """Decide ``gradient_checkpointing: auto`` (and the passes of ``micro_batch_tokens: auto``)
    from a memory estimate made without checkpointing, in one pass.

    Args:
        cfg: the run config (the method may rule checkpointing out).
        memory: a ``MemoryEstimate`` computed with checkpointing off.
        budget_mb: memory to fit in (a GPU size); None reads what this machine has free.
        sizes: pass sizes in tokens to consider, largest first (``pass_sizes``); None: the
            whole batch only.
        tokens: the largest batch's tokens (what ``memory`` was estimated for).
        cpu: training on this machine's CPU, where the smallest passes are as fast as one pass
            of the whole batch (measured, above ``MIN_PASS_TOKENS``): they are taken whenever
            there are any.
    Returns:
        ``(memory as chosen, mode, reason)``; mode is False, ``"selective"`` or True (full);
        the memory's ``pass_tokens`` is the pass size chosen (0: the whole batch).
    """
    from ..hardware import available_memory_mb
    from ..methods import get_method

    if not sizes or not tokens:  # the whole batch, in one pass
        sizes, tokens = [1], 1
    small = cpu and len(sizes) > 1
    if small:
        sizes = sizes[-1:]
    if not get_method(cfg.method.method).gradient_checkpointing:
        return memory, False, f"off: method '{cfg.method.method}' cannot train with it"
    budget = budget_mb if budget_mb is not None else available_memory_mb()
    if budget is None:
        return memory, False, "off: free memory unknown on this machine"
    where = f"{budget:,.0f} MiB {'given' if budget_mb is not None else 'free'}"
    fits = lambda peak: peak <= HEADROOM * budget  # noqa: E731
    plans = {mode: [(size, *_peak(memory, mode, size, tokens)) for size in sizes] for mode in _PEAK}

    def chosen(mode, size, peak):
        return dataclasses.replace(memory, peak_mb=peak, checkpointing=mode,
                                   pass_tokens=size if size < tokens else 0,
                                   peak_if_ckpt_toggled_mb=memory.peak_off_mb if mode is not False
                                   else memory.peak_full_mb)

    def passes(size):
        return f" in passes of at most {size:,} of the batch's {tokens:,} tokens" \
            if size < tokens else ""

    off = memory.peak_off_mb
    share = memory.activations_mb / max(off, 1.0)
    for size, peak, act in plans[False]:
        if small and fits(peak):
            return chosen(False, size, peak), False, (
                f"off: the estimated peak{passes(size)} {peak:,.0f} MiB fits in {where} (on a CPU "
                "passes this small are as fast as the whole batch at once, and only one pass's "
                "activations are in memory)")
        if fits(peak) and act / max(peak, 1.0) <= ACTIVATIONS_SHARE:
            return chosen(False, size, peak), False, (
                f"off: the estimated peak{passes(size)} {peak:,.0f} MiB fits in {where} and "
                f"activations are {act / max(peak, 1.0):.0%} of it")
    for size, peak, _ in plans["selective"]:
        if fits(peak):
            why = (f"activations are {share:.0%} of the {off:,.0f} MiB peak without it"
                   if fits(off) else f"the estimated peak without it, {off:,.0f} MiB, "
                   f"does not fit in {where}")
            return chosen("selective", size, peak), "selective", (
                f"selective: {why}; keeping only the products' outputs{passes(size)}: "
                f"{peak:,.0f} MiB")
    size, peak, _ = next(((s, p, a) for s, p, a in plans[True] if fits(p)), plans[True][-1])
    sel = memory.peak_selective_mb
    return chosen(True, size, peak), True, (
        f"full: the estimated peak without it, {off:,.0f} MiB, and with selective "
        f"checkpointing, {sel:,.0f} MiB, do not fit in {where} (full{passes(size)}: {peak:,.0f} MiB)")


def resolve_speed_keys(cfg: RunConfig, examples, log, stage=None) -> bool:
    """Turn ``gradient_checkpointing: auto`` into true/false/selective and ``micro_batch_tokens:
    auto`` into a number (0: one pass) on ``cfg`` (in place) before the model is loaded, and log
    each automatic choice with the reason.

    Args:
        cfg: the run config.
        examples: the tokenized training rows (the largest batch drives the estimate).
        log: a ``print``-like function for the one-line notes.
        stage: the run's stage (packing is for stages that pad or pack their rows, passes for
            those with ``Stage.passes``).
    Returns:
        True when checkpointing was decided here (training arguments must be rebuilt).
    """
    if cfg.data.packing == "auto" and pads_or_packs(stage):
        log("packing: auto -> packs batches whose rows differ in length (padding-free, same "
            "loss); a batch of equal-length rows stays padded")
    decided = cfg.train.gradient_checkpointing == "auto"
    passes = 0
    if decided:
        mode, reason, passes = _decide(cfg, examples)
        cfg.train.gradient_checkpointing = mode
        log(f"gradient_checkpointing: auto -> {reason}")
    if cfg.train.micro_batch_tokens == "auto":
        cfg.train.micro_batch_tokens = passes
        if splits(stage):
            log(f"micro_batch_tokens: auto -> {passes}: " + (
                "each batch runs in passes of whole rows (pairs) up to this many tokens (the same "
                "gradients, one pass's activations in memory)" if passes else
                "each batch runs in one pass"))
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


def _decide(cfg, examples) -> tuple[bool | str, str, int]:
    """(checkpointing mode, why, pass size in tokens or 0) from the run's memory estimate."""
    from ..estimate import estimate_run  # the memory model (estimate/memory.py)

    if not examples:
        return False, "off: no training rows to estimate from", 0
    try:
        est = estimate_run(cfg, examples=examples)
    except Exception as exc:  # noqa: BLE001 - an estimate gap must not stop training
        return False, f"off: the memory estimate failed ({type(exc).__name__}: {exc})", 0
    return est.memory.checkpointing, est.checkpointing_choice, est.memory.pass_tokens


def pads_or_packs(stage) -> bool:
    """The stage batches with the padding-or-packing collator that ``packing`` switches."""
    from .stages import Stage

    default = Stage.__dataclass_fields__["collator"].default
    return stage is None or stage.collator is default


def splits(stage) -> bool:
    """The stage's batches can run in passes (``Stage.passes``; None: SFT's)."""
    return stage is None or stage.passes
