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
