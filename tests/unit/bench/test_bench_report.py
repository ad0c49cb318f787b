"""bench: workloads, token accounting, report formatting and the run pipeline with fake tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tunesmith.bench.prepare import total_steps, trained_tokens
from tunesmith.bench.report import aggregate, format_report, ratios
from tunesmith.bench.workloads import WORKLOADS, get_workload, train_overrides
from tunesmith.bench.workloads.generate import w2_rows, w3_rows
from tunesmith.errors import ConfigError


def fake_run(tool, tps, rss, loss=1.0, **kw):
    return {"tool": tool, "steps": 3, "tokens": 300, "train_s": 300 / tps, "tokens_per_s": tps,
            "wall_s": 20.0, "first_step_s": 5.0, "peak_rss_mb": rss, "peak_gpu_mb": None,
            "first_loss": loss, "final_loss": loss - 0.5, "achieved_flops": 1e9,
            "tokens_per_cpu_s": tps / 2, **kw}


def fake_result(runs):
    tools = aggregate(runs)
    return {"spec": {"workload": "W1", "dtype": "bf16", "n_rows": 80, "steps": 3, "batch": 8,
                     "tokens": 300, "lora_rank": 8, "learning_rate": 5e-4,
                     "gradient_checkpointing": True},
            "hardware": {"name": "Test CPU", "capability": "AVX512", "cores": 2, "reason": "r",
                         "peak_fp32": 2e11, "peak_bf16": 1e12},
            "repeats": 2, "runs": runs, "tools": tools, "ratios": ratios(tools)}


def test_workloads_are_seeded_and_shipped():
    assert w2_rows(n=20) == w2_rows(n=20) and w3_rows(n=5) == w3_rows(n=5)
    assert w2_rows(n=20, seed=9) != w2_rows(n=20)
    shipped = json.loads(get_workload("w2").path.read_text(encoding="utf-8"))
    assert shipped == w2_rows()  # the shipped file is what the generator makes
    for w in WORKLOADS.values():
        assert w.path.is_file()
    with pytest.raises(ConfigError, match="W1, W2, W3"):
        get_workload("W9")


def test_train_overrides_partial_mode(tmp_path):
    keys = train_overrides(get_workload("W1"), tmp_path, steps=5)
    assert keys["max_steps"] == 5 and keys["lora_rank"] == 8 and keys["lora_target"] == "all"
    assert keys["placeholders"] == {"name": "Nova", "author": "Tunesmith Labs"}
    assert train_overrides(get_workload("W2"), tmp_path)["max_steps"] == -1


def test_token_accounting_follows_sequential_epochs():
    lengths = [10, 20, 30, 40, 50]
    assert trained_tokens(lengths, 2, 3) == 150
    assert trained_tokens(lengths, 2, 4) == 180  # epoch 2 starts again at row 0
    assert total_steps(5, 2, 3.0, 0) == 9 and total_steps(5, 2, 3.0, 4) == 4


def test_report_medians_ratios_and_equal_work_check():
    runs = [fake_run("tunesmith", 100, 1000), fake_run("tunesmith", 120, 900),
            fake_run("trl", 50, 2000, loss=1.0004), fake_run("trl", 40, 2100, loss=1.0004),
            {"tool": "llamafactory", "error": "exit 1: boom (log: x)"}]
    result = fake_result(runs)
    assert result["tools"]["tunesmith"]["tokens_per_s"] == {"min": 100, "median": 110, "max": 120}
    assert result["ratios"]["trl"]["speed"] == pytest.approx(110 / 45)
    text = format_report(result)
    assert "Test CPU (AVX512, 2 cores); dtype bf16" in text
    assert "| tunesmith | 110.0 (min 100.0) | 55.0 (min 50.0) |" in text
    assert "(2.44x per CPU-second)" in text
    assert "tunesmith vs trl: **2.44x** tokens/s" in text and "equal work" in text
    assert "| llamafactory | failed: exit 1: boom" in text
    bad = fake_result([fake_run("tunesmith", 1, 1), fake_run("trl", 1, 1, loss=1.1)])
    assert "NOT equal" in format_report(bad)


FAKE_CHILD = """
import json, sys, time
from pathlib import Path
out = Path(sys.argv[1])
t0 = time.time()
c0 = time.process_time()
x = bytearray(30 * 2**20)  # a visible RSS
out.write_text(json.dumps({"t_begin": t0, "t_first_step": t0 + 0.01, "t_end": t0 + 0.5,
                           "losses": {"1": 2.0, "3": 1.5}, "steps": 3,
                           "cpu_begin": c0, "cpu_end": c0 + 0.25}))
