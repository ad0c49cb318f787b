"""``torch_compile: true``: compiled decoder layers give the eager loss and gradients."""

from __future__ import annotations

import pytest
import torch

from tunesmith.data.packing import PackingCollator

from ..test_packing import rows, tiny_llama


def loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                           if p.requires_grad}


@pytest.mark.slow
def test_compiled_layers_match_eager_loss_and_gradients():
    from peft import LoraConfig, get_peft_model

    from tunesmith.train.compile import compile_layers, decoder_layers

    def model():
        torch.manual_seed(0)
        base = tiny_llama("sdpa").float()
        return get_peft_model(base, LoraConfig(r=4, target_modules="all-linear",
                                               init_lora_weights=False))

    eager, compiled = model(), model()
    assert compile_layers(compiled) == len(decoder_layers(compiled)) == 2
    for seed in (11, 12):  # two batch shapes: one dynamic graph, still the eager numbers
        batch = PackingCollator(0)(rows(seed=seed))
        loss, grads = loss_and_grads(eager, batch)
        c_loss, c_grads = loss_and_grads(compiled, batch)
        torch.testing.assert_close(c_loss, loss, rtol=1e-5, atol=1e-6)
        assert grads and grads.keys() == c_grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(c_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)
