"""``tunesmith estimate``: parameters, memory and time before training.

The model is built on the meta device from its config (no weights read), the configured method
is applied to count trainable parameters, the data is tokenized to get the batch that will need
the most memory, and :mod:`.memory` turns those into MiB. ``calibrate`` times a few real steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .memory import (MIB, MemoryEstimate, ParamCounts, Shapes, estimate_memory, kbit_bytes,
                     model_shapes)

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class DataShape:
    rows: int
    tokens: int
    label_tokens: int
    p50: int
    p90: int
    p100: int
    batch_tokens: int  # tokens in the largest micro-batch as it is fed (padded or packed)
    batch_labels: int
    longest: int  # the longest row (for pairs: the longest pair, its prompt once)


@dataclass
class Estimate:
    model: str
    dtype: str
    device: str
    params: ParamCounts
    shapes: Shapes
    data: DataShape
    memory: MemoryEstimate
    steps: int
    gpu_mb: float | None = None
    seconds_per_step: float | None = None
    notes: list[str] = field(default_factory=list)
    checkpointing_choice: str | None = None  # why ``gradient_checkpointing: auto`` chose on/off
    precision: str = ""  # mixed precision and attention kernel, as training will choose them


def count_params(cfg: RunConfig, path, dtype: str) -> tuple[ParamCounts, Shapes]:
    """Total and trainable parameters of the configured method, on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..methods import method_params

    config = AutoConfig.from_pretrained(str(path), trust_remote_code=cfg.model.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    method, params = method_params(cfg)
    model = method.apply(model, params, cfg)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    full = trainable > 0.5 * total  # full/freeze train the base weights in the base dtype
    per = 4 if (dtype == "fp32" or not full) else 2
    from ..train.fast_loss import fusable_head

    head = model.get_output_embeddings()
    counts = ParamCounts(total, trainable, dtype, per, fusable_head(head))
    if cfg.model.quantization_bit:
        counts.quantized = quantized_params(model, head)
        counts.quantized_bytes = kbit_bytes(cfg.model.quantization_bit,
                                            cfg.model.double_quantization)
    shapes = model_shapes(config)
    if getattr(cfg.train, "fused_mlp", False) and not cfg.model.quantization_bit:
        from ..model.fused_mlp import is_swiglu

        shapes.fused_swiglu = any(is_swiglu(m) for m in model.modules())
    return counts, shapes


def quantized_params(model, head) -> int:
    """Frozen weights bitsandbytes stores in k-bit: every linear layer's but the output head's
    (embeddings and norms stay in the compute dtype)."""
    import torch

    return sum(m.weight.numel() for m in model.modules()
               if isinstance(m, torch.nn.Linear) and m is not head and not m.weight.requires_grad)


def _fed_tokens(rows: list[tuple[int, int]], packing) -> int:
    """Token slots the collator feeds for these rows: their sum when packed (``packing: auto``
    packs only where that saves work), else the padded batch."""
    from ..data.packing import AUTO_MAX_SHARE, packing_mode, plan_bins

    mode, lengths = packing_mode(packing), [x for x, _ in rows]
    share = AUTO_MAX_SHARE if mode == "auto" else 1.0
    if mode != "off" and plan_bins(lengths, max_share=share) is not None:
        return sum(lengths)
    return max(lengths) * len(lengths)


def largest_batch(lengths: list[tuple[int, int]], b: int, packing,
                  sequential: bool) -> tuple[int, int, int]:
    """(tokens as fed, labelled tokens, longest row) of the micro-batch that needs the most
    memory: over the real batches for a sequential sampler, else the ``b`` longest rows (the
    worst a shuffled epoch can draw). ``packing``: true, false or ``auto``."""
    fed = lambda rows: _fed_tokens(rows, packing)  # noqa: E731
    if sequential:
        batches = [lengths[i:i + b] for i in range(0, len(lengths), b)]
    else:
        batches = [sorted(lengths)[-b:]]
    worst = max(batches, key=fed)
    return fed(worst), sum(y for _, y in worst), max(x for x, _ in worst)


def _pair_units(examples, rows) -> list[tuple[int, int]]:
    """(tokens, labelled tokens) per pair, as a packed preference batch feeds it: one segment,
    the prompt its sides share computed once (data/pair_collate.py; virtual-token methods pad
    each side instead). The reference pass keeps no activations."""
    from ..data.pair_collate import pair_tokens

    return [(pair_tokens(c.input_ids, c.labels, r.input_ids, r.labels), yc + yr)
            for c, r, (_, yc), (_, yr) in zip(examples[::2], examples[1::2], rows[::2], rows[1::2])]


def data_shape(cfg: RunConfig, tokenizer=None, template=None, examples=None) -> DataShape:
    """Length percentiles and the largest micro-batch (padded, or packed per ``packing``) of
    ``examples``, or of the config's training data (tokenized with ``tokenizer``/``template``)."""
    from ..train.stages import get_stage
    from ..train.stages._pref import packs

    kind = get_stage(cfg.method.stage).data_kind
    if examples is None and cfg.data.streaming:  # a stream may not fit in memory: a sample of it
        from ..data.stream import TokenStream

        examples = TokenStream(cfg, tokenizer, template, kind).sample(2048)
    if examples is None:
        from ..data.load import load_data

        examples = load_data(cfg, tokenizer, template, kind=kind).train
    rows = [(len(e.input_ids), sum(x != -100 for x in e.labels)) for e in examples]
    lengths = sorted(rows)
    per_item = 2 if kind == "pairs" else 1
    n, b = len(lengths), cfg.train.per_device_train_batch_size
    sequential = cfg.train.trainer_args.get("train_sampling_strategy") == "sequential"
    units, packing = rows, True if kind == "unpaired" else cfg.data.packing
    if kind == "pairs":  # pair segments packed, or (virtual tokens) each side padded
        units, b, packing = ((_pair_units(examples, rows), b, True) if packs(cfg)
                             else (rows, 2 * b, False))
    batch_tokens, batch_labels, longest = largest_batch(units, b, packing, sequential)
    pick = lambda q: lengths[min(n - 1, int(q * n))][0]  # noqa: E731
    return DataShape(n // per_item, sum(x for x, _ in lengths), sum(y for _, y in lengths),
                     pick(0.5), pick(0.9), lengths[-1][0], batch_tokens, batch_labels, longest)


def _without_auto(cfg):
    """The config with ``gradient_checkpointing: auto`` read as off (methods apply to a meta
    model before the choice is made)."""
    import dataclasses

    if cfg.train.gradient_checkpointing != "auto":
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, gradient_checkpointing=False))


