"""Rollouts: the HF engine around the training model returns token ids ending at end-of-turn;
``infer_backend: vllm`` pushes the policy's weights (LoRA merged) into the vLLM copy before each
generation (vllm itself is mocked: no GPU here)."""

import sys
import types

import pytest
import torch

from tunesmith.infer.engine import GenParams
from tunesmith.train.rollout import build_sampler, vllm_weights


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.1)
    return model


def _cfg(backend="hf"):
    from tunesmith.config import load_config

    return load_config(None, {"infer_backend": backend})


def test_hf_sampler_generates_token_ids_and_restores_train_mode(lora_model, tiny_model_dir):
    from transformers import AutoTokenizer

    from tunesmith.data.templates import get_template

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    sampler = build_sampler(_cfg(), lora_model, tokenizer, get_template("auto", tokenizer))
    lora_model.train()
    convs = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "two plus two"}]]
    rollout = sampler.sample(convs, 3, GenParams(max_new_tokens=5, temperature=1.0, seed=0))
    assert lora_model.training
    assert len(rollout.completion_ids) == 6 and rollout.prompt_ids[0] == rollout.prompt_ids[2]
    assert rollout.prompt_ids[3] == sampler.encode(convs[1])
    for ids, truncated in zip(rollout.completion_ids, rollout.truncated):
        assert 1 <= len(ids) <= 5
        assert truncated == (len(ids) == 5 and ids[-1] not in sampler.engine.eos_ids)


def test_vllm_weights_are_merged_under_base_names(lora_model):
    before = {n: p.detach().clone() for n, p in lora_model.named_parameters()}
    pushed = dict((name, t.clone()) for name, t in vllm_weights(lora_model))
    assert not any("lora" in n or n.startswith("base_model") for n in pushed)
    q = "model.layers.0.self_attn.q_proj.weight"
    layer = lora_model.base_model.model.model.layers[0].self_attn.q_proj
    delta = (layer.lora_B["default"].weight @ layer.lora_A["default"].weight) * layer.scaling["default"]
    assert torch.allclose(pushed[q], before[f"base_model.model.{q}".replace(
        "q_proj.weight", "q_proj.base_layer.weight")] + delta, atol=1e-6)
    after = dict(lora_model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)  # unmerged again


def test_vllm_sampler_syncs_weights_before_generating(lora_model, tiny_model_dir, monkeypatch):
    from transformers import AutoTokenizer

    from tunesmith.data.templates import get_template

    calls = []

    class FakeCore:  # vLLM's engine as infer/vllm.py drives it (add_request / step)
        def __init__(self):
            runner = types.SimpleNamespace(model=types.SimpleNamespace(
                load_weights=lambda pairs: calls.append(("load", pairs[0][0]))))
            worker = types.SimpleNamespace(model_runner=runner)
            self.model_executor = types.SimpleNamespace(driver_worker=worker)
            self.model_config = types.SimpleNamespace(max_model_len=512)
            self.pending = []

        def add_request(self, rid, prompt, sampling, lora_request=None):
            self.pending.append(rid)

        def step(self):
            calls.append(("generate", len(self.pending)))
            out = [types.SimpleNamespace(request_id=r, finished=True, outputs=[
                types.SimpleNamespace(token_ids=[300, 301, 2], logprobs=None, finish_reason="stop")])
                for r in self.pending]
            self.pending = []
            return out

        def abort_request(self, ids):
            pass

    class FakeLLM:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            self.llm_engine = FakeCore()

        def reset_prefix_cache(self):
            calls.append(("reset",))

    fake = types.ModuleType("vllm")
    fake.LLM = FakeLLM
    fake.SamplingParams = lambda **kw: kw
    fake.RequestOutputKind = types.SimpleNamespace(DELTA=1)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(key, "0" if key != "MASTER_ADDR" else "127.0.0.1")  # restored after
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    cfg = _cfg("vllm")
    cfg.model.model_name_or_path = str(tiny_model_dir)
    sampler = build_sampler(cfg, lora_model, tokenizer, get_template("auto", tokenizer))
    rollout = sampler.sample([[{"role": "user", "content": "hi"}]], 2,
                             GenParams(max_new_tokens=4, temperature=1.0))
    assert sampler.engine.llm.kwargs["distributed_executor_backend"] == "external_launcher"
    loads = [c for c in calls if c[0] == "load"]
    assert loads and calls.index(("reset",)) < calls.index(("generate", 2))
    assert calls.index(loads[-1]) < calls.index(("generate", 2))
    assert rollout.completion_ids == [[300, 301, 2], [300, 301, 2]]
    assert rollout.texts[0] == rollout.texts[1] == tokenizer.decode([300, 301])


