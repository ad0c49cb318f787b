"""estimate: parameter counts on the meta device, memory terms, GPU sizes, calibration."""

from __future__ import annotations

import json

import pytest

from tunesmith.commands.estimate import parse_size_mb
from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.estimate import estimate_run
from tunesmith.estimate.memory import MemoryEstimate


def cfg_for(overrides, **extra):
    return load_config(None, {**overrides, **extra})


def test_estimate_sane_numbers(tiny_overrides):
    est = estimate_run(cfg_for(tiny_overrides))
    p, m = est.params, est.memory
    assert 0 < p.trainable < p.total
    for value in (m.weights_mb, m.gradients_mb, m.optimizer_mb, m.activations_mb,
                  m.activations_ckpt_mb, m.logits_mb, m.peak_mb):
        assert value > 0
    assert m.activations_ckpt_mb < m.activations_mb
    assert m.optimizer_mb == pytest.approx(2 * m.gradients_mb)
    assert est.data.rows == 24 and est.data.p50 <= est.data.p90 <= est.data.p100
    assert est.steps == 6


def test_checkpointing_and_packing_lower_the_peak(tiny_overrides):
    plain = estimate_run(cfg_for(tiny_overrides)).memory
    ckpt = estimate_run(cfg_for(tiny_overrides, gradient_checkpointing=True)).memory
    assert ckpt.peak_mb < plain.peak_mb
    assert ckpt.peak_if_ckpt_toggled_mb == pytest.approx(plain.peak_mb)
    packed = estimate_run(cfg_for(tiny_overrides, packing=True))
    assert packed.data.batch_tokens <= estimate_run(cfg_for(tiny_overrides)).data.batch_tokens


def test_full_finetune_trains_everything(tiny_overrides):
    over = {k: v for k, v in tiny_overrides.items() if k != "lora_rank"}
    est = estimate_run(cfg_for(over, method="full"))
    assert est.params.trainable == est.params.total


def test_gpu_size_parsing_and_fit_note(tiny_overrides):
    assert parse_size_mb("24GB") == 24 * 1024 and parse_size_mb("512MB") == 512
    assert parse_size_mb("80GiB") == 80 * 1024
    with pytest.raises(ConfigError, match="24GB"):
        parse_size_mb("lots")
    est = estimate_run(cfg_for(tiny_overrides), gpu_mb=1.0)
    assert est.device == "gpu" and est.notes and "does not fit" in est.notes[0]


def test_cli_json_with_calibration(tiny_overrides, capsys):
    from tunesmith.cli import main

    args = ["estimate", "--json", "--calibration-steps", "2"]
    args += [f"{k}={v}" for k, v in tiny_overrides.items()]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["trainable"] < out["params"]["total"]
    assert out["timing"]["tokens_per_s"] > 0 and out["timing"]["total_s"] > 0
    assert set(out["memory"]) >= {f.name for f in MemoryEstimate.__dataclass_fields__.values()}


def test_cli_text_for_gpu(tiny_overrides, capsys):
    from tunesmith.cli import main

    args = ["estimate", "--gpu", "24GB"] + [f"{k}={v}" for k, v in tiny_overrides.items()]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "trainable" in text and "fits in 24.00 GiB" in text and "expected peak" in text


def test_largest_batch_follows_the_sampler():
    from tunesmith.estimate import largest_batch

    rows = [(10, 5), (100, 50), (20, 10), (90, 45), (30, 15), (40, 20)]  # (tokens, labelled)
    # sequential batches of 2: (10,100) (20,90) (30,40); padded, the first costs 2 x 100
    assert largest_batch(rows, 2, packing=False, sequential=True) == (200, 55, 100)
    # two rows never share a bin as long as the longer one: the collator pads, and so does this
    assert largest_batch(rows, 2, packing=True, sequential=True) == (200, 55, 100)
    # batches of 3: (10,100,20) packs into [100] [20,10] = 130 tokens, (90,30,40) into 160
    for packing in (True, "auto"):
        assert largest_batch(rows, 3, packing=packing, sequential=True) == (160, 80, 90)
    assert largest_batch(rows, 3, packing=False, sequential=True) == (300, 65, 100)
    # shuffled: the longest rows may meet in one batch, and 100, 90, 40 cannot share a bin
    assert largest_batch(rows, 3, packing="auto", sequential=False) == (300, 115, 100)


def test_cpu_peak_is_never_below_loading():
    from tunesmith.estimate.memory import ParamCounts, Shapes, estimate_memory

    counts = ParamCounts(total=1_000_000, trainable=10_000, frozen_dtype="bf16", trainable_bytes=4)
    shapes = Shapes(layers=2, hidden=64, intermediate=128, heads=4, vocab=1000)
    m = estimate_memory(counts, shapes, tokens=8, longest=4, logit_positions=8, ckpt=True,
                        file_mb=5000.0, device="cpu", fused_chunk=64)
    assert m.loading_mb > 5000 and m.peak_mb == m.loading_mb
    gpu = estimate_memory(counts, shapes, tokens=8, longest=4, logit_positions=8, ckpt=True,
                          file_mb=5000.0, device="gpu", fused_chunk=64)
    assert gpu.loading_mb == 0 and gpu.peak_mb < 1000


