"""The transformers decoder: a preallocated KV cache of row slots, refilled as rows finish.

Every layer's keys and values live in one buffer per layer, (slots, kv_heads, columns, head_dim).
Live rows occupy slots ``0..n-1``; a finished row's slot is refilled by moving the last row into
it (one row's copy), so a decode step always runs on the contiguous slots ``[:n]`` without
gathering the cache. A decode step writes every row's new key and value at one shared column
``col``; each row's own columns are recorded in ``valid`` (its prompt, then its tokens), and the
attention mask built from it hides the rest: gaps left by shorter prompts, columns of a slot's
previous row. Newcomers are prefilled together (left-padded) into columns ``[col - P, col)`` of
their slots, ``col`` moving on to ``P`` first when their prompt is longer. When ``col`` reaches the
buffer's end, the rows are compacted to the left (dropping their gaps), or the buffer grows.

The model runs its own forward (any transformers decoder whose attention calls
``cache.update(key, value, layer_idx)`` and accepts a 4-D additive mask, e.g. Llama, Qwen2,
Mistral, Phi-3), with explicit positions per row; the KV cache is never copied per step (the
``DynamicCache`` of ``model.generate`` concatenates every layer's cache at every token).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer

from .sampling import RowSampler, choose_tokens

MIN_COLUMNS = 256
COMPACT_AT = 0.75  # compact when the longest row uses at most this share of the columns


class SlotLayer(DynamicLayer):
    """One layer's view of the slot buffers for the forward in progress."""

    def __init__(self, slots: "SlotCache", index: int):
        super().__init__()
        self.slots, self.index = slots, index
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        s = self.slots
        r0, r1, c0, c1, k0 = s.window
        keys, values = s.keys[self.index], s.values[self.index]
        keys[r0:r1, :, c0:c1] = key_states
        values[r0:r1, :, c0:c1] = value_states
        return keys[r0:r1, :, k0:c1], values[r0:r1, :, k0:c1]

    def get_seq_length(self) -> int:
        return self.slots.window[2]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.slots.window[3] - self.slots.window[4], 0

    def get_max_length(self) -> int:
        return -1


class SlotCache(Cache):
    """The slot buffers of every layer, and the window the current forward reads and writes:
    ``(first row, end row, first written column, end column, first column read)``."""

    def __init__(self, layers: int, slots: int, kv_heads: int, head_dim: int, dtype, device):
        self.keys = [torch.zeros(slots, kv_heads, MIN_COLUMNS, head_dim, dtype=dtype, device=device)
                     for _ in range(layers)]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.window = (0, 0, 0, 0, 0)
        super().__init__(layers=[SlotLayer(self, i) for i in range(layers)])

    @property
    def columns(self) -> int:
        return self.keys[0].shape[2]

    def resize(self, columns: int) -> None:
        """Grow (or shrink) the column count, keeping the first ``min(old, new)`` columns."""
        keep = min(columns, self.columns)
        for group in (self.keys, self.values):
            for i, old in enumerate(group):
                new = old.new_zeros(*old.shape[:2], columns, old.shape[3])
                new[:, :, :keep] = old[:, :, :keep]
                group[i] = new

    def move_row(self, src: int, dst: int) -> None:
        for group in (self.keys, self.values):
            for buf in group:
                buf[dst] = buf[src]

    def gather_columns(self, rows: int, order: torch.Tensor) -> None:
        """Row ``r``'s column ``j`` becomes its column ``order[r, j]`` (compaction)."""
        for group in (self.keys, self.values):
            for buf in group:
                shape = buf[:rows].shape
                index = order[:, None, :, None].expand(rows, shape[1], order.shape[1], shape[3])
                buf[:rows, :, :order.shape[1]] = torch.gather(buf[:rows], 2, index)


