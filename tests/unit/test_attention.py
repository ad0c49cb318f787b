"""The CPU ``hybrid`` attention gives sdpa's results on both of its paths."""

from __future__ import annotations

import pytest
import torch

from tunesmith.data.collate import PadCollator
from tunesmith.data.packing import PackingCollator
from tunesmith.model import attention
from tunesmith.model.attention import register

from .test_packing import loss_and_grads, rows, tiny_llama


@pytest.fixture(params=[192, 0], ids=["math-path", "sdpa-path"])
def short_kv(request, monkeypatch):
    monkeypatch.setattr(attention, "SHORT_KV", request.param)
    return request.param


@pytest.mark.parametrize("collate", ["pad", "pack"])
def test_hybrid_matches_sdpa_loss_and_grads(collate, short_kv):
    """Both paths give sdpa's loss and gradients (fp64; transformers' own eager and sdpa differ
    by the same ~1e-7 relative rounding)."""
    batch = (PadCollator(0) if collate == "pad" else PackingCollator(0))(rows(seed=11))
    loss, grads = loss_and_grads(tiny_llama(register()), batch)
    sdpa_loss, sdpa_grads = loss_and_grads(tiny_llama("sdpa"), batch)
    torch.testing.assert_close(loss, sdpa_loss, rtol=1e-10, atol=1e-12)
    for name, grad in sdpa_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-6, atol=1e-7, msg=name)


def test_hybrid_generation_with_cache_and_left_padding_matches_sdpa():
    ref, hyb = tiny_llama("sdpa"), tiny_llama(register())
    for m in (ref, hyb):
        m.config.use_cache = True
        m.generation_config.pad_token_id = 0
        m.eval()
    ids = torch.tensor([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = (ids != 0).long()
    kw = dict(max_new_tokens=6, do_sample=False, attention_mask=mask)
    assert torch.equal(hyb.generate(ids, **kw), ref.generate(ids, **kw))
    with torch.no_grad():  # real positions agree (a pad query attends to nothing either way)
        torch.testing.assert_close(hyb(ids, attention_mask=mask).logits[mask.bool()],
                                   ref(ids, attention_mask=mask).logits[mask.bool()])


def test_auto_picks_hybrid_on_cpu_and_keeps_explicit_choices():
    from tunesmith.model.load import attn_implementation

    assert attn_implementation("auto") == "hybrid"
    assert attn_implementation("eager") == "eager" and attn_implementation("sdpa") == "sdpa"


def test_adapter_inputs_as_is_switches_only_layers_that_cast_and_restores():
    from peft import IA3Config, LoraConfig, get_peft_model

    from tunesmith.train.model import adapter_inputs_as_is

    lora = get_peft_model(tiny_llama("sdpa"), LoraConfig(r=2, target_modules="all-linear"))
    casting = [m for m in lora.modules() if hasattr(m, "cast_input_dtype_enabled")]
    assert casting and all(m.cast_input_dtype_enabled for m in casting)
    with adapter_inputs_as_is(lora):
        assert not any(m.cast_input_dtype_enabled for m in casting)
    assert all(m.cast_input_dtype_enabled for m in casting)
    ia3 = get_peft_model(tiny_llama("sdpa"), IA3Config(target_modules=["k_proj", "down_proj"],
                                                      feedforward_modules=["down_proj"]))
    with adapter_inputs_as_is(ia3):  # IA3 layers have no switch: nothing to touch, no error
        out = ia3(torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]]))
    assert torch.isfinite(out.loss)


def test_overflowing_scores_fall_back_to_sdpa_with_grouped_heads():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from tunesmith.model.attention import hybrid_attention

    module = tiny_llama("sdpa").model.layers[0].self_attn  # 4 query heads over 2 kv heads
    q = torch.full((1, 4, 5, 8), 1e200, dtype=torch.float64)
    k = torch.full((1, 2, 5, 8), 1e200, dtype=torch.float64)
    v = torch.randn(1, 2, 5, 8, dtype=torch.float64)
    out, _ = hybrid_attention(module, q, k, v, None, scaling=0.35)
    ref, _ = sdpa_attention_forward(module, q, k, v, None, scaling=0.35)
    assert out.shape == (1, 5, 4, 8)
    torch.testing.assert_close(out, ref, equal_nan=True)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive"])
