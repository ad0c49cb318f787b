"""Prepacked CPU linear layers for decoding (infer/packed.py): the same outputs, only without
gradients, put back exactly, and used only where the copies fit."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunesmith import hardware
from tunesmith.infer import packed


@pytest.fixture
def model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_decoding_gives_the_same_logits(model, dtype):
    model = model.to(dtype)
    ids = torch.tensor([[1, 5, 9, 14, 3, 7], [2, 8, 8, 4, 6, 1]])
    with torch.no_grad():
        want = model(ids).logits
        with packed.packed_linears(model, True):
            # bf16 is packed only where oneDNN has bf16 kernels (not on AVX2-only CPUs)
            assert ("forward" in model.lm_head.__dict__) == (dtype in packed._dtypes())
            got = model(ids).logits
    if dtype == torch.bfloat16:
        assert torch.equal(got, want)
    else:
        assert torch.allclose(got, want, atol=1e-4)
    assert all("forward" not in m.__dict__ for m in model.modules())  # put back


def test_with_gradients_on_a_layer_takes_its_own_differentiable_forward(model):
    x = torch.randn(3, model.config.hidden_size, requires_grad=True)
    with packed.packed_linears(model, True):
        y = model.lm_head(x)
        y.sum().backward()
        assert x.grad is not None and y.grad_fn is not None
        with torch.no_grad():
            assert torch.allclose(model.lm_head(x), y.detach(), atol=1e-4)


def test_packing_is_chosen_only_where_it_fits_and_not_when_disabled(model, monkeypatch):
    monkeypatch.setattr(hardware, "available_memory_mb", lambda: 1e6)
    assert packed.choose_packing(model)
    monkeypatch.setattr(hardware, "available_memory_mb", lambda: 0.001)
    assert not packed.choose_packing(model)
    monkeypatch.setattr(hardware, "available_memory_mb", lambda: 1e6)
    monkeypatch.setenv("TUNESMITH_PACKED_LINEAR", "0")
    assert not packed.choose_packing(model)
