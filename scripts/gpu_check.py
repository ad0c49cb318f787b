"""Helpers of scripts/gpu_check.sh (standard library only).

    python scripts/gpu_check.py probe URL OUT.json   # wait for a server, time one completion
    python scripts/gpu_check.py table OUT_DIR        # the results table (Markdown)
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROMPT = "我最近总是睡不着，怎么办？"


def _post(url: str, body: dict, timeout: float = 600) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def probe(base: str, out: str, wait_s: float = 600) -> int:
    """Wait for /health, then time a 128-token chat completion; write tokens/s to ``out``."""
    deadline = time.time() + wait_s
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5):
                break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.time() > deadline:
                return 1
            time.sleep(2)
    body = {"model": "check", "max_tokens": 128, "temperature": 0,
            "messages": [{"role": "user", "content": PROMPT}]}
    _post(f"{base}/v1/chat/completions", {**body, "max_tokens": 8})  # warm-up
    start = time.time()
    reply = _post(f"{base}/v1/chat/completions", body)
    elapsed = time.time() - start
    tokens = reply["usage"]["completion_tokens"]
    Path(out).write_text(json.dumps({"completion_tokens": tokens, "seconds": elapsed,
                                     "tokens_per_s": tokens / elapsed,
                                     "text": reply["choices"][0]["message"]["content"]},
                                    ensure_ascii=False, indent=2))
    return 0


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _train_row(run: Path) -> tuple[str, str, str]:
    """(tokens/s, peak GPU memory, first loss) of a training run dir."""
    results = _json(run / "all_results.json")
    log = [json.loads(x) for x in (run / "trainer_log.jsonl").read_text().splitlines()] \
        if (run / "trainer_log.jsonl").is_file() else []
    losses = [r["loss"] for r in log if "loss" in r]
    seen = max([r.get("tokens_seen") or 0 for r in log] or [0])
    runtime = results.get("train_runtime") or 0
    speed = f"{seen / runtime:,.0f} train tok/s" if seen and runtime else "-"
    peak = f"{results['peak_mem_mb'] / 1024:.2f} GiB" if "peak_mem_mb" in results else "-"
    return speed, peak, f"{losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "-"


def table(out_dir: str) -> int:
    out = Path(out_dir)
    rows = ["| step | tokens/s | peak GPU memory | first loss -> last | quality |",
            "|---|---|---|---|---|"]
    for name in ("lora", "qlora"):
        if (out / name).is_dir():
            speed, peak, loss = _train_row(out / name)
            rows.append(f"| train {name} | {speed} | {peak} | {loss} | |")
    pred = _json(out / "predict" / "predict_results.json")
    if pred:
        scores = ", ".join(f"{k.removeprefix('predict_')} {v:.2f}" for k, v in pred.items()
                           if any(m in k for m in ("bleu", "rouge")))
        speed = pred.get("predict_samples_per_second")
        rows.append(f"| predict (LoRA) | {f'{speed:.3g} samples/s' if speed else '-'} | | | {scores} |")
    check = _json(out / "merged" / "export_check.json").get("merge")
    if check:
        verdict = "passed" if check.get("passed") else "FAILED"
        rows.append(f"| export merge check | | | | {verdict}: max |logit diff| "
                    f"{check['max_abs_diff']:.2e} (tolerance {check['tolerance']:.2e}) |")
    for engine in ("hf", "vllm"):
        serve = _json(out / f"serve_{engine}.json")
        if serve:
            rows.append(f"| serve {engine} | {serve['tokens_per_s']:.1f} generated tok/s | | | "
                        f"{serve['completion_tokens']} tokens in {serve['seconds']:.1f} s |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    verb, *rest = sys.argv[1:]
    sys.exit({"probe": probe, "table": table}[verb](*rest))
