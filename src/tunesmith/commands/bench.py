"""``tunesmith bench train|speed|peak|estimate|decode|predict|methods|serve``: measure tunesmith (and its peers)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="<what>")
    t = sub.add_parser("train", help="train a workload with tunesmith and the peers, side by side")
    t.add_argument("--workload", default="W1",
                   help="W1 (identity), W2 (instructions), W3 (multi-turn), W4 (sigmoid DPO on "
                        "preference pairs), W5 (GRPO, against TRL's GRPOTrainer)")
    t.add_argument("--peers", default="", help="comma list: llamafactory,trl (installed into "
                                               "<out>/venvs on first use)")
    t.add_argument("--steps", type=int, default=0, help="partial mode: only the first N steps")
    t.add_argument("--repeats", type=int, default=1, help="runs per tool (min and median reported)")
    t.add_argument("--out", default="bench_runs", help="bench directory (venvs, runs, reports)")
    t.add_argument("--timeout", type=float, default=3600, help="seconds allowed per run")
    t.add_argument("--modes", default="defaults,best",
                   help="defaults: every tool as it comes (tunesmith with no speed keys, the "
                        "peers padded); best: each with its padding-free mode (LLaMA-Factory "
                        "neat_packing, TRL padding_free) and checkpointing on for all")
    t.add_argument("--gradient-checkpointing", choices=("each", "on", "off"), default="each",
                   help="each: as each variant has it (default); on/off: for every run alike")
    t.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto",
                   help="training dtype for every tool (auto: bf16 on CPUs with AMX/AVX512-BF16, else fp32; "
                        "fp32 makes first-step losses comparable to 1e-5 across tools)")
    s = sub.add_parser("speed", help="A/B the speed techniques on a workload in one process")
    s.add_argument("--workload", default="W2")
    s.add_argument("--steps", type=int, default=3, help="steps per variant per round (the first is set-up)")
    s.add_argument("--rounds", type=int, default=1)
    s.add_argument("--variants", default="", help="comma list (default: all)")
    s.add_argument("--threads", type=int, default=None,
                   help="torch threads (1 = exact CPU-time accounting on a busy machine)")
    sub.add_parser("peak", help="measure this machine's fp32 and bf16 matmul peak")
    e = sub.add_parser("estimate", help="`tunesmith estimate` against measured peaks of real runs")
    e.add_argument("--configs", default="A,C,bench-W2",
                   help="comma list of A,B,C,D,E,bench-W1,bench-W2,bench-W3 (see "
                        "tunesmith/bench/estimate_check.py)")
    e.add_argument("--out", default="bench_runs/estimate", help="configs, logs and run outputs")
    d = sub.add_parser("decode", help="generation tokens/s against the memory-bandwidth limit")
    d.add_argument("--dtypes", default="fp32,bf16", help="comma list of weight dtypes")
    d.add_argument("--batches", default="8,32", help="comma list of rows decoded together")
    d.add_argument("--rows", type=int, default=32, help="W2 prompts generated for")
    d.add_argument("--max-new-tokens", type=int, default=256, help="new tokens per row")
    d.add_argument("--decoders", default="lean",
                   help="comma list, interleaved: lean (infer/lean.py: fused, prepacked weights; "
                        "the default where it covers the model), packed (transformers' modules "
                        "with prepacked linear layers, infer/packed.py), plain (neither)")
    p = sub.add_parser("predict", help="batched generation on W2 rows, against LLaMA-Factory")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="per_device_eval_batch_size for both")
    p.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto")
    p.add_argument("--peers", default="", help="llamafactory (installed into <out>/venvs)")
    p.add_argument("--out", default="bench_runs")
    sub.add_parser("methods", help="compare fine-tuning methods (memory, speed, loss)")
    v = sub.add_parser("serve", help="serving throughput and time to first token at 1/8/32 clients")
    v.add_argument("--concurrency", default="1,8,32", help="comma list of client counts")
    v.add_argument("--requests-per-client", type=int, default=2)
    v.add_argument("--max-tokens", type=int, default=32)
    v.add_argument("--peers", default="", help="llamafactory: its API server on the same model")
    v.add_argument("--out", default="bench_runs", help="bench dir (peers' venvs)")


def _optional(module: str, attr: str, what: str):
    from ..errors import TunesmithError

    try:
        return getattr(importlib.import_module(module), attr)
    except (ModuleNotFoundError, AttributeError):
        raise TunesmithError(f"'tunesmith bench {what}' is not available in this version") from None


def run(args) -> int:
    what = getattr(args, "what", None)
    if what is None:
        print("usage: tunesmith bench {train,speed,peak,estimate,decode,predict,methods,serve} (see --help)")
        return 2
    return HANDLERS[what](args)


def _train(args) -> int:
    from ..bench.train import bench_train

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if args.workload.upper() == "W5":  # GRPO: its own runner (bench/grpo.py)
        from ..bench.grpo import bench_grpo, format_report as grpo_report

        result = bench_grpo(peers, args.steps, args.repeats, Path(args.out), args.timeout,
                            args.dtype)
        print(grpo_report(result) + f"(report: {Path(result['dir']) / 'report.md'})")
        return 0
    result = bench_train(args.workload, peers, args.steps, args.repeats, Path(args.out),
                         args.timeout,
                         grad_ckpt={"each": None, "on": True, "off": False}[
                             args.gradient_checkpointing],
                         dtype=args.dtype, modes=[m for m in args.modes.split(",") if m])
    from ..bench.report import format_report

    print(format_report(result))
    print(f"(report: {Path(result['dir']) / 'report.md'})")
    return 0


def _speed(args) -> int:
    from ..bench.ablation import format_ablation, run_ablation

    names = [v for v in args.variants.split(",") if v] or None
    print(format_ablation(run_ablation(args.workload, args.steps, rounds=args.rounds, names=names,
                                              threads=args.threads)))
    return 0


def _estimate(args) -> int:
    from ..bench.estimate_check import check, format_checks

    rows = [check(name.strip(), Path(args.out)) for name in args.configs.split(",") if name.strip()]
    print(format_checks(rows))
    return 0


def _peak(args) -> int:
    from ..bench.peak import measure_peaks

    print(json.dumps({k: f"{v / 1e9:.0f} GFLOP/s" for k, v in measure_peaks().items()}))
    return 0


def _decode(args) -> int:
    from ..bench.decode import DECODERS, bench_decode, format_decode

    from ..errors import ConfigError

    decoders = [p for p in args.decoders.split(",") if p]
    if not decoders or set(decoders) - set(DECODERS):
        raise ConfigError(f"--decoders: a comma list of {', '.join(DECODERS)}, "
                          f"not '{args.decoders}'")
    result = bench_decode([d for d in args.dtypes.split(",") if d],
                          [int(b) for b in args.batches.split(",") if b], args.rows,
                          args.max_new_tokens, decoders)
    print(format_decode(result))
    return 0


def _predict(args) -> int:
    from ..bench.predict import bench_predict, format_predict

    peers = [p for p in args.peers.split(",") if p]
    print(format_predict(bench_predict(args.rows, args.max_new_tokens, args.batch, args.dtype,
                                       peers, Path(args.out))))
    return 0


def _methods(args) -> int:
    run_table = _optional("tunesmith.bench.methods", "run_methods_table", "methods")
    fmt = _optional("tunesmith.bench.methods", "format_methods_table", "methods")
    print(fmt(run_table()))
    return 0


def _serve(args) -> int:
    from ..bench.serve import format_serve_bench, run_serve_bench

    result = run_serve_bench(None, [int(c) for c in args.concurrency.split(",") if c],
                             requests_per_client=args.requests_per_client,
                             max_tokens=args.max_tokens, out=args.out,
                             peers=tuple(p for p in args.peers.split(",") if p))
    print(format_serve_bench(result))
    return 0


HANDLERS = {"train": _train, "speed": _speed, "peak": _peak, "estimate": _estimate,
            "decode": _decode, "predict": _predict, "methods": _methods, "serve": _serve}
