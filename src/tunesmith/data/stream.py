"""``streaming: true``: an endless stream of tokenized examples, nothing held but a buffer.

Per pass over the data: the datasets are opened, mixed (``mix_strategy``, mix.py), shuffled in a
buffer of ``buffer_size`` rows (seeded by ``seed + pass``), then converted and tokenized in chunks
of :data:`CHUNK` rows (in ``preprocessing_num_workers`` processes when set). Packing happens in the
collator as without streaming. Every row of the shuffled stream has a global index that keeps
counting across passes; every example leaves with its position ``(row, sub)`` (``sub``: the
example's index within its row, several with ``split_turns``).

Exact resume: the trainer records the position of the last example of every optimizer step
(train/stream_dataset.py) and saves it in the checkpoint with the data report as it stood at that
row. A resumed stream replays the mixing and the shuffle buffer from the start, reading but not
converting or tokenizing the rows before that position, then continues with the very next example.

``val_size`` (a row count) holds out the first rows of the mixed stream, before shuffling, for
evaluation; they never reach training. Bad rows are counted as they stream by (the report is a
:class:`StreamReport`); ``max_drop_ratio`` and ``strict`` are checked once :data:`CHECK_AFTER`
rows were read and at the end of every pass.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import count, islice
from typing import TYPE_CHECKING, Iterator

from ..digest import hash_file_sample
from ..errors import ConfigError, DataError
from .load import (LoadedData, _dataset_files, _kind_fits, _mix_seed, _think, convert,
                   count_encoded, mixed_rows, open_sources, tokenize_all)
from .report import DataReport
from .templates import Template
from .tokenize import Example

if TYPE_CHECKING:
    from ..config import RunConfig


CHUNK = 64  # rows per tokenizer call
CHECK_AFTER = 1000  # rows read before the drop ratio is first checked
_RECENT = 1 << 16  # per-row counts kept to cut the report back to the trained position


PASS_END = object()  # marks the end of a pass in the row stream


def _chunks(items: Iterator, size: int, ends: deque) -> Iterator[list]:
    """Lists of up to ``size`` items, cut at every PASS_END; ``ends`` gets, per list, whether a
    pass ended with it (its drop ratio is then checked once the list is tokenized)."""
    batch: list = []
    for item in items:
        if item is PASS_END or len(batch) == size:
            if batch or item is PASS_END:
                ends.append(item is PASS_END)
                yield batch
            batch = []
            if item is PASS_END:
                continue
        batch.append(item)


def check_streaming(cfg: RunConfig, kind: str = "chat") -> None:
    """The rules a streaming run must meet, checked before anything loads (ConfigError)."""
    d, t = cfg.data, cfg.train
    if kind not in ("chat", "text"):
        raise ConfigError(f"streaming: true trains the sft and pt stages; stage "
                          f"'{cfg.method.stage}' reads its {kind} data in memory (streaming: false)")
    if t.max_steps <= 0:
        raise ConfigError("streaming: true needs max_steps (a stream has no length to count "
                          "epochs in); set max_steps, e.g. max_steps=1000")
    if d.val_size and d.val_size < 1:
        raise ConfigError(f"streaming: true needs val_size as a row count (the first rows are "
                          f"held out), got the fraction {d.val_size}; e.g. val_size=200")
    if t.dataloader_num_workers:
        raise ConfigError("streaming: true reads in the training process: set "
                          "dataloader_num_workers=0 (preprocessing_num_workers tokenizes in parallel)")


class StreamReport:
    """A DataReport filled as rows stream by, which can be cut back to the rows trained on.

    Rows read ahead of training (a tokenized chunk, batches the loader fetched early) are counted
    in ``live`` at once; each also leaves a record here until training passes it, so
    :meth:`at` can take them out again.
    """

    def __init__(self, report: DataReport | None = None):
        self.live = report or DataReport()
        self.recent: OrderedDict = OrderedDict()  # row -> [drop reason, kept, samples, truncated]

    def row(self, index: int, reason: str | None = None) -> None:
        """Row ``index`` was read (and dropped for ``reason``, if given)."""
        self.recent[index] = [reason, False, 0, 0]
        if len(self.recent) > _RECENT:
            self.recent.popitem(last=False)

    def kept(self, index: int, samples: int, truncated: int) -> None:
        if index in self.recent:
            self.recent[index][1:] = [True, samples, truncated]

    def dropped(self, index: int, reason: str) -> None:
        if index in self.recent:
            self.recent[index][0] = reason

    def consumed(self, row: int) -> None:
        """Rows up to ``row`` were trained on: their counts are final."""
        while self.recent and next(iter(self.recent)) <= row:
            self.recent.popitem(last=False)

    def at(self, row: int) -> DataReport:
        """The report as it stood when row ``row`` was the last one trained on."""
        snap = DataReport.from_dict(self.live.to_dict())
        for index, (reason, kept, samples, truncated) in self.recent.items():
            if index <= row:
                continue
            snap.total -= 1
            if reason:
                snap.dropped[reason] -= 1
            elif kept:
                snap.kept, snap.samples, snap.truncated = (snap.kept - 1, snap.samples - samples,
                                                           snap.truncated - truncated)
        snap.dropped = +snap.dropped  # drop reasons that went to zero
        return snap


def shuffled(items: Iterator, size: int, rng: random.Random) -> Iterator:
    """``items`` shuffled within a buffer of ``size`` (as ``datasets``' streaming shuffle)."""
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = rng.randrange(size)
        buffer[i], item = item, buffer[i]
        yield item
    rng.shuffle(buffer)
    yield from buffer


@dataclass
class Position:
    """The last example trained on: row ``row`` of the stream, its example ``sub``."""
    row: int = -1
    sub: int = -1


class TokenStream:
    """The endless example stream of a config's training datasets (see the module docstring).

    Args:
        cfg: the run config (data keys, seed, cutoff).
        tokenizer, template: as for :func:`load.tokenize_all`.
        kind: the stage's data kind.
    """

    def __init__(self, cfg, tokenizer, template: Template | None, kind: str = "chat"):
        self.cfg, self.tokenizer, self.template, self.kind = cfg, tokenizer, template, kind
        self.report = StreamReport()
        self.start = Position()
        self.holdout = int(cfg.data.val_size) if cfg.data.val_size >= 1 else 0
        self._checked = False
        # open every dataset once now: a missing file or an unreadable format stops the run
        # before the model loads, and the report lists the sources
        open_sources(cfg.data, cfg.data.dataset, self.report.live, _think(template), kind)

    # --- resume -----------------------------------------------------------------------------
    def resume_from(self, row: int, sub: int, report: dict | None) -> None:
        """Continue after example ``sub`` of row ``row``, with the report saved with it."""
        self.start = Position(row, sub)
        sources = self.report.live.sources
        self.report = StreamReport(DataReport.from_dict(report) if report else None)
        self.report.live.sources = sources

    # --- rows -------------------------------------------------------------------------------
    def _pass_rows(self, n: int) -> Iterator[tuple]:
        """Pass ``n``: ``(source, origin, row)`` mixed, without the held-out rows, shuffled."""
        d = self.cfg.data
        sources = open_sources(d, d.dataset, DataReport(), _think(self.template), self.kind)
        # the same mix every pass (so the held-out first rows are the same rows); a new shuffle
        rows = islice(mixed_rows(sources, d, _mix_seed(self.cfg)), self.holdout, None)
        seed = _mix_seed(self.cfg) + n
        return ((sources[i], origin, row) for i, (origin, row) in
                shuffled(rows, d.buffer_size, random.Random(seed)))

    def rows(self) -> Iterator[tuple]:
        """``(index, source, origin, row)`` pass after pass, forever; ``PASS_END`` after each pass
        (an empty pass is an error)."""
        index = 0
        for n in count():
            before = index
            for source, origin, row in self._pass_rows(n):
                yield index, source, origin, row
                index += 1
            if index == before:
                raise DataError(f"dataset is empty: no rows to train on in "
                                f"{', '.join(self.report.live.sources) or 'no dataset'}")
            yield PASS_END

    # --- examples ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[Example, int, int]]:
        """``(example, row, sub)`` after the start position, forever."""
        from .parallel import encode_batches

        d, ends = self.cfg.data, deque()
        batches = _chunks(self._conversations(), CHUNK, ends)
        for batch, results in encode_batches(batches, self.tokenizer, self.template, d, self.kind):
            yield from self._examples(batch, results)
            self._check(force=ends.popleft())

    def _conversations(self) -> Iterator:
        """Converted rows after the start position (earlier rows are read, never converted)."""
        live, start = self.report.live, self.start
        for item in self.rows():
            if item is PASS_END:
                yield item
                continue
            index, source, origin, row = item
            if index < start.row:
                continue
            if index == start.row:  # already counted: convert it without counting again
                conv = convert(source, origin, row, self.cfg.data, DataReport())
            else:
                conv = convert(source, origin, row, self.cfg.data, live)
                if conv is not None and not _kind_fits(conv, self.kind, live):
                    conv = None
                self.report.row(index, live.last_reason if conv is None else None)
            if conv is not None:
                conv.stream_row = index
                yield conv

    def _examples(self, batch, results) -> list[tuple[Example, int, int]]:
        """The chunk's examples with their positions; every row of it is counted first."""
        start, live, out = self.start, self.report.live, []
        for conv, result in zip(batch, results):
            index = conv.stream_row
            if index == start.row:  # the resumed row: its first examples were trained on
                result = [] if isinstance(result, Exception) else result
                out += [(ex, index, sub) for sub, ex in enumerate(result) if sub > start.sub]
                continue
            examples = count_encoded([conv], [result], live, self.kind)
            live.samples += len(examples)
            if examples:
                self.report.kept(index, len(examples), sum(e.truncated for e in examples))
            else:
                self.report.dropped(index, live.last_reason)
            out += [(ex, index, sub) for sub, ex in enumerate(examples)]
        return out

    def _check(self, force: bool = False) -> None:
        live, d = self.report.live, self.cfg.data
        if not live.total:  # nothing counted yet (resumed without a report): rows() finds empty passes
            return
        if force or (d.strict and live.n_dropped) or (not self._checked and live.total >= CHECK_AFTER):
            self._checked = True
            live.check(d.max_drop_ratio, d.strict)

    def sample(self, n: int) -> list[Example]:
        """The first ``n`` examples of a fresh copy of this stream (for memory estimates)."""
        return [ex for ex, _, _ in islice(iter(TokenStream(self.cfg, self.tokenizer, self.template,
                                                           self.kind)), n)]

    # --- evaluation and identity ----------------------------------------------------------------
    def eval_examples(self) -> list[Example]:
        """The held-out first ``val_size`` rows of the mixed stream, tokenized (in memory)."""
        if not self.holdout:
            return []
        d, report = self.cfg.data, DataReport()
        sources = open_sources(d, d.dataset, report, _think(self.template), self.kind)
        rows = islice(mixed_rows(sources, d, _mix_seed(self.cfg)), self.holdout)
        convs = (c for i, (origin, row) in rows
                 if (c := convert(sources[i], origin, row, d, report)) is not None)
        return tokenize_all(convs, self.tokenizer, self.template, d, report, self.kind)

    def identity(self) -> str:
        """A cheap digest of the data files (name, size, first/last MiB) and the data settings."""
        h = hashlib.sha256()
        for f in _dataset_files(self.cfg.data, self.cfg.data.dataset):
            hash_file_sample(f, h)
        d = self.cfg.data
        h.update(repr((d.mix_strategy, d.interleave_probs, d.buffer_size, d.val_size, d.format,
                       d.columns, d.placeholders, d.max_samples, self.kind)).encode())
        return h.hexdigest()[:16]


def load_stream(cfg: RunConfig, tokenizer, template: Template | None,
                kind: str = "chat") -> LoadedData:
    """A streaming run's data: the endless train stream and the (in-memory) eval examples."""
    from .load import tokenized

    check_streaming(cfg, kind)
    stream = TokenStream(cfg, tokenizer, template, kind)
    if cfg.data.eval_dataset:  # evaluation sets are small: tokenized whole (and cached)
        evals, report = tokenized(cfg, cfg.data.eval_dataset, tokenizer, template, kind=kind)
        report.check(cfg.data.max_drop_ratio, cfg.data.strict)
    else:
        evals = stream.eval_examples()
    return LoadedData(stream, evals, stream.report.live)
