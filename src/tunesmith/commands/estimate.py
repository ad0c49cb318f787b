"""``tunesmith estimate CONFIG [--gpu 24GB] [--no-calibrate] [--json]``: memory and time up front."""

from __future__ import annotations

import json
import re


def add_arguments(parser) -> None:
    parser.add_argument("--gpu", metavar="SIZE", default=None,
                        help="estimate for a GPU of this memory size (e.g. 24GB, 80GiB) instead of "
                             "this machine")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="skip timing a few real training steps (no time estimate)")
    parser.add_argument("--calibration-steps", type=int, default=3, metavar="N",
                        help="real steps timed for the time estimate (default 3)")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")


def parse_size_mb(text: str) -> float:
    """``24GB``/``24G``/``24GiB``/``24000MB`` -> MiB; a bad size is a one-line error."""
    from ..errors import ConfigError

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(g|gb|gib|m|mb|mib)?\s*", text.lower())
    if not m:
        raise ConfigError(f"--gpu: expected a memory size like 24GB or 80GiB, got '{text}'")
    value, unit = float(m.group(1)), m.group(2) or "gb"
    return value * 1024 if unit.startswith("g") else value


def run(args) -> int:
    from dataclasses import asdict

    from ..estimate import estimate_run
    from ..estimate.report import format_estimate
    from . import load_run_config

    cfg = load_run_config(args)
    gpu_mb = parse_size_mb(args.gpu) if args.gpu else None
    est = estimate_run(cfg, gpu_mb)
    cfg.train.gradient_checkpointing = est.memory.checkpointing  # calibrate as the run would
    timing = None
    if not args.no_calibrate and not gpu_mb:
        from ..estimate.calibrate import calibrate

        timing = calibrate(cfg, max(1, args.calibration_steps))
    if args.json:
        out = asdict(est)
        out["memory"] = est.memory.as_dict()
        out["timing"] = timing
        print(json.dumps(out, indent=2))
    else:
        print(format_estimate(est, timing))
    return 0