def test_packed_batch_gives_the_padded_log_probs_and_gradients(lora_model):
    from tunesmith.train.rollout_batch import pack_rollout, pad_rollout, rollout_batch

    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(10, 900, (n,), generator=gen).tolist() for n in (4, 9, 14, 14)]
    completions = [torch.randint(10, 900, (n,), generator=gen).tolist() for n in (2, 3, 1, 6)]
    padded, packed = pad_rollout(prompts, completions, 0), pack_rollout(prompts, completions, 0)
    assert packed["packed_ids"].shape[0] < 4  # short sequences share a bin
    assert torch.equal(packed["completion_ids"], padded["completion_ids"])
    lora_model.eval()
    _assert_same_logps_and_grads(lora_model, padded, packed)
    assert "input_ids" in rollout_batch(prompts, completions, 0, packing=False)
    assert "packed_ids" in rollout_batch(prompts, completions, 0, packing=True)


@pytest.mark.parametrize("kernel", ["sdpa", "hybrid"])
def test_shared_prompt_batch_gives_the_padded_log_probs_and_gradients(lora_model, kernel):
    from tunesmith.model.attention import register
    from tunesmith.train.rollout_batch import pad_rollout, share_prompts

    register()
    gen = torch.Generator().manual_seed(4)
    prompts = [torch.randint(10, 900, (n,), generator=gen).tolist() for n in (5, 9)]
    completions = [torch.randint(10, 900, (n,), generator=gen).tolist() for n in (3, 7, 1, 4, 6, 2)]
    rep = [p for p in prompts for _ in range(3)]
    padded, shared = pad_rollout(rep, completions, 0), share_prompts(rep, completions, 3, 0)
    assert shared["shared_ids"].shape == (2, 21)  # 5 + 3 + 7 + 1 and 9 + 4 + 6 + 2 (widest)
    base = lora_model.get_base_model()
    before = base.config._attn_implementation
    base.config._attn_implementation = kernel
    lora_model.eval()
    try:
        _assert_same_logps_and_grads(lora_model, padded, shared)
    finally:
        base.config._attn_implementation = before


def _assert_same_logps_and_grads(model, first: dict, second: dict) -> None:
    """Two layouts of the same rollouts: equal completion log-probs and LoRA gradients."""
    from tunesmith.train.policy_logps import completion_logps

    grads, values = [], []
    for batch in (first, second):
        model.zero_grad(set_to_none=True)
        logps = completion_logps(model, batch, temperature=0.7) * batch["completion_mask"]
        (logps * torch.linspace(-1, 1, logps.numel()).view_as(logps)).sum().backward()
        values.append(logps.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert torch.allclose(values[0], values[1], atol=1e-5)
    for name, g in grads[0].items():
        assert torch.allclose(g, grads[1][name], atol=1e-5), name


def test_merged_rollout_gives_the_same_model_and_restores_the_base_bit_for_bit(lora_model):
    from tunesmith.train.rollout import merged_adapter

    before = {n: p.detach().clone() for n, p in lora_model.named_parameters()}
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    lora_model.eval()
    with torch.no_grad():
        want = lora_model(ids).logits
        with merged_adapter(lora_model, True):
            layer = lora_model.base_model.model.model.layers[0].self_attn.q_proj
            assert layer.merged  # one matmul per layer while generating
            got = lora_model(ids).logits
        again = lora_model(ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert not layer.merged
    after = dict(lora_model.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in before.items())  # exact, not merge-unmerge
    assert torch.equal(again, want)


def test_rollout_merge_choice(lora_model, tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    from tunesmith import hardware
    from tunesmith.errors import ConfigError
    from tunesmith.train.rollout import choose_rollout_merge

    assert choose_rollout_merge(False, lora_model) == (False, "off (rollout_merge: false)")
    assert choose_rollout_merge(True, lora_model)[0]
    assert choose_rollout_merge("auto", lora_model)[0]
    monkeypatch.setattr(hardware, "available_memory_mb", lambda: 0.01)
    on, why = choose_rollout_merge("auto", lora_model)
    assert not on and "does not fit" in why
    full = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))  # no adapter to merge
    assert not choose_rollout_merge("auto", full)[0]
    with pytest.raises(ConfigError, match="rollout_merge: true needs"):
        choose_rollout_merge(True, full)