class HFDecoder:
    """The :class:`~tunesmith.infer.engine.Decoder` over a transformers causal LM.

    Args:
        model: the model (eval mode; a PEFT model works too).
        capacity: rows held at once.
        constraint_factory: ``(params) -> constraint or None`` for JSON-constrained rows.
        lean: a :class:`~tunesmith.infer.lean.LeanForward` of the model to run instead of the
            model's own forward, or None.
    """

    def __init__(self, model, capacity: int, constraint_factory=None, lean=None):
        self.model, self.capacity, self.lean = model, capacity, lean
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        param = next(model.parameters())
        dtype = param.dtype if param.dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
        self.cache = SlotCache(config.num_hidden_layers, capacity, kv_heads, head_dim, dtype,
                               param.device)
        self.device, self.mask_dtype = param.device, dtype
        self.window = getattr(config, "sliding_window", None) if getattr(
            config, "use_sliding_window", True) else None
        self.valid = torch.zeros(capacity, MIN_COLUMNS, dtype=torch.bool)
        self.positions = torch.zeros(capacity, MIN_COLUMNS, dtype=torch.long)
        self.next_pos = torch.zeros(capacity, dtype=torch.long)  # each slot's next position
        self.col = 0
        self.rows: list = []  # jobs in slots 0..n-1
        self.pending: list = []  # jobs added, not yet prefilled
        self.next_token: dict[int, int] = {}  # id(job) -> the token to feed next
        self.samplers: dict[int, RowSampler] = {}
        self.constraint_factory = constraint_factory

    def __len__(self) -> int:
        return len(self.rows) + len(self.pending)

    def add(self, jobs: list) -> None:
        if len(self) + len(jobs) > self.capacity:
            raise ValueError(f"decoder holds {self.capacity} rows; {len(self)} live, {len(jobs)} more")
        for job in jobs:
            constraint = self.constraint_factory(job.params) if self.constraint_factory else None
            self.samplers[id(job)] = RowSampler(job.params, job.prompt_ids, constraint)
        self.pending += jobs

    @torch.inference_mode()
    def drop(self, job) -> None:
        if job in self.pending:
            self.pending.remove(job)
        elif job in self.rows:
            slot, last = self.rows.index(job), len(self.rows) - 1
            if slot != last:  # the last row moves into the freed slot: live slots stay [:n]
                self.cache.move_row(last, slot)
                self.valid[slot], self.positions[slot] = self.valid[last], self.positions[last]
                self.next_pos[slot] = self.next_pos[last]
                self.rows[slot] = self.rows[last]
            self.rows.pop()
            self.valid[last] = False
        self.next_token.pop(id(job), None)
        self.samplers.pop(id(job), None)

    @torch.inference_mode()
    def step(self) -> list:
        """Decode the running rows by a token, then prefill the newcomers (their first token)."""
        out = self._decode() if self.rows else []
        if self.pending:
            out += self._prefill(self.pending)
            self.pending = []
        return out

    def _decode(self) -> list:
        n = len(self.rows)
        self._make_room(1)
        c = self.col
        ids = torch.tensor([[self.next_token[id(j)]] for j in self.rows], device=self.device)
        pos = self.next_pos[:n].clone()  # (n,)
        self.valid[:n, c], self.positions[:n, c] = True, pos
        mask = self._mask(self.valid[:n, None, :c + 1], self.positions[:n, None, :c + 1],
                          pos[:, None, None])
        self.cache.window = (0, n, c, c + 1, 0)
        logits = self._forward(ids, pos[:, None].to(self.device), mask)
        self.col = c + 1
        self.next_pos[:n] += 1
        return self._choose(self.rows, logits)

    def _prefill(self, jobs: list) -> list:
        """Prefill the newcomers; rows with the same tokens (GRPO's completions of one prompt,
        ``n`` > 1 choices) are computed once and their cache rows copied."""
        owner: dict[tuple, int] = {}
        source = [owner.setdefault(tuple(j.prompt_ids + j.generated), i) for i, j in enumerate(jobs)]
        first = [i for i, s in enumerate(source) if s == i]
        copies = [i for i, s in enumerate(source) if s != i]
        n = len(self.rows)
        logits = self._prefill_rows([jobs[i] for i in first])
        slot = {i: n + k for k, i in enumerate(first + copies)}  # copies after the prefilled rows
        for i in copies:
            src, dst = slot[source[i]], slot[i]
            self.cache.move_row(src, dst)
            self.valid[dst], self.positions[dst] = self.valid[src], self.positions[src]
            self.next_pos[dst] = self.next_pos[src]
        self.rows += [jobs[i] for i in copies]
        order = first + copies
        return self._choose([jobs[i] for i in order],
                            logits[torch.tensor([slot[source[i]] - n for i in order])])

    def _prefill_rows(self, jobs: list) -> torch.Tensor:
        n, m = len(self.rows), len(jobs)
        width = max(len(j.prompt_ids) + len(j.generated) for j in jobs)
        self.col = max(self.col, width)
        self._make_room(0)
        c0 = self.col - width
        pad = [width - len(j.prompt_ids) - len(j.generated) for j in jobs]
        ids = torch.tensor([[0] * p + j.prompt_ids + j.generated for p, j in zip(pad, jobs)])
        keep = torch.arange(width)[None, :] >= torch.tensor(pad)[:, None]  # (m, P)
        pos = (keep.cumsum(1) - 1).clamp(min=0)
        rows = slice(n, n + m)
        self.valid[rows] = False
        self.valid[rows, c0:self.col], self.positions[rows, c0:self.col] = keep, pos
        self.next_pos[rows] = keep.sum(1)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        mask = self._mask(keep[:, None, :] & causal[None], pos[:, None, :], pos[:, :, None])
        self.cache.window = (n, n + m, c0, self.col, c0)
        logits = self._forward(ids.to(self.device), pos.to(self.device), mask)
        self.rows += jobs
        return logits

    def _mask(self, keep: torch.Tensor, key_pos: torch.Tensor, query_pos: torch.Tensor):
        """Additive (rows, 1, queries, keys) mask from ``keep`` (rows, queries, keys): a row sees
        its own columns up to its query (within the sliding window, for models that have one);
        positions broadcast as (rows, 1, keys) and (rows, queries, 1)."""
        if self.window:
            keep = keep & (query_pos - key_pos < self.window)
        low = torch.finfo(self.mask_dtype).min
        mask = torch.zeros(keep.shape, dtype=self.mask_dtype).masked_fill_(~keep, low)
        return mask[:, None].to(self.device)

    def _forward(self, ids, positions, mask) -> torch.Tensor:
        if self.lean is not None:
            return self.lean(ids, positions, mask, self.cache)
        out = self.model(input_ids=ids, position_ids=positions, attention_mask=mask,
                         cache=self.cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1].float()

    def _choose(self, jobs: list, logits: torch.Tensor) -> list:
        samplers = [self.samplers[id(j)] for j in jobs]
        choices = choose_tokens(logits, samplers, [j.generated for j in jobs])
        for job, choice in zip(jobs, choices):
            self.next_token[id(job)] = choice.token
        return [(job, [choice]) for job, choice in zip(jobs, choices)]

    def _make_room(self, extra: int) -> None:
        """Columns for ``col + extra``: compact the rows' gaps away if that frees a quarter of
        the buffer (a compaction copies the cache once, as growing does), else grow it
        (doubling)."""
        need = self.col + extra
        if need <= self.cache.columns:
            return
        n = len(self.rows)
        used = int(self.valid[:n].sum(1).max()) if n else 0
        if n and used + extra <= COMPACT_AT * self.cache.columns and need - extra <= self.cache.columns:
            self._compact(n, used)
            need = self.col + extra
        if need > self.cache.columns:
            self._grow(max(need, 2 * self.cache.columns))

    def _compact(self, n: int, used: int) -> None:
        order = torch.argsort((~self.valid[:n, :self.col]).to(torch.int8), dim=1, stable=True)
        order = order[:, :used]
        self.cache.gather_columns(n, order.to(self.device))
        self.positions[:n, :used] = torch.gather(self.positions[:n, :self.col], 1, order)
        self.valid[:n, :used] = torch.gather(self.valid[:n, :self.col], 1, order)
        self.valid[:, used:] = False
        self.col = used

    def _grow(self, columns: int) -> None:
        self.cache.resize(columns)
        valid = torch.zeros(self.capacity, columns, dtype=torch.bool)
        positions = torch.zeros(self.capacity, columns, dtype=torch.long)
        keep = min(columns, self.valid.shape[1])
        valid[:, :keep], positions[:, :keep] = self.valid[:, :keep], self.positions[:, :keep]
        self.valid, self.positions = valid, positions