# LLaMA-Factory's published hardware table (README, "Hardware Requirement"), 7B column, in GB.
LLAMAFACTORY_7B_GB = {"lora": 16, "qlora": 6, "full": 120}
METHOD_OVERRIDES = {"lora": ["finetuning_type=lora"],
                    "qlora": ["finetuning_type=qlora", "quantization_bit=4"],
                    "full": ["finetuning_type=full"]}


@pytest.fixture(scope="module")
def qwen7b_config_dir(tmp_path_factory, bundled_dir):
    """Qwen2.5-7B-Instruct's config.json (shipped in tests/data) with a stand-in tokenizer:
    the model is built on the meta device from the config; the tokenizer only measures rows."""
    import shutil

    from ..conftest import REPO

    out = tmp_path_factory.mktemp("qwen2.5-7b-instruct")
    shutil.copy(REPO / "tests" / "data" / "qwen2.5-7b-instruct" / "config.json", out)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (bundled_dir / name).is_file():
            shutil.copy(bundled_dir / name, out)
    return out


@pytest.mark.parametrize("method", list(LLAMAFACTORY_7B_GB))
def test_estimate_gpu_7b_within_20_percent_of_llamafactory_table(qwen7b_config_dir, method,
                                                                 capsys, monkeypatch):
    """`tunesmith estimate --gpu 24GB` on Qwen2.5-7B-Instruct, LLaMA-Factory's setup for its
    table (its examples: batch 1, gradient checkpointing on)."""
    from tunesmith.cli import main

    from ..conftest import REPO

    monkeypatch.chdir(REPO)
    argv = ["estimate", "examples/identity.yaml", f"model_name_or_path={qwen7b_config_dir}",
            "per_device_train_batch_size=1", "gradient_checkpointing=true", "--gpu", "24GB",
            "--json", *METHOD_OVERRIDES[method]]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["total"] > 7.5e9
    peak_gb = out["memory"]["peak_mb"] * 2**20 / 1e9
    expected = LLAMAFACTORY_7B_GB[method]
    assert abs(peak_gb - expected) <= 0.2 * expected, (method, round(peak_gb, 1), expected)
    assert out["dtype"] == ("fp32" if method == "full" else "bf16")  # adapters: never fp32
    print(f"{method}: {peak_gb:.1f} GB vs {expected} GB")


def test_pairs_are_sized_with_their_prompt_once():
    """A preference batch feeds each pair's shared prompt once (data/pair_collate.py): the largest
    batch and the pass unit are pairs as fed, not two whole sequences."""
    from tunesmith.data.tokenize import IGNORE, Example
    from tunesmith.estimate import data_shape

    examples = []
    for i, (prompt, chosen, rejected) in enumerate([(100, 20, 30), (300, 50, 10), (10, 5, 5)]):
        ids = list(range(prompt))
        for flag, n in ((1, chosen), (0, rejected)):
            examples.append(Example(ids + [7] * n, [IGNORE] * prompt + [7] * n, row=i, flag=flag))
    cfg = load_config(None, {"stage": "dpo", "per_device_train_batch_size": 2,
                             "trainer_args": {"train_sampling_strategy": "sequential"}})
    shape = data_shape(cfg, examples=examples)
    assert shape.rows == 3
    # pairs of 150 and 360 tokens as fed (not 250 and 660): two rows of the longest's width
    assert (shape.batch_tokens, shape.batch_labels, shape.longest) == (2 * 360, 50 + 60, 360)
    prompt_tuning = load_config(None, {"stage": "dpo", "method": "prompt",
                                       "per_device_train_batch_size": 2,
                                       "trainer_args": {"train_sampling_strategy": "sequential"}})
    # virtual tokens: each side padded to the longest, prompts not shared
    assert data_shape(prompt_tuning, examples=examples).batch_tokens == 4 * 350


def test_the_fused_swiglu_keeps_one_intermediate_value_less(tiny_overrides):
    from tunesmith.estimate.memory import activation_bytes, Shapes

    plain = Shapes(layers=3, hidden=64, intermediate=128, heads=4, vocab=1000)
    fused = Shapes(layers=3, hidden=64, intermediate=128, heads=4, vocab=1000, fused_swiglu=True)
    for ckpt, layers in ((False, 3), (True, 1), ("selective", 1)):  # recompute: one layer's set
        drop = activation_bytes(plain, 100, 300, "fp32", ckpt) - \
            activation_bytes(fused, 100, 300, "fp32", ckpt)
        assert drop == layers * 100 * 128 * 4, ckpt
    on = estimate_run(cfg_for(tiny_overrides))
    off = estimate_run(cfg_for(tiny_overrides, fused_mlp=False))
    assert on.shapes.fused_swiglu and not off.shapes.fused_swiglu
    assert on.memory.activations_mb < off.memory.activations_mb
