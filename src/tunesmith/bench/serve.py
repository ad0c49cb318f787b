"""Serving benchmark: requests/s and time to first token at 1, 8 and 32 concurrent clients.

Each client sends streamed chat requests one after another over the real HTTP API; the time to
first token (TTFT) is the time to the first content chunk. A single-request loop over the same
engine in-process (no server, no batching) is the baseline. Run with
``python -m tunesmith.bench.serve [CONFIG.yaml] [key=value ...]`` or ``--url`` for a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

PROMPTS = ["What is the capital of France?", "Give me three tips for better sleep.",
           "Explain what a neural network is in one paragraph.", "Write a haiku about autumn.",
           "How do I reverse a list in Python?", "What causes the seasons on Earth?",
           "Suggest a name for a friendly robot.", "Summarise the plot of Cinderella."]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


async def _one(client, url: str, model: str, prompt: str, max_tokens: int) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True}}
    start, first, tokens, text = time.perf_counter(), None, None, []
    async with client.stream("POST", url, json=body) as resp:
        if resp.status_code != 200:
            await resp.aread()
            return {"ok": False, "status": resp.status_code}
        async for line in resp.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            pieces = [c.get("delta", {}).get("content") or "" for c in chunk.get("choices") or []]
            if first is None and any(pieces):
                first = time.perf_counter()
            text += pieces
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    return {"ok": True, "ttft": (first or end) - start, "latency": end - start, "tokens": tokens,
            "text": "".join(text)}


def _count(text: str) -> int:
    """Tokens of a streamed answer, for servers that report no usage (the bundled tokenizer)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from ..config import load_config
        from ..model.load import load_tokenizer, resolve_model_path

        cfg = load_config(None, {})
        _TOKENIZER = load_tokenizer(cfg.model, resolve_model_path(cfg.model.model_name_or_path,
                                                                  model_cfg=cfg.model))
    return len(_TOKENIZER(text, add_special_tokens=False)["input_ids"])


_TOKENIZER = None


async def _level(base_url: str, model: str, api_key: str | None, clients: int, per_client: int,
                 max_tokens: int) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=clients + 2)
    url = f"{base_url}/chat/completions"
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=600) as client:
        await _one(client, url, model, PROMPTS[0], 4)  # warm-up

        async def worker(w: int) -> list[dict]:
            return [await _one(client, url, model, PROMPTS[(w + i) % len(PROMPTS)], max_tokens)
                    for i in range(per_client)]

        start = time.perf_counter()
        results = [r for rs in await asyncio.gather(*(worker(w) for w in range(clients)))
                   for r in rs]
        wall = time.perf_counter() - start
    return _summary(clients, results, wall)


def _summary(clients: int, results: list[dict], wall: float) -> dict:
    ok = [r for r in results if r["ok"]]
    ttft = [r["ttft"] for r in ok]
    return {"concurrency": clients, "requests": len(results), "errors": len(results) - len(ok),
            "wall_s": round(wall, 3), "req_per_s": round(len(ok) / wall, 3),
            "tok_per_s": round(sum(r["tokens"] if r["tokens"] is not None else _count(r["text"])
                                   for r in ok) / wall, 2),
            "ttft_mean_s": round(statistics.mean(ttft), 4) if ttft else None,
            "ttft_p50_s": _pct(ttft, 0.5), "ttft_p95_s": _pct(ttft, 0.95),
            "latency_p50_s": _pct([r["latency"] for r in ok], 0.5)}


