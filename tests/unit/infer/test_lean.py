"""The lean decoder (infer/lean.py): the model's own arithmetic with fused, prepacked weights."""

import pytest
import torch

from tunesmith.infer import lean
from tunesmith.infer.engine import GenParams
from tunesmith.infer.hf import HFEngine

PROMPTS = [[{"role": "user", "content": "Hi"}],
           [{"role": "user", "content": "Tell me a long story about three cats and a dog."}],
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]]


def tiny(family: str, tokenizer, seed: int = 0):
    """A random 2-layer model of ``family`` (biases, per-head norms as the family has them)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    extra = {"llama": {"attention_bias": True, "mlp_bias": False},
             "qwen3": {"head_dim": 16}}.get(family, {})
    config = AutoConfig.for_model(family, vocab_size=len(tokenizer), hidden_size=32,
                                  intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, max_position_embeddings=512,
                                  tie_word_embeddings=family == "qwen2", rms_norm_eps=1e-5,
                                  pad_token_id=tokenizer.pad_token_id, **extra)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    for name, param in model.named_parameters():  # biases and norm weights that matter
        if name.endswith("bias") or "norm" in name:
            torch.nn.init.normal_(param, mean=1.0 if "norm" in name else 0.0, std=0.2)
    return model.eval()


def with_lora(model, seed: int = 1, **kw):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  **kw))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.3)
    return peft_model.eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def engine(model, tokenizer, use_lean: bool) -> HFEngine:
    from tunesmith.data.templates import get_template

    eng = HFEngine(model, tokenizer, get_template("auto", tokenizer))
    eng.lean = lean.build(model)[0] if use_lean else None
    return eng


def step_logits(eng, prompts, steps: int) -> list[torch.Tensor]:
    """Logits of a prefill of every prompt, then of ``steps`` greedy decode steps."""
    from tunesmith.infer.batching import Job

    decoder = eng.decoder(len(prompts))
    decoder.add([Job(eng.encode(p), GenParams(max_new_tokens=steps + 1)) for p in prompts])
    seen, forward = [], decoder._forward
    decoder._forward = lambda *a: seen.append(forward(*a)) or seen[-1]
    for _ in range(steps + 1):
        decoder.step()
    return seen


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3"])
def test_lean_logits_and_tokens_equal_the_models_own(family, tokenizer):
    model = with_lora(tiny(family, tokenizer))
    ours, theirs = engine(model, tokenizer, True), engine(model, tokenizer, False)
    assert ours.lean is not None
    for a, b in zip(step_logits(ours, PROMPTS, 6), step_logits(theirs, PROMPTS, 6)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    params = GenParams(max_new_tokens=24)
    got = ours.batch_generate(PROMPTS, params)
    want = theirs.batch_generate(PROMPTS, params)
    assert [c.token_ids for c in got] == [c.token_ids for c in want]
    assert all(len(c.token_ids) for c in got)


def test_bf16_logits_stay_within_bf16_rounding_of_the_models_own(tokenizer):
    """In bf16 the fused kernels round differently, so only closeness is expected."""
    model = with_lora(tiny("qwen2", tokenizer)).to(torch.bfloat16)
    ours, theirs = engine(model, tokenizer, True), engine(model, tokenizer, False)
    for a, b in zip(step_logits(ours, PROMPTS, 4), step_logits(theirs, PROMPTS, 4)):
        scale = b.abs().max()
        assert (a - b).abs().max() <= 0.03 * scale + 0.02
        assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.6


def test_adapter_is_folded_into_copies_and_the_model_is_untouched(tokenizer):
    model = with_lora(tiny("llama", tokenizer))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    forward = lean.build(model)[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    merged = with_lora(tiny("llama", tokenizer)).merge_and_unload()
    plain = lean.build(merged)[0]
    for ours, ref in zip(forward.layers, plain.layers):
        for part in ("qkv", "o", "gate_up", "down"):
            a, b = getattr(ours, part), getattr(ref, part)
            x = torch.randn(3, 32 if part != "down" else 64)
            if part == "o":
                x = torch.randn(3, 32)
            torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=1e-5)


def test_the_heads_copy_is_kept_until_its_weight_changes(tokenizer):
    model = with_lora(tiny("llama", tokenizer))
    keep: dict = {}
    first = lean.build(model, keep)[0]
    second = lean.build(model, keep)[0]
    assert second.head is first.head  # adapter-free and unchanged: reused
    assert second.layers[0].qkv is not first.layers[0].qkv  # adapted layers: copied again
    with torch.no_grad():
        model.get_base_model().lm_head.weight.mul_(2.0)  # in place: a new version
    third = lean.build(model, keep)[0]
    assert third.head is not first.head
    x = torch.randn(2, 32)
    torch.testing.assert_close(third.head(x), first.head(x) * 2.0, atol=1e-4, rtol=1e-4)


def test_models_it_does_not_cover_run_their_own_forward(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2))
    forward, why = lean.build(gpt2)
    assert forward is None and "model type 'gpt2'" in why
    dora = with_lora(tiny("llama", tokenizer), use_dora=True)
    forward, why = lean.build(dora)
    assert forward is None and "DoRA" in why
    eng = engine(dora, tokenizer, True)  # falls back: the engine still generates
    assert eng.lean is None
    assert eng.batch_generate(PROMPTS[:1], GenParams(max_new_tokens=5))[0].token_ids


def test_turned_off_or_without_room_for_a_copy(tokenizer, monkeypatch):
    model = tiny("llama", tokenizer)
    monkeypatch.setenv("TUNESMITH_LEAN", "0")
    assert lean.choose(model)[0] is None
    monkeypatch.delenv("TUNESMITH_LEAN")
    monkeypatch.setattr("tunesmith.hardware.available_memory_mb", lambda: 1.0)
    forward, why = lean.choose(model)
    assert forward is None and "does not fit" in why
