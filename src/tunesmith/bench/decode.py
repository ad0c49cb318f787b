"""``tunesmith bench decode``: generation speed against this machine's memory-bandwidth limit.

Decoding is memory-bound: every step reads all the weights once (shared by the rows of a
batch) and each row's KV cache. The fastest a step can be is those bytes over the measured
memory bandwidth, so the limit in tokens/s is ``batch / ((weights + KV) / bandwidth)``. The run:
W2 prompts through the engine's continuous batching (greedy, ``max_new_tokens`` each, stops at
end-of-turn), per dtype and batch size, interleaved.
"""

from __future__ import annotations

import json
import os
import sys
import time

READ_MIB = 512  # the bandwidth probe's buffer: far larger than any cache
DECODERS = {"lean": {"TUNESMITH_LEAN": "1", "TUNESMITH_PACKED_LINEAR": "1"},
            "packed": {"TUNESMITH_LEAN": "0", "TUNESMITH_PACKED_LINEAR": "1"},
            "plain": {"TUNESMITH_LEAN": "0", "TUNESMITH_PACKED_LINEAR": "0"}}
"""The engine's decoding paths: ``infer/lean.py`` (with its packed weights), transformers'
modules with prepacked linear layers (``infer/packed.py``), or neither."""


def memory_bandwidth(seconds: float = 1.0) -> float:
    """Read bandwidth in bytes/s: the best of repeated sums over a 512 MiB fp32 buffer."""
    import torch

    x = torch.ones(READ_MIB * 2**20 // 4)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        x.sum()
        best = max(best, x.numel() * 4 / (time.perf_counter() - t))
    return best


def step_bytes(config, dtype_bytes: int, batch: int, context: float) -> dict:
    """Bytes one decode step reads: every weight once, and ``batch`` rows of KV cache holding
    ``context`` positions (the embedding lookup reads only ``batch`` rows of its table)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    h, inter, layers, vocab = text.hidden_size, text.intermediate_size, text.num_hidden_layers, text.vocab_size
    per_layer = h * (heads * head_dim) * 2 + h * (kv_heads * head_dim) * 2 + 3 * h * inter + 2 * h
    weights = (layers * per_layer + vocab * h + h) * dtype_bytes  # + the LM head (tied or not)
    kv = batch * context * layers * 2 * kv_heads * head_dim * dtype_bytes
    return {"weights": weights, "kv": kv, "total": weights + kv}


def prompts(rows: int) -> list[list[dict]]:
    """The first ``rows`` W2 instructions as chat prompts."""
    from .workloads import get_workload

    data = json.loads(get_workload("W2").path.read_text(encoding="utf-8"))[:rows]
    return [[{"role": "user", "content": r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")}]
            for r in data]


def run_decode(dtype: str, batch: int, conversations: list, new_tokens: int,
               decoder: str = "lean") -> dict:
    """tokens/s of the engine on ``conversations`` (greedy), and the mean context per row, with
    the decoding path ``decoder`` (one of :data:`DECODERS`)."""
    from ..config import load_config
    from ..infer.engine import GenParams
    from ..infer.load import load_engine

    before = {key: os.environ.get(key) for key in DECODERS[decoder]}
    os.environ.update(DECODERS[decoder])
    try:
        engine = load_engine(load_config(None, {"dtype": dtype}))
    finally:
        for key, value in before.items():
            os.environ.pop(key)
            if value is not None:
                os.environ[key] = value
    engine.generate(conversations[0], GenParams(max_new_tokens=4))  # warm-up
    start = time.perf_counter()
    outs = engine.batch_generate(conversations, GenParams(max_new_tokens=new_tokens),
                                 max_batch=batch)
    seconds = time.perf_counter() - start
    tokens = sum(o.completion_tokens for o in outs)
    context = sum(o.prompt_tokens + o.completion_tokens / 2 for o in outs) / len(outs)
    used = "lean" if getattr(engine, "lean", None) is not None else \
        ("plain" if decoder == "plain" else "packed")
    return {"dtype": dtype, "decoder": used, "batch": batch, "tokens": tokens,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "mean_context": round(context),
            "config": engine.model.config}


def bench_decode(dtypes=("fp32", "bf16"), batches=(8, 32), rows: int = 32,
                 new_tokens: int = 256, decoders=("lean",)) -> dict:
    """Every (batch, dtype, decoder) once, interleaved, with its bandwidth limit."""
    bandwidth = memory_bandwidth()
    conversations = prompts(rows)
    results = []
    for batch in batches:
        for dtype, decoder in [(d, p) for d in dtypes for p in decoders]:
            r = run_decode(dtype, batch, conversations, new_tokens, decoder)
            size = step_bytes(r.pop("config"), 4 if dtype == "fp32" else 2, batch, r["mean_context"])
            limit = batch * bandwidth / size["total"]
            results.append({**r, "step_mib": round(size["total"] / 2**20, 1),
                            "limit_tokens_per_s": round(limit, 1),
                            "share_of_limit": round(r["tokens_per_s"] / limit, 3)})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return {"bandwidth_gb_s": round(bandwidth / 1e9, 2), "rows": rows, "new_tokens": new_tokens,
            "runs": results}


def format_decode(result: dict) -> str:
    lines = [f"memory read bandwidth: {result['bandwidth_gb_s']} GB/s; {result['rows']} W2 prompts, "
             f"greedy, up to {result['new_tokens']} new tokens",
             f"{'dtype':>6} {'decoder':>7} {'batch':>5} {'tokens':>7} {'s':>7} {'tok/s':>7} {'step MiB':>9} "
             f"{'limit tok/s':>11} {'of limit':>8}"]
    for r in result["runs"]:
        lines.append(f"{r['dtype']:>6} {r.get('decoder', 'packed'):>7} "
                     f"{r['batch']:>5} {r['tokens']:>7} {r['seconds']:>7} "
                     f"{r['tokens_per_s']:>7} {r['step_mib']:>9} {r['limit_tokens_per_s']:>11} "
                     f"{100 * r['share_of_limit']:>7.0f}%")
    return "\n".join(lines)
