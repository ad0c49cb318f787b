"""stage: grpo: prompts data, reward functions (built-in, module:function, failures), the
num_iterations sampler, and tiny end-to-end runs (records, skipped steps, the stop limit)."""

import json
import math
import textwrap

import pytest
import torch

from tests.conftest import CHAT_ROWS, write_rows
from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.train.grpo_loss import group_advantages
from tunesmith.train.online_data import RepeatSampler
from tunesmith.train.rewards import (REWARDS, RewardBatch, RewardFailure, RewardFunction,
                                     build_rewards, score_batch)
from tunesmith.train.stages import check_stage, stage_params


def _batch(completions, answers=None, ids=None):
    n = len(completions)
    return RewardBatch([[{"role": "user", "content": f"q{i}"}] for i in range(n)], completions,
                       ids or [[1] * len(c.split()) for c in completions], answers or [None] * n)


def _params(**keys):
    cfg = load_config(None, {"stage": "grpo", "reward_funcs": "format_think", **keys})
    check_stage(cfg)
    return stage_params(cfg)


def test_builtin_rewards():
    p = _params(reward_regex=r"\d+", reward_contains="sky,blue", max_completion_length=8,
                length_penalty_cache=4)
    funcs = {f.name: f for f in build_rewards(p)}
    fmt = REWARDS.get("format_think").factory(p)
    assert fmt(_batch(["<think>add</think> 5", "<think>x</think>", "<think>", "5", "  <think>a"
                       "</think>b"])) == [1.0, 0.5, 0.25, 0.0, 1.0]
    exact = REWARDS.get("exact_answer").factory(p)
    assert exact(_batch(["<think>2+3</think>The answer is 5.", "6", "Paris.", "paris"],
                        ["5", "5", "Paris", None])) == [1.0, 0.0, 1.0, 0.0]
    assert REWARDS.get("regex").factory(p)(_batch(["a 12", "none"])) == [1.0, 0.0]
    assert REWARDS.get("contains").factory(p)(_batch(["blue sky", "sky", "x"])) == [1.0, 0.5, 0.0]
    pen = REWARDS.get("length_penalty").factory(p)
    assert pen(_batch(["a"] * 3, ids=[[1] * 4, [1] * 6, [1] * 8])) == [0.0, -0.5, -1.0]
    assert list(funcs) == ["format_think"]


def test_user_function_and_weights(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        def shout(prompts, completions, completion_ids, answer, **kw):
            return [float(c.isupper()) for c in completions]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    p = _params(reward_funcs="my_rewards:shout,format_think", reward_weights="2,0.5")
    funcs = build_rewards(p)
    assert [f.name for f in funcs] == ["my_rewards:shout", "format_think"]
    assert score_batch(funcs, _batch(["HI", "<think>a</think>b"])) == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize("keys,message", [
    ({"reward_funcs": "no_such_module_xyz:f"}, "cannot import module 'no_such_module_xyz'"),
    ({"reward_funcs": "math:no_such_fn"}, "module 'math' has no function 'no_such_fn'"),
    ({"reward_funcs": "format_thinks"}, "did you mean 'format_think'"),
    ({"reward_funcs": "regex"}, "'regex' needs reward_regex"),
    ({"reward_funcs": "regex", "reward_regex": "(unclosed"}, "reward_regex': not a valid pattern"),
    ({"reward_funcs": "format_think", "reward_weights": "1,2"}, "2 weights for 1 reward"),
    ({"reward_funcs": ""}, "stage: grpo needs rewards"),
    ({"num_generations": 1}, "num_generations': must be >= 2"),
    ({"loss_type": "ppo"}, "'ppo' is not one of grpo, dr_grpo, dapo"),
    ({"val_size": 0.1}, "no evaluation pass"),
    ({"method": "prefix"}, "does not train method 'prefix'"),
    ({"reward_model": "/nonexistent/rm"}, "has no value_head.safetensors"),
])
def test_config_refusals_before_loading(keys, message):
    cfg = load_config(None, {"stage": "grpo", "reward_funcs": "format_think", **keys})
    with pytest.raises(ConfigError, match=message):
        check_stage(cfg)


def test_grpo_key_under_sft_is_refused():
    with pytest.raises(ConfigError, match="'num_generations' is a parameter of stage grpo"):
        check_stage(load_config(None, {"num_generations": 4}))


def test_failing_reward_functions_name_function_and_sample():
    def raises_on_third(batch):
        if any("bad" in c for c in batch.completions):
            raise ValueError("cannot parse")
        return [0.0] * len(batch.completions)

    batch = _batch(["ok", "fine", "bad one", "ok"])
    cases = [(raises_on_third, r"'f' raised ValueError: cannot parse on sample 2 \(prompt 'q2', "
                               r"completion 'bad one'\)"),
             (lambda b: [1.0], "'f' returned 1 scores for 4 completions"),
             (lambda b: [0.0, math.nan, 0.0, 0.0], r"'f' returned nan for sample 1"),
             (lambda b: [0.0, None, 0.0, 0.0], r"'f' returned None for sample 1"),
             (lambda b: 3.0, "returned float, expected a list of 4 numbers")]
    for fn, message in cases:
        with pytest.raises(RewardFailure, match=message):
            score_batch([RewardFunction("f", fn)], batch)


def test_group_advantages():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5])
    adv = group_advantages(rewards, 2)
    assert torch.allclose(adv, torch.tensor([0.7071, -0.7071, 0.0, 0.0]), atol=1e-3)
    assert torch.equal(group_advantages(rewards, 2, "none"), torch.tensor([0.5, -0.5, 0.0, 0.0]))


