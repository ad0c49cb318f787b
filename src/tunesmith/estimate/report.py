"""The estimate as text a person reads before starting a run."""

from __future__ import annotations


MODE_NAMES = {False: "off", "selective": "selective", True: "full"}


def _mb(x: float) -> str:
    return f"{x / 1024:.2f} GiB" if x >= 1024 else f"{x:.0f} MiB"


def format_estimate(est, timing: dict | None = None) -> str:
    p, m, d = est.params, est.memory, est.data
    where = f"GPU with {_mb(est.gpu_mb)}" if est.gpu_mb else est.device.upper()
    ckpt_on = m.checkpointing
    lines = [
        f"model      {est.model}  ({est.shapes.layers} layers, hidden {est.shapes.hidden}, "
        f"vocab {est.shapes.vocab}), weights in {est.dtype}",
        f"params     total {p.total:,}  trainable {p.trainable:,} "
        f"({100 * p.trainable / max(p.total, 1):.3f}%)",
        f"data       {d.rows} rows, {d.tokens:,} tokens ({d.label_tokens:,} labelled); "
        f"length p50 {d.p50} / p90 {d.p90} / max {d.p100}; largest batch {d.batch_tokens:,} tokens",
        f"steps      {est.steps}",
        *([f"precision  {est.precision}"] if est.precision else []),
        "",
        f"memory ({where})",
        f"  weights        {_mb(m.weights_mb)}",
        f"  gradients      {_mb(m.gradients_mb)}",
        f"  optimizer      {_mb(m.optimizer_mb)} (AdamW, 2 states)",
        f"  activations    {_mb(m.activations_mb)} without / {_mb(m.activations_selective_mb)} "
        f"selective / {_mb(m.activations_ckpt_mb)} full gradient checkpointing",
        f"  logits + loss  {_mb(m.logits_mb)}",
        f"  runtime        {_mb(m.overhead_mb)}",
        *([f"  while loading  {_mb(m.loading_mb)} (checkpoint file + converted weights)"]
          if m.loading_mb else []),
        f"  expected peak  {_mb(m.peak_mb)} (gradient checkpointing {MODE_NAMES[ckpt_on]}"
        f"{f', passes of at most {m.pass_tokens:,} tokens' if m.pass_tokens else ''}; "
        f"the whole batch in one pass: off {_mb(m.peak_off_mb)}, selective "
        f"{_mb(m.peak_selective_mb)}, full {_mb(m.peak_full_mb)})",
    ]
    if est.checkpointing_choice:
        lines.append(f"  gradient_checkpointing: auto -> {est.checkpointing_choice}")
    if est.gpu_mb:
        verdict = "fits" if m.peak_mb <= est.gpu_mb else "does NOT fit"
        lines.append(f"  {verdict} in {_mb(est.gpu_mb)}")
    if timing:
        lines += ["", f"time       {timing['tokens_per_s']:.0f} tokens/s measured over a few real "
                      f"steps: ~{timing['seconds_per_step']:.1f} s/step, ~{timing['total_s'] / 60:.1f} "
                      f"min for the run"]
    lines += [f"note       {n}" for n in est.notes]
    return "\n".join(lines)