def _mode(value) -> bool | str:
    """A ``gradient_checkpointing`` value as the memory model takes it (``auto``: off)."""
    from ..model.checkpointing import FULL, checkpoint_mode

    mode = checkpoint_mode(value)
    return True if mode == FULL else (mode or False)


def describe_precision(cfg: RunConfig, weights: str, compute: str | None) -> str:
    """``weights bf16, bf16 autocast, attention sdpa``: what training will choose (GPU rules
    when ``compute`` is set; the CPU's otherwise), as ``tunesmith env`` shows it."""
    from ..model.load import attn_implementation, gpu_attention

    if compute is None:
        name = cfg.model.attn_implementation
        attention = "hybrid" if name in ("auto", "hybrid") else name
        return f"weights {weights} on CPU, attention {attention}"
    kbit = f" (base in {cfg.model.quantization_bit}-bit, computes in {compute})" \
        if cfg.model.quantization_bit else ""
    scaling = " with loss scaling" if compute == "fp16" else ""
    attention = (gpu_attention(weights) if cfg.model.attn_implementation == "auto"
                 else attn_implementation(cfg.model.attn_implementation))
    return f"weights {weights}{kbit}, {compute} autocast{scaling}, attention {attention}"


def steps_of(cfg: RunConfig, rows: int) -> int:
    t = cfg.train
    if t.max_steps and t.max_steps > 0:
        return t.max_steps
    per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps
    return int(-(-rows // per_step) * t.num_train_epochs)


def checkpoint_file_mb(path) -> float:
    from pathlib import Path

    return sum(p.stat().st_size for p in Path(path).glob("*.safetensors")) / MIB


def estimate_run(cfg: RunConfig, gpu_mb: float | None = None, examples=None) -> Estimate:
    """The full estimate for a run config (no calibration; see :func:`calibrate`).

    Args:
        cfg: the run config (``gradient_checkpointing: auto`` is estimated as the run decides it).
        gpu_mb: estimate for a GPU with this much memory instead of this machine.
        examples: the tokenized training rows when the caller has them (else they are loaded).
    """
    from ..hardware import detect
    from ..model.load import resolve_model_path
    from ..train.arguments import gpu_compute_dtype, training_dtype
    from ..train.stages import tokenizer_and_template

    path = resolve_model_path(cfg.model.model_name_or_path, model_cfg=cfg.model)
    gpu = bool(gpu_mb) or detect().device == "cuda"
    dtype = training_dtype(cfg, device="cuda" if gpu else None)
    compute = gpu_compute_dtype(cfg, None if detect().device == "cuda" else True) if gpu else None
    counts, shapes = count_params(_without_auto(cfg), path, dtype)
    if examples is None:
        tokenizer, template = tokenizer_and_template(cfg, quiet=True)
        data = data_shape(cfg, tokenizer, template)
    else:
        data = data_shape(cfg, examples=examples)
    device = "gpu" if gpu_mb else detect().device
    fast = getattr(cfg.train, "fast_loss", False)
    from ..train.fast_loss import auto_chunk

    fused = auto_chunk(shapes.vocab) if fast and counts.head_fusable else None
    memory = estimate_memory(counts, shapes, tokens=data.batch_tokens, longest=data.longest,
                             logit_positions=data.batch_labels if fast else data.batch_tokens,
                             ckpt=_mode(cfg.train.gradient_checkpointing),
                             file_mb=checkpoint_file_mb(path), device="cpu" if device == "cpu" else "gpu",
                             fused_chunk=fused, compute_dtype=compute)
    from ..train.auto import choose_checkpointing, pass_sizes, peak_in_passes
    from ..train.stages import get_stage

    choice = None
    stage = get_stage(cfg.method.stage)
    sizes = pass_sizes(cfg, data.batch_tokens, data.longest, stage)  # longest row, bin or pair
    if cfg.train.gradient_checkpointing == "auto":
        memory, _, choice = choose_checkpointing(cfg, memory, gpu_mb, sizes, data.batch_tokens,
                                                cpu=device == "cpu")
    elif sizes[0] < data.batch_tokens:  # micro_batch_tokens set: one pass's activations at a time
        memory = peak_in_passes(memory, sizes[0], data.batch_tokens)
    est = Estimate(str(cfg.model.model_name_or_path), dtype, device, counts, shapes, data, memory,
                   steps_of(cfg, data.rows), gpu_mb, checkpointing_choice=choice,
                   precision=describe_precision(cfg, dtype, compute))
    if gpu_mb and memory.peak_mb > gpu_mb:
        est.notes.append(f"does not fit in {gpu_mb / 1024:.0f} GiB: lower the batch, shorten "
                         "cutoff_len, turn on gradient_checkpointing or use qlora")
    return est
