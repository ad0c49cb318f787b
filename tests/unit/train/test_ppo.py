"""stage: ppo: GAE, whitening, the clipped losses and the adaptive KL against hand-written
references of TRL 0.9's PPOTrainer formulas (LLaMA-Factory's PPO), LLaMA-Factory's keys, and a
tiny end-to-end run against a reward model."""

import json

import pytest
import torch

from tests.conftest import CHAT_ROWS, write_rows
from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.train.ppo_loss import (AdaptiveKL, RunningMoments, gae, ppo_loss, token_rewards,
                                      whiten)
from tunesmith.train.stages import check_stage


def _gae_reference(values, rewards, gamma=1.0, lam=0.95):
    """GAE for one unpadded sequence, written as the textbook loop."""
    adv, last = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        next_v = values[t + 1] if t + 1 < len(rewards) else 0.0
        last = rewards[t] + gamma * next_v - values[t] + gamma * lam * last
        adv[t] = last
    return adv


def test_gae_matches_the_loop_and_ignores_padding():
    values = torch.tensor([[0.5, 0.2, -0.1, 0.0], [0.3, 0.1, 9.0, 9.0]])
    rewards = torch.tensor([[0.0, 0.1, 1.0, 0.0], [-0.2, 2.0, 5.0, 5.0]])
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0]])
    adv, returns = gae(values, rewards, mask)
    raw = [_gae_reference([0.5, 0.2, -0.1], [0.0, 0.1, 1.0]), _gae_reference([0.3, 0.1], [-0.2, 2.0])]
    flat = torch.tensor(raw[0] + raw[1])
    expected = (flat - flat.mean()) / flat.std()  # whitened over the 5 real tokens (unbiased)
    got = torch.cat([adv[0, :3], adv[1, :2]])
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(returns[0, :3], torch.tensor(raw[0]) + values[0, :3], atol=1e-6)
    assert adv[1, 2:].abs().sum() == 0


def test_token_rewards_put_the_score_on_the_last_token():
    logps = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, 0.0]])
    ref = torch.tensor([[-1.5, -2.0, -0.5], [-0.5, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    rewards, kl = token_rewards(torch.tensor([2.0, -1.0]), logps, ref, mask, 0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, 0, 0], [-0.5, 0, 0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0, 2.0], [0.05, -1.0, 0]]))


def test_ppo_loss_clips_policy_and_value():
    mask = torch.ones(1, 3)
    old = torch.zeros(1, 3)
    logps = torch.tensor([[0.5, -0.5, 0.0]])  # ratios e^0.5 (clipped at 1.2), e^-0.5, 1
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    values, old_v = torch.tensor([[1.0, 0.0, 0.0]]), torch.zeros(1, 3)
    returns = torch.tensor([[0.0, 1.0, 0.0]])
    parts = ppo_loss(logps, old, values, old_v, adv, returns, mask)
    r = torch.exp(logps[0])
    pg = [max(-1 * r[0], -1 * 1.2), max(1 * r[1], 1 * 0.8), -2.0]
    vf = [max(1.0, 0.04), max(1.0, 1.0), 0.0]
    assert abs(parts.policy_loss - sum(pg) / 3) < 1e-6
    assert abs(parts.value_loss - 0.5 * sum(vf) / 3) < 1e-6
    assert abs(float(parts.loss) - (sum(pg) / 3 + 0.1 * 0.5 * sum(vf) / 3)) < 1e-6
    assert parts.clip_frac == pytest.approx(2 / 3)  # TRL counts pg2 > pg1 (both tokens here)


def test_adaptive_kl_and_running_moments():
    kl = AdaptiveKL(target=6.0)
    kl.update(12.0, n_steps=100)  # error clipped to 0.2
    assert kl.value == pytest.approx(0.2 * (1 + 0.2 * 100 / 10000))
    m = RunningMoments()
    a, b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0])
    m.update(a)
    m.update(b)
    both = torch.cat([a, b])
    assert m.mean == pytest.approx(float(both.mean())) and m.std == pytest.approx(float(both.std()))
    x = torch.tensor([[1.0, 2.0, 100.0]])
    assert torch.allclose(whiten(x, torch.tensor([[1.0, 1, 0]]))[0, :2], torch.tensor([-0.7071, 0.7071]),
                          atol=1e-3)