def _baseline(overrides: dict, config: str | None, requests: int, max_tokens: int) -> dict:
    """The single-request loop: the engine in this process, one streamed request at a time."""
    from ..config import load_config
    from ..infer.engine import GenParams
    from ..infer.load import load_engine

    engine = load_engine(load_config(config, {k: v for k, v in overrides.items()
                                              if k not in ("port", "host")}))
    params = GenParams(max_new_tokens=max_tokens)
    engine.generate([{"role": "user", "content": PROMPTS[0]}], GenParams(max_new_tokens=4))
    results, start = [], time.perf_counter()
    for i in range(requests):
        t0, first, pieces = time.perf_counter(), None, []
        messages = [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
        for piece in engine.stream(messages, params):
            first = first or time.perf_counter()
            pieces.append(piece)
        end = time.perf_counter()
        tokens = len(engine.encode_text("".join(pieces)))
        results.append({"ok": True, "ttft": (first or end) - t0, "latency": end - t0,
                        "tokens": tokens})
    return _summary(1, results, time.perf_counter() - start)


def run_serve_bench(url_or_cfg=None, concurrency_levels=(1, 8, 32), *, requests_per_client: int = 2,
                    max_tokens: int = 32, api_key: str | None = None, model: str | None = None,
                    overrides: dict | None = None, baseline: bool = True,
                    peers: tuple[str, ...] = (), out: str = "bench_runs") -> dict:
    """Benchmark a server at each concurrency level.

    Args:
        url_or_cfg: ``http://host:port`` of a running server, a YAML config path, or None (the
            bundled model); for the latter two a server is started on a free loopback port with
            ``max_concurrency`` = the highest level.
        concurrency_levels: numbers of simultaneous clients.
        requests_per_client: streamed requests each client sends, one after another.
        max_tokens: completion length per request (greedy).
        overrides: extra config keys for a started server.
        baseline: also time a single-request loop over the engine in-process (not with ``--url``).
        peers: peers' servers to measure the same way on the same model (``llamafactory``),
            one after the other, with the tokens/s ratio per level.
        out: the bench dir whose ``venvs`` hold the peers.
    Returns:
        ``{"server": ..., "levels": [{concurrency, req_per_s, ttft_p50_s, ...}], "baseline": ...}``
    """
    levels = [int(c) for c in concurrency_levels]
    if isinstance(url_or_cfg, str) and url_or_cfg.startswith(("http://", "https://")):
        base = url_or_cfg.rstrip("/")
        base = base if base.endswith("/v1") else f"{base}/v1"
        return {"server": base, "max_tokens": max_tokens,
                "levels": _run_levels(base, model, api_key, levels, requests_per_client,
                                      max_tokens)}
    result = _bench_started_server(url_or_cfg, levels, requests_per_client, max_tokens,
                                   dict(overrides or {}), baseline)
    for name in peers:
        from .serve_peers import PEER_SERVERS

        with PEER_SERVERS[name](out) as base:
            runs = _run_levels(base, None, None, levels, requests_per_client, max_tokens)
        result.setdefault("peers", {})[name] = runs
        result.setdefault("ratios", {})[name] = [
            round(ours["tok_per_s"] / theirs["tok_per_s"], 2) if theirs["tok_per_s"] else None
            for ours, theirs in zip(result["levels"], runs)]
    return result


def _run_levels(base, model, api_key, levels, per_client, max_tokens) -> list[dict]:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    model = model or httpx.get(f"{base}/models", headers=headers).json()["data"][0]["id"]
    return [asyncio.run(_level(base, model, api_key, c, per_client, max_tokens)) for c in levels]


def _bench_started_server(config, levels, per_client, max_tokens, overrides, baseline) -> dict:
    from ..serve.launch import ServerProcess

    overrides.setdefault("max_concurrency", max(levels))
    overrides.setdefault("max_queue", max(levels) * 2)
    with ServerProcess(overrides, config=config) as srv:
        name = overrides.get("model_name_or_path") or config or "bundled smollm2-135m"
        result = {"server": f"started: {name}",
                  "max_concurrency": overrides["max_concurrency"], "max_tokens": max_tokens,
                  "levels": _run_levels(srv.base_url, None, overrides.get("api_key"), levels,
                                        per_client, max_tokens)}
    if baseline:  # after the server has exited, so both get the whole machine
        result["baseline"] = _baseline(overrides, config, max(4, per_client * 2), max_tokens)
    return result


def format_serve_bench(result: dict) -> str:
    """A plain-text table of the result."""
    lines = [f"server: {result['server']}  max_tokens: {result['max_tokens']}",
             f"{'clients':>8} {'requests':>8} {'errors':>6} {'req/s':>8} {'tok/s':>8} "
             f"{'TTFT p50':>9} {'TTFT p95':>9} {'latency p50':>11}"]
    rows = list(result["levels"])
    if "baseline" in result:
        rows.append({**result["baseline"], "concurrency": "loop*"})
    for r in rows:
        lines.append(f"{r['concurrency']!s:>8} {r['requests']:>8} {r['errors']:>6} "
                     f"{r['req_per_s']:>8} {r['tok_per_s']:>8} "
                     f"{r['ttft_p50_s']:>9} {r['ttft_p95_s']:>9} {r['latency_p50_s']:>11}")
    for name, runs in result.get("peers", {}).items():
        for r, ratio in zip(runs, result["ratios"][name]):
            lines.append(f"{name[:8]:>8} {r['requests']:>8} {r['errors']:>6} {r['req_per_s']:>8} "
                         f"{r['tok_per_s']:>8} {r['ttft_p50_s']:>9} {r['ttft_p95_s']:>9} "
                         f"{r['latency_p50_s']:>11}   ({r['concurrency']} clients: tunesmith "
                         f"{ratio}x its tok/s)")
    if "baseline" in result:
        lines.append("* loop: the engine in-process, one streamed request at a time (no server)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ..config_parse import parse_overrides, split_config_and_overrides

    parser = argparse.ArgumentParser(prog="python -m tunesmith.bench.serve",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one for the config)")
    parser.add_argument("--api-key", dest="bench_api_key")
    parser.add_argument("--concurrency", default="1,8,32", help="comma list of client counts")
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--peers", default="", help="llamafactory: its API server, same model")
    parser.add_argument("--out", default="bench_runs", help="bench dir (peers' venvs)")
    parser.add_argument("--json", help="also write the result to this file")
    args, extras = parser.parse_known_args(argv)
    config, rest = split_config_and_overrides(extras)
    result = run_serve_bench(args.url or config, [int(c) for c in args.concurrency.split(",")],
                             requests_per_client=args.requests_per_client,
                             max_tokens=args.max_tokens, api_key=args.bench_api_key,
                             overrides=parse_overrides(rest), baseline=not args.no_baseline,
                             peers=tuple(p for p in args.peers.split(",") if p), out=args.out)
    print(format_serve_bench(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
