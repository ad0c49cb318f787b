"""Labelled-only LM head + loss: same loss and gradients as the standard path."""

from __future__ import annotations

import pytest
import torch

from tunesmith.data.collate import PadCollator
from tunesmith.data.packing import PackingCollator
from tunesmith.train.fast_loss import enable_fast_loss, labelled_loss, supports_fast_loss

from .test_packing import rows, tiny_llama


def lora(model):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(3)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                            init_lora_weights="gaussian"))
    return peft.double()


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("collate", ["pad", "pack"])
@pytest.mark.parametrize("chunk", [None, 7])
def test_fast_loss_matches_standard_on_peft_llama(collate, chunk):
    model = lora(tiny_llama("sdpa"))
    assert supports_fast_loss(model)
    feats = rows(seed=4)
    batch = (PadCollator(0) if collate == "pad" else PackingCollator(0))(feats)
    ref = model(**batch).loss
    ref_grads = grads(model, ref)
    fast = labelled_loss(model, batch, chunk=chunk)
    fast_grads = grads(model, fast)
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-7)  # both reduce in fp32
    assert ref_grads.keys() == fast_grads.keys() and any("lora_A" in k for k in ref_grads)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-5, atol=1e-8, msg=name)


def test_num_items_divisor_matches_hf():
    model = tiny_llama("sdpa")
    batch = PadCollator(0)(rows(seed=5))
    n = torch.tensor(1000)
    torch.testing.assert_close(labelled_loss(model, batch, n),
                               model(**batch, num_items_in_batch=n).loss)


def test_softcapped_models_keep_standard_path():
    model = tiny_llama("sdpa")
    model.config.final_logit_softcapping = 30.0
    assert not supports_fast_loss(model)


def test_enabled_forward_through_peft_matches_and_eval_keeps_logits():
    base = tiny_llama("sdpa")
    model = lora(base)
    batch = PackingCollator(0)(rows(seed=6))
    ref = model(**batch).loss
    ref_grads = grads(model, ref)
    assert enable_fast_loss(base, chunk=16)
    out = model(**batch)
    assert out.logits is None
    fast_grads = grads(model, out.loss)
    torch.testing.assert_close(out.loss, ref, rtol=1e-6, atol=1e-7)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-5, atol=1e-8, msg=name)
    model.eval()
    assert model(**batch).logits is not None
    assert not enable_fast_loss(base)  # idempotent


@pytest.mark.parametrize("chunk", [None, 5])
def test_trainable_head_takes_the_unfused_path_with_equal_grads(chunk):
    from tunesmith.train.fast_loss import fusable_head

    model = tiny_llama("sdpa").double()  # full fine-tuning: the head's weight has a gradient
    assert not fusable_head(model.get_output_embeddings())
    batch = PackingCollator(0)(rows(seed=8))
    ref = model(**batch).loss
    ref_grads = grads(model, ref)
    fast = labelled_loss(model, batch, chunk=chunk)
    fast_grads = grads(model, fast)
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-7)
    assert "lm_head.weight" in ref_grads or "model.embed_tokens.weight" in ref_grads
    for name, grad in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-5, atol=1e-8, msg=name)


def test_fused_head_in_bf16_matches_standard_within_bf16_rounding():
    from tunesmith.train.fast_loss import fusable_head, head_loss_sum

    torch.manual_seed(0)
    head = torch.nn.Linear(32, 500, bias=False).to(torch.bfloat16).requires_grad_(False)
    assert fusable_head(head)
    hidden = torch.randn(37, 32, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.randint(0, 500, (37,))
    ref = torch.nn.functional.cross_entropy(head(hidden).float(), targets, reduction="sum") / 37
    (ref_grad,) = torch.autograd.grad(ref, hidden)
    fused = head_loss_sum(head, hidden, targets, chunk=8) / 37  # the fused path
    (fused_grad,) = torch.autograd.grad(fused, hidden)
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_grad.float(), ref_grad.float(), rtol=2e-2, atol=1e-4)