def test_decode_path_reads_grouped_heads_as_sdpa_does(mask_kind):
    """One query per row, grouped-query heads (9 on 3): the same output as sdpa with the keys
    and values repeated per head."""
    from transformers.integrations.sdpa_attention import repeat_kv

    from tunesmith.model.attention import decode_attention

    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 9, 1, 8, generator=g, dtype=torch.float64)
    k = torch.randn(2, 3, 11, 8, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, 11, 8, generator=g, dtype=torch.float64)
    keep = torch.rand(2, 1, 1, 11, generator=g) > 0.3
    keep[..., -1] = True
    mask = {"none": None, "bool": keep,
            "additive": torch.zeros(keep.shape, dtype=torch.float64).masked_fill(~keep, -1e30)}[mask_kind]
    want = torch.nn.functional.scaled_dot_product_attention(
        q, repeat_kv(k, 3), repeat_kv(v, 3), attn_mask=None if mask is None else mask, scale=0.3)
    got = decode_attention(q, k, v, mask, 0.3)
    torch.testing.assert_close(got, want.transpose(1, 2))


@pytest.mark.parametrize("length", [11, 600])  # fp32 math up to UPCAST_KV keys, bf16 beyond
def test_decode_path_in_bf16_is_the_exact_attention_to_bf16_precision(length):
    from transformers.integrations.sdpa_attention import repeat_kv

    from tunesmith.model.attention import UPCAST_KV, decode_attention

    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(2, heads, n, 8, generator=g, dtype=torch.float64)
               for heads, n in ((9, 1), (3, length), (3, length)))
    mask = torch.zeros(2, 1, 1, length, dtype=torch.float64)
    mask[0, ..., :3] = -1e30
    want = torch.nn.functional.scaled_dot_product_attention(
        q, repeat_kv(k, 3), repeat_kv(v, 3), attn_mask=mask, scale=0.3).transpose(1, 2)
    got = decode_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask.bfloat16(), 0.3)
    assert got.dtype == torch.bfloat16 and (length <= UPCAST_KV) == (length == 11)
    torch.testing.assert_close(got.double(), want, atol=2e-2, rtol=2e-2)


def test_packed_rows_run_per_sequence_and_other_masks_do_not(monkeypatch):
    """A packed batch's block-diagonal mask is replaced by one causal call per sequence (equal
    results: ``test_hybrid_matches_sdpa_loss_and_grads[pack-sdpa-path]``); any other mask (a
    preference batch's shared prompt, padding) keeps the masked call."""
    from tunesmith.model.attention import packed_segments

    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    seg = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    block = ((seg[:, None] == seg[None, :]) & torch.ones(9, 9, dtype=torch.bool).tril())[None, None]
    assert packed_segments(pos, block, 9, 9) == [[(0, 3, None), (3, 5, None), (5, 9, None)]]
    shared = block.clone()
    shared[0, 0, 5:, :3] = True  # the last sequence also sees the first: not what the ids say
    assert packed_segments(pos, shared, 9, 9) is None
    assert packed_segments(pos, None, 9, 9) is None and packed_segments(None, block, 9, 9) is None
    assert packed_segments(pos, block[..., :8], 9, 8) is None  # a cache: queries != keys

    calls = []
    real = attention.segment_attention
    monkeypatch.setattr(attention, "segment_attention",
                        lambda *a, **k: calls.append(max(map(len, a[3]))) or real(*a, **k))
    monkeypatch.setattr(attention, "SHORT_KV", 0)
    batch = PackingCollator(0)(rows(seed=11))
    loss_and_grads(tiny_llama(register()), batch)
    assert calls and max(calls) > 1, calls  # rows holding several sequences took the path


def test_shared_prompt_pairs_run_as_pieces_with_the_same_log_probs(tiny_model_dir, monkeypatch):
    """A preference batch (prompt, chosen, rejected seeing only the prompt) through the pieces:
    the same answer log-probs and gradients as the masked call."""
    from transformers import AutoModelForCausalLM

    from tunesmith.data.pair_collate import PairCollator
    from tunesmith.train.pref_logps import sequence_logps

    from .train.test_pair_collate import _pairs

    batch = PairCollator(0)(_pairs(n=3))
    plan = attention.packed_segments(batch["position_ids"], batch["mask_4d"],
                                     *batch["input_ids"].shape[1:] * 2)
    assert plan and any(prefix for row in plan for _, _, prefix in row)
    monkeypatch.setattr(attention, "SHORT_KV", 0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float64,
                                                 attn_implementation=register())
    results = []
    for use in (True, False):
        if not use:
            monkeypatch.setattr(attention, "packed_segments", lambda *a: None)
        model.zero_grad()
        logps, _ = sequence_logps(model, batch)
        logps.sum().backward()
        results.append((logps.detach(), [p.grad.clone() for p in model.parameters()
                                         if p.grad is not None]))
    (a, ga), (b, gb) = results
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-10)