def test_repeat_sampler_repeats_each_window():
    order = list(RepeatSampler(n=9, batch=2, window=4, repeats=2, seed=0))
    assert len(order) == 16  # 8 of 9 prompts (whole batches), each window twice
    assert order[:4] == order[4:8] and order[8:12] == order[12:16]
    assert len(set(order)) == 8
    assert len(list(RepeatSampler(n=9, batch=2, window=2, repeats=1, seed=0))) == 9
    sampler = RepeatSampler(n=9, batch=2, window=4, repeats=1, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == sorted(first)


def test_prompts_data_kind(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from tunesmith.data.load import load_data
    from tunesmith.train.stages import stage_template

    rows = [{"Question": "2+3?", "Complex_CoT": "add", "Response": "5"},
            {"Question": "x" * 4000, "Complex_CoT": "long", "Response": "1"}]
    data = write_rows(tmp_path / "r.json", rows)
    cfg = load_config(None, {"stage": "grpo", "reward_funcs": "exact_answer", "dataset": str(data),
                             "model_name_or_path": str(tiny_model_dir), "cutoff_len": 256})
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    loaded = load_data(cfg, tokenizer, stage_template(cfg, tokenizer), kind="prompts")
    [ex] = loaded.train
    assert ex.answer == "5" and ex.messages[-1] == {"role": "user", "content": "2+3?"}
    assert tokenizer.decode(ex.input_ids).endswith("<|im_start|>assistant\n")
    assert loaded.report.dropped == {"prompt_too_long": 1}


def _run(tiny_model_dir, tmp_path, monkeypatch, **keys):
    from tunesmith.train.run import run_training

    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "tiny_rewards.py").write_text(textwrap.dedent("""
        def longer(completions, **kw):
            return [len(c) / 100 for c in completions]

        def broken(completions, **kw):
            raise KeyError("answer")

        def one_group(prompts, completions, **kw):  # the other prompt's group scores alike
            first = prompts[0]
            return [len(c) / 100 if p == first else 0.5 for p, c in zip(prompts, completions)]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    data = write_rows(tmp_path / "chat.jsonl", CHAT_ROWS[:4])
    cfg = load_config(None, {
        "stage": "grpo", "model_name_or_path": str(tiny_model_dir), "dataset": str(data),
        "output_dir": str(tmp_path / "run"), "max_steps": 2, "learning_rate": 5e-2,
        "per_device_train_batch_size": 2, "logging_steps": 1, "save_strategy": "no",
        "dtype": "fp32", "lora_rank": 4, "num_generations": 3, "max_completion_length": 6,
        "beta": 0.04, "log_completions_steps": 1, "temperature": 1.0, **keys})
    check_stage(cfg)
    return run_training(cfg), tmp_path / "run"


def test_reward_model_scores_the_last_token(tiny_rm_dir, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.data.templates import get_template
    from tunesmith.train.rewards.model import load_reward_scorer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    template = get_template("auto", tokenizer)
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32"})
    func = load_reward_scorer(str(tiny_rm_dir), cfg, tokenizer, template)
    batch = _batch(["a short one", "a much longer completion than the first"])
    scores = func.score(batch)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_rm_dir), dtype=torch.float32)
    from safetensors.torch import load_file

    head = load_file(str(tiny_rm_dir / "value_head.safetensors"))["v_head.weight"]
    for prompt, completion, score in zip(batch.prompts, batch.completions, scores):
        text = template.render(tokenizer, [*prompt, {"role": "assistant", "content": completion}])
        ids = tokenizer(text.rstrip(" \n"), add_special_tokens=False, return_tensors="pt")
        hidden = model(**ids, output_hidden_states=True).hidden_states[-1][0, -1]
        assert abs(float(hidden @ head[0]) - score) < 1e-4
    assert tokenizer.decode(ids["input_ids"][0, -1]) == "<|im_end|>"


def test_tiny_grpo_run_records(tiny_model_dir, tiny_rm_dir, tmp_path, monkeypatch):
    metrics, out = _run(tiny_model_dir, tmp_path, monkeypatch,
                        reward_funcs="tiny_rewards:longer,format_think",
                        reward_model=str(tiny_rm_dir), reward_weights="1,1,0.1")
    logs = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "loss" in r]
    assert len(steps) == 2
    for key in ("reward", "reward_std", "rewards/tiny_rewards:longer/mean",
                "rewards/format_think/std", "rewards/reward_model/mean", "kl", "completions/mean_length",
                "clip_ratio/region_mean"):
        assert all(key in r for r in steps), key
    assert steps[-1]["kl"] > 0  # the adapter moved away from the reference after step 1
    rows = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 3 and {"prompt", "completion", "rewards", "advantage"} <= set(rows[0])
    for name in ("training_rewards.png", "training_reward.png", "training_kl.png",
                 "adapter_model.safetensors"):
        assert (out / name).is_file(), name
    assert metrics["num_input_tokens_seen"] > 0


def test_failing_reward_skips_and_counts_then_stops(tiny_model_dir, tmp_path, monkeypatch,
                                                    capfd):
    from tunesmith.train.grpo_trainer import RewardError

    metrics, out = _run(tiny_model_dir, tmp_path, monkeypatch,
                        reward_funcs="tiny_rewards:broken,format_think")
    err = capfd.readouterr().err
    assert "step 1 skipped: reward function 'tiny_rewards:broken' raised KeyError" in err
    last = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()
            if '"loss"' in line][-1]
    assert last["reward_skipped_steps"] == 2
    with pytest.raises(RewardError, match="1 steps skipped for failing reward functions"):
        _run(tiny_model_dir, tmp_path, monkeypatch, reward_funcs="tiny_rewards:broken",
             reward_error_limit=0, output_dir=str(tmp_path / "run2"))


def test_resume_continues_the_same_run(tiny_model_dir, tmp_path, monkeypatch):
    """Checkpoint at step 2, resume: steps 3-4 sample the same completions and log the same
    rewards and losses as the uninterrupted run (RNG state and prompt order are restored)."""
    import shutil

    keys = {"reward_funcs": "tiny_rewards:longer", "max_steps": 4, "save_strategy": "steps",
            "save_steps": 2, "beta": 0.0}
    _run(tiny_model_dir, tmp_path / "a", monkeypatch, **keys)
    full = tmp_path / "a" / "run"
    part = tmp_path / "b"
    shutil.copytree(full, part)
    shutil.rmtree(part / "checkpoint-4")
    _run(tiny_model_dir, tmp_path / "a", monkeypatch, **keys, output_dir=str(part),
         resume_from_checkpoint="auto")

    def steps(out):
        rows = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
        return {r["step"]: (r["reward"], r["loss"]) for r in rows if "reward" in r}

    a, b = steps(full), steps(part)
    assert set(a) == set(b) == {1, 2, 3, 4}
    for step in (3, 4):
        assert a[step][0] == pytest.approx(b[step][0], abs=1e-6)
        assert a[step][1] == pytest.approx(b[step][1], abs=1e-6)


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo"])
def test_skipping_zero_advantage_groups_changes_nothing(tiny_model_dir, tmp_path, monkeypatch,
                                                        loss_type):
    """beta 0: a group whose completions scored alike is not run forward or backward; losses,
    gradient norms and the adapter equal the run that computes every row (and a step where no
    group is live still steps the optimizer with zero gradients)."""
    from safetensors.torch import load_file

    import tunesmith.train.grpo_trainer as trainer

    def run(name, **keys):
        _run(tiny_model_dir, tmp_path, monkeypatch, beta=0.0, loss_type=loss_type,
             output_dir=str(tmp_path / name), **keys)
        logs = [json.loads(x) for x in (tmp_path / name / "trainer_log.jsonl").read_text()
                .splitlines() if '"loss"' in x]
        return logs, load_file(tmp_path / name / "adapter_model.safetensors")

    skip, skip_adapter = run("skip", reward_funcs="tiny_rewards:one_group")
    assert [r["frac_rows_skipped"] for r in skip] == [0.5, 0.5]
    monkeypatch.setattr(trainer, "live_groups", lambda adv, g, beta: list(range(adv.numel())))
    full, full_adapter = run("full", reward_funcs="tiny_rewards:one_group")
    for a, b in zip(skip, full):
        for key in ("loss", "grad_norm", "reward", "clip_ratio/region_mean"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-10), key
    assert skip[0]["grad_norm"] > 0
    assert all(torch.allclose(skip_adapter[k], full_adapter[k], atol=1e-6) for k in full_adapter)
    monkeypatch.undo()
    alike, _ = run("alike", reward_funcs="format_think")  # a tiny model never writes <think>
    assert [(r["frac_rows_skipped"], r["loss"], r["grad_norm"]) for r in alike] == [(1.0, 0, 0)] * 2
