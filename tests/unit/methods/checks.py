"""Assertions shared by the method tests: the issue's four properties of every method."""

from __future__ import annotations

import math

import torch

from .conftest import Run, logits_of, sample_ids


def assert_learns(run: Run) -> None:
    """Finite losses that fall from the first logged step to the last."""
    assert run.losses and all(math.isfinite(x) for x in run.losses), run.losses
    assert run.losses[-1] < run.losses[0], run.losses


def assert_trains_exactly(run: Run, intended, may_stay=lambda name, tensor: False) -> None:
    """Trainable = ``intended(name)``; each of them changed; every other tensor bit-identical.

    ``may_stay(name, tensor)``: a trainable tensor allowed to end where it started (AdaLoRA's
    singular values of a matrix whose whole rank budget was pruned are zero again).
    """
    names = set(run.before)
    expected = {n for n in names if intended(n)}
    assert expected, "the predicate matches no parameter"
    assert run.trainable == expected, sorted(run.trainable ^ expected)[:8]
    params = dict(run.model.named_parameters())
    stayed = {n for n in expected - run.changed() if not may_stay(n, params[n].detach())}
    assert not stayed, sorted(stayed)[:8]
    assert run.changed() <= expected, sorted(run.changed() - expected)[:8]
    assert run.unchanged_frozen()


def reload(run: Run, base_dir, **base_kwargs):
    """The saved run loaded back with plain transformers / peft."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # the run's own attention kernel: on CPU that is tunesmith's "hybrid" (registered in this
    # process). Per layer it agrees with sdpa to ~1e-7, but through a trained 4-bit SmolLM2
    # that grows to 0.15 in the logits (measured), so a reload must use the same kernel.
    impl = getattr(getattr(run.model, "config", None), "_attn_implementation", None)
    if impl:
        base_kwargs.setdefault("attn_implementation", impl)
    if (run.out / "adapter_config.json").is_file():
        base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32,
                                                    **base_kwargs)
        return PeftModel.from_pretrained(base, str(run.out))
    return AutoModelForCausalLM.from_pretrained(str(run.out), dtype=torch.float32, **base_kwargs)


def assert_reloads(run: Run, base_dir, atol: float = 1e-5, **base_kwargs):
    """Save -> load gives the logits of the in-memory trained model."""
    ids = sample_ids()
    expected = logits_of(run.model, ids)
    loaded = reload(run, base_dir, **base_kwargs)
    torch.testing.assert_close(logits_of(loaded, ids), expected, atol=atol, rtol=0)
    return loaded


def assert_merges(loaded, atol: float = 1e-4) -> None:
    """merge_and_unload gives the unmerged adapter's logits within tolerance."""
    ids = sample_ids()
    unmerged = logits_of(loaded, ids)
    merged = loaded.merge_and_unload()
    assert not any("lora_" in n or "ia3_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(logits_of(merged, ids), unmerged, atol=atol, rtol=0)


def assert_method_works(run: Run, base_dir, intended, mergeable: bool, may_stay=None) -> None:
    assert_learns(run)
    assert_trains_exactly(run, intended, *(() if may_stay is None else (may_stay,)))
    loaded = assert_reloads(run, base_dir)
    if mergeable:
        assert_merges(loaded)