"""


def test_bench_train_pipeline_with_fake_tools(tmp_path, bundled_dir):
    from tunesmith.bench.train import bench_train

    def fake(spec, run_dir, result):
        return [sys.executable, "-c", FAKE_CHILD, str(result)], {}

    def failing(spec, run_dir, result):
        return [sys.executable, "-c", "raise SystemExit('no peer here')"], {}

    result = bench_train("W1", steps=3, repeats=1, out=tmp_path, peak_seconds=0.05,
                         tools={"tunesmith": fake, "trl": failing})
    spec = result["spec"]
    assert spec["steps"] == 3 and spec["n_rows"] == 80 and spec["tokens"] > 0
    rows = (tmp_path / "W1" / "rows.jsonl").read_text().splitlines()
    assert len(rows) == 80 and "-100" in rows[0]
    lf = json.loads((tmp_path / "W1" / "lf_data" / "data.json").read_text())
    assert "Nova" in json.dumps(lf) and "{{name}}" not in json.dumps(lf)
    ours = result["tools"]["tunesmith"]
    assert ours["peak_rss_mb"]["median"] > 30 and ours["first_loss"]["median"] == 2.0
    assert ours["tokens_per_s"]["median"] == pytest.approx(spec["tokens"] / 0.5)
    assert ours["tokens_per_cpu_s"]["median"] == pytest.approx(spec["tokens"] / 0.25)
    assert "no peer here" in result["tools"]["trl"]["errors"][0]["error"]
    if spec["dtype"] == "fp32":  # the timed runs' first losses are the check
        assert result["equal_work"] is None
    else:  # one fp32 step per tool first; a failed tool has no loss
        assert result["equal_work"] == {"tunesmith": 2.0, "trl": None}
        assert (tmp_path / "W1" / "equal-work" / "spec.json").is_file()
    report = (tmp_path / "W1" / "report.md").read_text()
    assert "| tunesmith |" in report and "failed" in report


def test_peer_run_spec_carries_result_and_output(tmp_path):
    from tunesmith.bench.peers import PEERS, command
    from tunesmith.bench.train import run_spec

    path = run_spec({"workload": "W1", "batch": 8}, tmp_path, tmp_path / "timing.json")
    spec = json.loads(path.read_text())
    assert spec["result"] == str(tmp_path / "timing.json") and spec["batch"] == 8
    cmd, env = command(PEERS["llamafactory"], Path("/venv/bin/python"), path)
    assert cmd[-1] == str(path) and cmd[1].endswith("lf_child.py")
    assert "torchaudio_stub" in env["PYTHONPATH"] and env["HF_HUB_OFFLINE"] == "1"


def test_gradient_checkpointing_setting_reaches_every_tool(tmp_path, bundled_dir):
    import yaml

    from tunesmith.bench.run import OURS, ours_command
    from tunesmith.bench.train import bench_train
    from tunesmith.bench.variants import VARIANTS, settings

    seen = {}

    def fake(spec, run_dir, result):
        seen["spec"] = spec
        cmd, _ = ours_command(spec, run_dir, result, {**OURS, **settings(VARIANTS["tunesmith"], spec)})
        seen["config"] = yaml.safe_load((run_dir / "tunesmith.yaml").read_text())
        return [sys.executable, "-c", FAKE_CHILD, str(result)], {}

    bench_train("W1", steps=1, out=tmp_path, peak_seconds=0.05, tools={"tunesmith": fake},
                grad_ckpt=False)
    assert seen["spec"]["gradient_checkpointing"] is False
    assert seen["config"]["gradient_checkpointing"] is False  # tunesmith gets the spec's setting
    assert "packing" not in seen["config"] and "fast_loss" not in seen["config"]  # its defaults
    assert (tmp_path / "W1-no-ckpt" / "report.md").read_text().count(
        "gradient checkpointing off for every tool") == 1


def test_variants_as_they_come_and_at_their_best():
    from tunesmith.bench.variants import VARIANTS, settings, variants_for

    names = [v.name for v in variants_for(["llamafactory", "trl"], ["defaults", "best"])]
    assert names == ["tunesmith", "llamafactory", "trl", "tunesmith-best", "llamafactory-neat",
                     "trl-padding-free"]
    assert settings(VARIANTS["tunesmith"], {"gradient_checkpointing": None}) == {}
    assert settings(VARIANTS["llamafactory-neat"], {"gradient_checkpointing": None}) == {
        "gradient_checkpointing": True, "neat_packing": True}
    assert settings(VARIANTS["trl-padding-free"], {"gradient_checkpointing": False})[
        "gradient_checkpointing"] is False
    assert settings(VARIANTS["llamafactory-neat"], {"gradient_checkpointing": None,
                                                   "stage": "dpo"}) == {"gradient_checkpointing": True}
    with pytest.raises(ConfigError, match="modes"):
        variants_for([], ["fastest"])
    runs = [fake_run("tunesmith", 100, 1000), fake_run("llamafactory", 50, 2000),
            fake_run("tunesmith-best", 90, 800), fake_run("llamafactory-neat", 60, 1600)]
    r = ratios(aggregate(runs))
    assert r["llamafactory"]["speed"] == 2.0 and r["llamafactory"]["against"] == "tunesmith"
    assert r["llamafactory-neat"]["speed"] == 1.5
    assert r["llamafactory-neat"]["against"] == "tunesmith-best"


def test_llamafactory_packed_steps_count_their_own_tokens():
    from tunesmith.bench.peers import SCRIPTS

    sys.path.insert(0, str(SCRIPTS))
    try:
        from lf_child import trained_packed_tokens
    finally:
        sys.path.pop(0)
    masks = [[1, 1, 2, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert trained_packed_tokens(masks, {"batch": 2, "max_steps": 1, "epochs": 1}) == 7
    assert trained_packed_tokens(masks, {"batch": 2, "max_steps": -1, "epochs": 1}) == 8 + 3


def test_llamafactory_gets_the_same_tokens_and_label_masks(tmp_path):
    from datasets import load_from_disk

    from tunesmith.bench.peers import SCRIPTS

    sys.path.insert(0, str(SCRIPTS))
    try:
        from lf_child import tokenized_dir
    finally:
        sys.path.pop(0)
    rows = [{"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]},
            {"input_ids": [9, 10], "labels": [-100, 10]}]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = tokenized_dir({"rows": str(tmp_path / "rows.jsonl"),
                          "output_dir": str(tmp_path / "run" / "output")})
    train = load_from_disk(path)["train"]
    assert train["input_ids"] == [r["input_ids"] for r in rows]
    assert train["labels"] == [r["labels"] for r in rows]
    assert train["attention_mask"] == [[1, 1, 1, 1], [1, 1]]


def test_serve_and_decode_reports():
    from tunesmith.bench.decode import step_bytes
    from tunesmith.bench.serve import format_serve_bench

    level = {"concurrency": 8, "requests": 16, "errors": 0, "req_per_s": 1.0, "tok_per_s": 40.0,
             "ttft_p50_s": 0.1, "ttft_p95_s": 0.2, "latency_p50_s": 1.0}
    text = format_serve_bench({"server": "s", "max_tokens": 32, "levels": [level],
                               "peers": {"llamafactory": [dict(level, tok_per_s=10.0)]},
                               "ratios": {"llamafactory": [4.0]}})
    assert "(8 clients: tunesmith 4.0x its tok/s)" in text
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=100, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1)
    size = step_bytes(cfg, 4, batch=3, context=10)
    weights = (2 * (8 * 8 * 2 + 8 * 4 * 2 + 3 * 8 * 16 + 2 * 8) + 100 * 8 + 8) * 4
    assert size["weights"] == weights and size["kv"] == 3 * 10 * 2 * 2 * 1 * 4 * 4


def test_a_failed_run_says_why_in_one_line(tmp_path):
    """A kill without a timeout is the out-of-memory killer (with the peak it reached); a
    timeout says so; anything else gives the exit code and the log's last line."""
    from tunesmith.bench.run import failure

    log = tmp_path / "log.txt"
    log.write_text("step 1\nValueError: bad key\n")
    base = {"returncode": -9, "peak_rss_mb": 24_112.2, "timed_out": False}
    assert failure(base, 3600, log).startswith("killed (SIGKILL) at 24,112 MiB peak RSS: out of memory")
    assert failure({**base, "timed_out": True}, 3600, log).startswith("timed out after 3600 s")
    assert failure({**base, "returncode": 1}, 3600, log).startswith("exit 1: ValueError: bad key")
