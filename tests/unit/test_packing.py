"""Packing changes how much padding is computed, never what is learned."""

from __future__ import annotations

import pytest
import torch

from tunesmith.data.collate import PadCollator
from tunesmith.data.packing import PackingCollator, first_fit_bins


def tiny_llama(attn: str, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=0, attn_implementation=attn, use_cache=False)
    return LlamaForCausalLM(cfg).double()


def rows(seed: int = 1, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(3, 40, (1,), generator=g))
        ids = torch.randint(1, 97, (length,), generator=g).tolist()
        prompt = max(1, length // 3)
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_bins_hold_every_row_once_within_capacity():
    lengths = [5, 9, 3, 7, 2, 9]
    bins = first_fit_bins(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(6))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 4


def test_position_ids_restart_and_first_token_unlabelled():
    feats = [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}]
    batch = PackingCollator(pad_id=0, capacity=8)(feats)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9]]
    assert "attention_mask" not in batch


def test_packing_needs_use_cache_off():
    """transformers skips packed-sequence detection when a KV cache exists: training turns the
    cache off (train/model.py); this pins that behaviour so a change upstream is noticed."""
    model = tiny_llama("sdpa")
    model.config.use_cache = True
    feats = rows()
    packed = PackingCollator(pad_id=0)(feats)
    assert not torch.allclose(model(**packed).loss, model(**PadCollator(0)(feats)).loss)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("capacity", [None, 128])
def test_packed_equals_padded_loss_and_grads(attn, capacity):
    model = tiny_llama(attn)
    feats = rows()
    padded = PadCollator(pad_id=0)(feats)
    packed = PackingCollator(pad_id=0, capacity=capacity)(feats)
    assert packed["input_ids"].numel() < padded["input_ids"].numel()
    loss_a, grads_a = loss_and_grads(model, padded)
    loss_b, grads_b = loss_and_grads(model, packed)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-9, atol=1e-9)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=1e-7, atol=1e-9, msg=name)


def test_packing_without_position_reset_would_leak():
    """Guard the guard: the same packed ids with running positions give a different loss."""
    model = tiny_llama("sdpa")
    packed = PackingCollator(pad_id=0, capacity=256)(rows())
    padded = PadCollator(pad_id=0)(rows())
    leaky = dict(packed, position_ids=torch.arange(packed["input_ids"].shape[1])[None])
    assert not torch.allclose(model(**leaky).loss, model(**padded).loss)


def test_train_with_packing_and_fast_loss_learns_the_same(tiny_overrides, tmp_path):
    """End to end through run_training: the first two logged losses match the padded standard run."""
    import json

    from tunesmith.config import load_config
    from tunesmith.train.run import run_training

    def losses(name, **extra):
        out = tmp_path / name
        run_training(load_config(None, {**tiny_overrides, "output_dir": str(out), "max_steps": 2,
                                   "trainer_args": {"train_sampling_strategy": "sequential"},
                                   **extra}))
        rows = [json.loads(x) for x in (out / "trainer_log.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if "loss" in r]

    plain = losses("plain", packing=False, fast_loss=False)
    fast = losses("fast", packing=True, fast_loss=True)
    assert len(plain) == 2 and fast == pytest.approx(plain, rel=1e-4)


def test_rows_that_cannot_share_a_bin_stay_padded():
    feats = [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8, 9, 4], "labels": [8, 9, 4]}]
    batch = PackingCollator(pad_id=0)(feats)
    assert "attention_mask" in batch and batch["input_ids"].shape == (2, 3)