@pytest.mark.parametrize("keys,message", [
    ({}, "stage: ppo needs reward_model"),
    ({"reward_model": "/nonexistent"}, "has no value_head.safetensors"),
    ({"reward_model_type": "api"}, "'api' is not supported"),
    ({"ppo_epochs": 0}, "ppo_epochs': must be a positive integer"),
])
def test_ppo_config_refusals(keys, message):
    with pytest.raises(ConfigError, match=message):
        check_stage(load_config(None, {"stage": "ppo", **keys}))


def test_tiny_ppo_run(tiny_model_dir, tiny_rm_dir, tmp_path):
    from tunesmith.train.run import run_training

    data = write_rows(tmp_path / "chat.jsonl", CHAT_ROWS[:4])
    cfg = load_config(None, {
        "stage": "ppo", "model_name_or_path": str(tiny_model_dir), "dataset": str(data),
        "reward_model": str(tiny_rm_dir), "reward_model_type": "full",
        "output_dir": str(tmp_path / "run"), "learning_rate": 1e-2, "max_steps": 4,
        "per_device_train_batch_size": 2, "ppo_epochs": 2, "ppo_score_norm": True,
        "ppo_whiten_rewards": True, "logging_steps": 1, "save_strategy": "no", "dtype": "fp32",
        "lora_rank": 4, "max_new_tokens": 6, "temperature": 1.0})
    check_stage(cfg)
    run_training(cfg)
    logs = [json.loads(line) for line in (tmp_path / "run" / "trainer_log.jsonl").read_text()
            .splitlines() if '"loss"' in line]
    assert len(logs) == 4
    for key in ("reward", "rewards/reward_model/mean", "objective/kl", "objective/kl_coef",
                "ppo/loss/value", "ppo/policy/clipfrac", "completions/mean_length"):
        assert all(key in r for r in logs[::2]), key  # rollouts on steps 1 and 3, reused on 2, 4
    assert logs[-1]["ppo/policy/approxkl"] > 0  # the second pass trains against moved weights
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_ppo_against_an_rm_stage_adapter(tiny_model_dir, tmp_path):
    """The pipeline: stage: rm leaves a LoRA + value_head.safetensors; stage: ppo scores with it
    (reward_model_type: lora) while training its own value head."""
    from tests.unit.train.test_pref_train import PAIRS
    from tunesmith.train.run import run_training

    common = {"model_name_or_path": str(tiny_model_dir), "learning_rate": 1e-2, "max_steps": 2,
              "logging_steps": 1, "save_strategy": "no", "dtype": "fp32", "lora_rank": 4,
              "per_device_train_batch_size": 2}
    rm = tmp_path / "rm"
    run_training(load_config(None, {**common, "stage": "rm", "output_dir": str(rm),
                                    "dataset": str(write_rows(tmp_path / "p.jsonl", PAIRS)),
                                    "cutoff_len": 64}))
    assert (rm / "value_head.safetensors").is_file() and (rm / "adapter_config.json").is_file()
    cfg = load_config(None, {**common, "stage": "ppo", "reward_model": str(rm),
                             "output_dir": str(tmp_path / "ppo"), "ppo_epochs": 1,
                             "dataset": str(write_rows(tmp_path / "c.jsonl", CHAT_ROWS[:4])),
                             "max_new_tokens": 5, "temperature": 1.0})
    check_stage(cfg)
    run_training(cfg)
    logs = [json.loads(line) for line in (tmp_path / "ppo" / "trainer_log.jsonl").read_text()
            .splitlines() if '"loss"' in line]
    assert len(logs) == 2 and all("rewards/reward_model/mean" in r for r in logs)
