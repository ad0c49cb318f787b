"""The fused SwiGLU activation (model/fused_mlp.py): the same outputs and gradients, less kept."""

from __future__ import annotations

import copy

import pytest
import torch

from tunesmith.model.fused_mlp import enable_fused_mlp


def _models(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    fused_base = copy.deepcopy(base)
    assert enable_fused_mlp(fused_base) == 2  # both layers' MLPs
    assert enable_fused_mlp(fused_base) == 0  # once only
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")
    models = []
    for model in (base, fused_base):
        torch.manual_seed(0)
        model = get_peft_model(model, config)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.manual_seed(hash(name) % 1000)
                p.data.normal_(0, 0.05)
        models.append(model)
    return models


def _run(model, saved: list | None = None):
    torch.manual_seed(1)
    ids = torch.randint(5, 400, (3, 17))
    model.zero_grad(set_to_none=True)
    seen = set()

    def pack(t):
        if saved is not None and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            if not isinstance(t, torch.nn.Parameter):
                saved.append(t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def test_loss_and_gradients_are_bit_identical(tiny_model_dir):
    plain, fused = _models(tiny_model_dir)
    loss_p, grads_p = _run(plain)
    loss_f, grads_f = _run(fused)
    assert torch.equal(loss_p, loss_f)
    assert grads_p.keys() == grads_f.keys() and len(grads_p) == 28
    for name, grad in grads_p.items():
        assert torch.equal(grad, grads_f[name]), name


def test_silu_output_is_not_kept(tiny_model_dir):
    plain, fused = _models(tiny_model_dir)
    kept_p, kept_f = [], []
    _run(plain, kept_p)
    _run(fused, kept_f)
    cfg = plain.config
    silu_out = 3 * 17 * cfg.intermediate_size * 4  # one (tokens x intermediate) fp32 per layer
    assert sum(kept_p) - sum(kept_f) == cfg.num_hidden_layers * silu_out


def test_other_mlps_and_inference_keep_their_forward(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    for layer in model.model.layers:
        layer.mlp.act_fn = torch.nn.GELU()
    assert enable_fused_mlp(model) == 0
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model.model.layers[0].mlp.gate_proj.weight.data = torch.empty(0)  # as ZeRO-3 partitions it
    assert enable_fused_mlp(model) == 1  # the other layer only
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    enable_fused_mlp(model)
    with torch.no_grad():  # no autograd: the plain product, no function object
        out = model.model.layers[0].mlp(torch.randn(1, 3, model.config.hidden_size))
    assert out.grad_fn is None


def test_training_models_follow_the_key(tiny_overrides, tiny_model_dir):
    from tunesmith.config import load_config
    from tunesmith.train.model import load_for_training

    for on in (True, False):
        cfg = load_config(None, {**tiny_overrides, "fused_mlp": on})
        model = load_for_training(cfg, tiny_model_dir)
        fused = [m for m in model.modules() if getattr(m, "_tunesmith_fused_mlp", False)]
        assert len(fused) == (2 if on else 0)


def test_installing_leaves_the_global_random_state_alone(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    assert enable_fused_mlp(model) == 2
    assert torch.equal(torch.rand(3), expected)  # an adapter's init after it draws the same values


@pytest.mark.parametrize("mode", [None, "selective", "full", "compiled"])
def test_checkpointing_and_compiled_layers_keep_the_gradients(mode):
    from peft import LoraConfig, get_peft_model

    from tunesmith.data.packing import PackingCollator
    from tunesmith.model import checkpointing
    from tunesmith.train.compile import compile_layers

    from ..test_packing import rows, tiny_llama
    from ..train.test_compile import loss_and_grads

    def build(fused: bool):
        torch.manual_seed(0)
        base = tiny_llama("sdpa")
        if mode in ("selective", "full"):
            checkpointing.enable_checkpointing(base, mode)
        if fused:
            assert enable_fused_mlp(base) == 2
        model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear",
                                                init_lora_weights=False))
        model.train()
        if mode == "compiled" and fused:
            assert compile_layers(model) == 2
        return model

    batch = PackingCollator(0)(rows(seed=3))
    loss, grads = loss_and_grads(build(False), batch)
    f_loss, f_grads = loss_and_grads(build(True), batch)
    exact = mode != "compiled"  # inductor fuses the element-wise work: rounding differs
    torch.testing.assert_close(f_loss, loss, rtol=0 if exact else 1e-6, atol=0 if exact else 1e-7)
    assert grads.keys() == f_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(f_grads[name], grad, rtol=0 if exact else 1e-5,
                                   atol=0 if exact else 1e-5 * grad.abs().max().item(), msg=name)
