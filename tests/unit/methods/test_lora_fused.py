"""The fused LoRA layer (methods/lora_fused.py) computes what peft's lora.Linear computes."""

from __future__ import annotations

import copy

import torch

from tunesmith.methods.lora_fused import enable_fused_lora


def _pair(tiny_model_dir, **lora):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", **lora)
    plain = get_peft_model(base, config)
    for name, p in plain.named_parameters():
        if "lora_B" in name:  # non-zero B: the update and every gradient are exercised
            p.data.normal_(0, 0.05)
    fused = copy.deepcopy(plain)
    return plain, fused, enable_fused_lora(fused)


def _grads(model, batch, autocast: bool = False):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _batch():
    torch.manual_seed(1)
    ids = torch.randint(5, 400, (3, 17))
    return {"input_ids": ids, "labels": ids.clone()}


def test_loss_and_every_adapter_gradient_equal_peft(tiny_model_dir):
    plain, fused, swapped = _pair(tiny_model_dir)
    assert swapped == 2 * 7  # q k v o gate up down in both layers
    layer = fused.base_model.model.model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == "FusedLoraLinear" and repr(layer).startswith("lora.Linear(")
    batch = _batch()
    loss_p, grads_p = _grads(plain, batch)
    loss_f, grads_f = _grads(fused, batch)
    assert torch.allclose(loss_p, loss_f, rtol=1e-6, atol=0)
    assert grads_p.keys() == grads_f.keys() and len(grads_p) == 28
    for name, grad in grads_p.items():
        assert torch.allclose(grad, grads_f[name], rtol=1e-5, atol=1e-7 * grad.abs().max()), name


def test_dropout_scaling_and_bf16_autocast(tiny_model_dir):
    plain, fused, _ = _pair(tiny_model_dir, lora_dropout=0.1, use_rslora=True)
    batch = _batch()
    torch.manual_seed(7)
    loss_p, grads_p = _grads(plain, batch)
    torch.manual_seed(7)  # the same dropout masks
    loss_f, grads_f = _grads(fused, batch)
    assert torch.allclose(loss_p, loss_f, rtol=1e-6, atol=0)
    for name, grad in grads_p.items():
        assert torch.allclose(grad, grads_f[name], rtol=1e-5, atol=1e-7 * grad.abs().max()), name
    plain.eval(), fused.eval()
    loss_p, grads_p = _grads(plain, batch, autocast=True)
    loss_f, grads_f = _grads(fused, batch, autocast=True)
    assert abs(loss_p - loss_f) < 2e-2 * abs(loss_p)  # bf16 products, summed in another order
    for name, grad in grads_f.items():
        assert grad.dtype == torch.float32, name  # fp32 adapters keep fp32 gradients
        cos = torch.nn.functional.cosine_similarity(grad.flatten(), grads_p[name].flatten(), dim=0)
        assert cos > 0.99, (name, cos)


def test_disabled_merged_and_second_adapter_fall_back_to_peft(tiny_model_dir):
    plain, fused, _ = _pair(tiny_model_dir)
    batch = {"input_ids": _batch()["input_ids"]}
    with torch.no_grad():
        with fused.disable_adapter(), plain.disable_adapter():  # DPO's reference by toggle
            base_logits = fused(**batch).logits
            assert torch.equal(base_logits, plain(**batch).logits)
        adapted = fused(**batch).logits
        assert torch.allclose(adapted, plain(**batch).logits, atol=1e-6)
        assert not torch.allclose(adapted, base_logits, atol=1e-3)  # the adapter is on again
        fused.merge_adapter()
        assert torch.allclose(fused(**batch).logits, adapted, atol=1e-5)
        fused.unmerge_adapter()
        assert torch.allclose(fused(**batch).logits, adapted, atol=1e-6)


def test_mixed_dtypes_without_autocast_take_peft_path(tiny_model_dir):
    """bf16 weights with fp32 adapters and no autocast: peft casts the input itself; the fused
    path steps aside rather than multiply mismatched dtypes."""
    plain, fused, _ = _pair(tiny_model_dir)
    for model in (plain, fused):
        model.get_base_model().to(torch.bfloat16)
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.data = p.data.float()
    ids = _batch()["input_ids"]
    with torch.no_grad():
        assert torch.equal(fused(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_training_models_follow_the_key(tiny_overrides, tiny_model_dir):
    from tunesmith.config import load_config
    from tunesmith.methods import method_params
    from tunesmith.train.model import apply_method, load_for_training

    for on in (True, False):
        cfg = load_config(None, {**tiny_overrides, "fused_lora": on})
        method, params = method_params(cfg)
        model = apply_method(method, load_for_training(cfg, tiny_model_dir), params, cfg)
        fused = [m for m in model.modules() if type(m).__name__ == "FusedLoraLinear"]
        assert len(fused) == (14 if on else 0)
