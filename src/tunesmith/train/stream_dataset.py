"""Training from a stream (``streaming: true``) for any stage, with exact resume.

:class:`StreamDataset` is a torch IterableDataset over ``data/stream.py``'s TokenStream; it yields
the same ``{"input_ids", "labels"}`` rows as ``ExampleDataset`` plus the example's stream position.
The HF Trainer runs an unsized dataset for ``max_steps`` as one long "epoch", and on resume it
would skip the trained batches by pulling them through the whole pipeline again (and, across the
stream's passes, miscount them). So tunesmith does the skipping itself:

- :class:`PositionCollator` takes the positions off each batch (the model never sees them) and
  queues the batch's last one;
- :class:`StreamPosition` (a callback) pops ``gradient_accumulation_steps`` entries per optimizer
  step, takes the furthest over all ranks and tells the stream those rows are done; its ``state``
  (position + the data report at that row) is saved by the Trainer in every checkpoint's
  ``trainer_state.json``, inside the atomic checkpoint;
- on resume :func:`resume_stream` reads it back and the stream starts right after it, while the
  Trainer is told not to skip anything (``ignore_data_skip``).

Under DDP/FSDP every rank reads the whole stream and accelerate's ``IterableDatasetShard`` hands
each its own slice of every global batch (``dispatch_batches`` is off: batches of different
lengths cannot be concatenated for dispatching).
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import torch
from torch.utils.data import IterableDataset
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from .distributed import is_main_process

_SUB_BITS = 20  # a position travels between ranks as (row << 20) + sub + 1


class StreamDataset(IterableDataset):
    """The examples of a TokenStream as Trainer rows, each with its ``stream_pos``."""

    def __init__(self, stream):
        self.stream = stream

    def __iter__(self):
        for ex, row, sub in self.stream:
            yield {"input_ids": ex.input_ids, "labels": ex.labels, "stream_pos": (row, sub)}


class PositionCollator:
    """Wraps a stage's collator: strips ``stream_pos`` and queues each batch's last position."""

    def __init__(self, inner, queue: deque):
        self.inner, self.queue = inner, queue

    def __call__(self, features: list[dict]):
        positions = [f.pop("stream_pos") for f in features if "stream_pos" in f]
        if positions:  # evaluation batches (in-memory examples) carry none
            self.queue.append(max(positions))
        return self.inner(features)


def _all_ranks_max(row: int, sub: int) -> tuple[int, int]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return row, sub
    value = torch.tensor([(row << _SUB_BITS) + sub + 1], dtype=torch.long)
    if dist.get_backend() == "nccl":
        value = value.cuda()
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    packed = int(value.item())
    return packed >> _SUB_BITS, (packed & ((1 << _SUB_BITS) - 1)) - 1


class StreamPosition(TrainerCallback, ExportableState):
    """Tracks the last example of every optimizer step; checkpointed with the data report."""

    def __init__(self, stream=None, queue: deque | None = None, output_dir: str | None = None):
        self.stream, self.queue, self.output_dir = stream, queue, output_dir
        self.row, self.sub = stream.start.row, stream.start.sub

    def on_step_end(self, args, state, control, **kwargs):
        taken = [self.queue.popleft() for _ in range(args.gradient_accumulation_steps) if self.queue]
        if taken:
            self.row, self.sub = max(taken)
        self.row, self.sub = _all_ranks_max(self.row, self.sub)
        self.stream.report.consumed(self.row)

    def report(self):
        return self.stream.report.at(self.row)

    def state(self) -> dict:
        return {"args": {}, "attributes": {"row": self.row, "sub": self.sub,
                                           "report": self.report().to_dict()}}

    def on_log(self, args, state, control, **kwargs):
        self._write_report()

    def on_train_end(self, args, state, control, **kwargs):
        self._write_report()

    def _write_report(self) -> None:
        if self.output_dir and is_main_process():
            self.report().save(self.output_dir)


def stream_parts(data, collator, output_dir: str):
    """``(train dataset, collator, callback)`` for a streaming run's Trainer."""
    queue: deque = deque()
    callback = StreamPosition(data.train, queue, output_dir)
    return StreamDataset(data.train), PositionCollator(collator, queue), callback


def resume_stream(stream, checkpoint: Path) -> tuple[int, int] | None:
    """Start ``stream`` after the position saved in ``checkpoint`` (None: it has none)."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    saved = (state.get("stateful_callbacks") or {}).get(StreamPosition.__name__)
    if not saved:
        return None
    attrs = saved["attributes"]
    stream.resume_from(attrs["row"], attrs["sub"], attrs.get("report"))
    return attrs["row"], attrs["sub"]
