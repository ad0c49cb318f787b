"""bench W5 (GRPO): tunesmith's config and TRL's spec describe the same run, and the report
reads the children's timing records."""

from tunesmith.bench.grpo import W5, aggregate, format_report, ours_config, ratios, summarize, w5_spec
from tunesmith.config import load_config
from tunesmith.train.stages import check_stage, stage_params


def test_ours_and_trl_get_the_same_settings(tmp_path):
    spec = w5_spec("smollm2-135m", 0, "fp32")
    assert len(spec["prompts"]) == 16 and spec["steps"] == 8
    cfg = load_config(None, ours_config(spec, tmp_path))
    check_stage(cfg)
    p = stage_params(cfg)
    assert (cfg.method.stage, p.num_generations, p.max_completion_length, p.beta, p.loss_type) == \
        ("grpo", W5["num_generations"], W5["max_completion_length"], 0.0, "dapo")
    assert cfg.train.per_device_train_batch_size == W5["prompts_per_step"]
    assert (cfg.infer.temperature, cfg.infer.top_p, cfg.infer.top_k) == (1.0, 1.0, 0)
    assert cfg.train.gradient_checkpointing in (True, "true", "on")


def test_report_from_timing_records():
    outer = {"t_launch": 0.0, "t_exit": 100.0, "peak_rss_mb": 2000.0}
    runs = [summarize("tunesmith", outer, {"t_begin": 10, "t_end": 50, "steps": 8,
                                           "tokens_seen": 4000}),
            summarize("trl", {**outer, "peak_rss_mb": 2500.0},
                      {"t_begin": 10, "t_end": 90, "steps": 8, "tokens_seen": 4000})]
    tools = aggregate(runs)
    assert tools["tunesmith"]["tokens_per_s"] == 100.0 and tools["trl"]["tokens_per_s"] == 50.0
    assert ratios(tools) == {"tokens/s, tunesmith / TRL": 2.0, "peak RSS, tunesmith / TRL": 0.8}
    text = format_report({"spec": {"steps": 8, "dtype": "fp32"}, "tools": tools,
                          "ratios": ratios(tools), "runs": runs})
    assert "| tunesmith | 1 | 100.0 |" in text and "tokens/s, tunesmith / TRL: 2.0" in text


def test_trls_reward_copies_score_as_ours(monkeypatch):
    """Both tools train on the same rewards: TRL's child carries copies of format_think and
    the length reward (it cannot import tunesmith)."""
    import importlib
    from pathlib import Path

    import tunesmith.bench as bench
    from tunesmith.bench.w5_reward import length
    from tunesmith.train.rewards import REWARDS, RewardBatch

    monkeypatch.syspath_prepend(str(Path(bench.__file__).parent / "peer_scripts"))
    child = importlib.import_module("trl_grpo_child")
    texts = ["<think>8 minus 4 is 4.</think>4", "The answer is 4.", "<think>x", "y" * 300, ""]
    ours = REWARDS.get("format_think").factory(None)(
        RewardBatch([[]] * len(texts), texts, [[1]] * len(texts), [None] * len(texts)))
    messages = [[{"role": "assistant", "content": t}] for t in texts]
    assert child.format_think(messages) == ours
    assert child.length(messages) == length(texts) == [31 / 256, 16 / 256, 8 / 256, 1.0, 0.0]
    assert len(set(length(texts[:3]))) == 3  # a group's completions differ: advantages are not 0


def test_report_says_how_many_loss_rows_tunesmith_skipped(tmp_path):
    from tunesmith.bench.grpo import skipped_rows

    log = tmp_path / "trainer_log.jsonl"
    log.write_text('{"step": 1, "frac_rows_skipped": 0.5}\n{"step": 2, "frac_rows_skipped": 0.0}\n'
                   '{"train_runtime": 3}\n')
    assert skipped_rows(log) == 0.25 and skipped_rows(tmp_path / "none.jsonl") is None
    run = {"tool": "tunesmith", "tokens_per_s": 1.0, "s_per_step": 1.0, "peak_rss_mb": 1.0,
           "rows_skipped": 0.25}
    text = format_report({"spec": {"steps": 8, "dtype": "fp32"}, "tools": aggregate([run]),
                          "runs": [run]})
    assert "skipped (all of their group scored alike" in text and "25% per run" in text


def test_lf_packed_rows_are_padded_to_eight_in_every_column(monkeypatch):
    """LLaMA-Factory 0.9.5's collator pads input_ids to a multiple of 8 but not position_ids:
    the bench pads every column of its packed sequences first (the real tokens unchanged)."""
    import importlib
    from pathlib import Path

    import tunesmith.bench as bench

    monkeypatch.syspath_prepend(str(Path(bench.__file__).parent / "peer_scripts"))
    lf_child = importlib.import_module("lf_child")
    packed = {"input_ids": [[5, 6, 7, 9, 0]], "attention_mask": [[1, 1, 2, 2, 0]],
              "position_ids": [[0, 1, 0, 1, 0]], "labels": [[-100, 6, -100, 9, -100]],
              "packing_params": [{"sequence_boundaries": [0, 2, 4, 5], "right_padding_length": 1}]}
    out = lf_child.pad_to_eight(packed, pad_id=0)
    assert {len(v[0]) for k, v in out.items() if k != "packing_params"} == {8}
    assert out["attention_mask"][0][:5] == [1, 1, 2, 2, 0] and out["labels"][0][5:] == [-100] * 3
    assert out["packing_params"][0] == {"sequence_boundaries": [0, 2, 4, 8],
                                        "right_padding_length": 4}
