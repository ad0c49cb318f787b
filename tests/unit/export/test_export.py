"""export: merged == adapter (logits and greedy answers), shards + index, atomic, refusals."""

import json
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open

from tunesmith.cli import main
from tunesmith.config import load_config
from tunesmith.errors import ConfigError, ModelError
from tunesmith.export import formats, merge
from tunesmith.export.merge import run_export
from tunesmith.infer.engine import GenParams
from tunesmith.infer.load import load_engine

from ...conftest import random_lora

PROMPTS = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Who are you?"}],
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter on every linear layer with non-zero B, so it really changes the model."""
    return random_lora(tiny_model_dir, tmp_path_factory.mktemp("adapter"), r=4, alpha=8,
                       targets="all-linear", std=0.5, seed=1)


def _cfg(tiny_model_dir, adapter_dir, export_dir, **extra):
    return load_config(None, {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32",
                              "adapter_name_or_path": str(adapter_dir),
                              "export_dir": str(export_dir), "export_size": 0.002, **extra})


def _shard_tensors(export_dir):
    seen = {}
    for shard in sorted(export_dir.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as fh:
            for key in fh.keys():
                seen.setdefault(key, []).append(shard.name)
    return seen


def test_export_merges_verifies_and_answers_like_the_adapter(tiny_model_dir, adapter_dir, tmp_path):
    out = tmp_path / "merged"
    result = run_export(_cfg(tiny_model_dir, adapter_dir, out))
    check = json.loads((out / "export_check.json").read_text())
    assert check["passed"] and check["merge"]["max_abs_diff"] <= check["merge"]["tolerance"]
    assert check["saved"] == {"tensors": 21, "missing": [], "different": [], "passed": True}
    assert check["saved_fp32_vs_adapter"]["max_abs_diff"] < 1e-4 and result["passed"]
    # Sharded at 2 MB (a bigger single tensor gets a shard of its own), and the index lists
    # every tensor exactly once.
    index = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    seen = _shard_tensors(out)
    assert all(len(files) == 1 for files in seen.values())
    assert {k: v[0] for k, v in seen.items()} == index
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 1 and set(index.values()) == {s.name for s in shards}
    for shard in shards:
        n_tensors = sum(1 for v in index.values() if v == shard.name)
        assert n_tensors == 1 or shard.stat().st_size < 2_100_000
    for name in ("config.json", "generation_config.json", "tokenizer.json", "README.md",
                 "tunesmith_export.json"):
        assert (out / name).is_file(), name
    assert "passed" in (out / "README.md").read_text()
    # The merged dir loads as a plain model and answers exactly like base + adapter.
    tuned = load_engine(load_config(None, {"model_name_or_path": str(tiny_model_dir),
                                           "adapter_name_or_path": str(adapter_dir), "dtype": "fp32"}))
    merged = load_engine(load_config(None, {"model_name_or_path": str(out), "dtype": "fp32"}))
    base = load_engine(load_config(None, {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32"}))
    params = GenParams(max_new_tokens=10)
    answers = [c.text for c in tuned.batch_generate(PROMPTS, params)]
    assert [c.text for c in merged.batch_generate(PROMPTS, params)] == answers
    assert [c.text for c in base.batch_generate(PROMPTS, params)] != answers  # the adapter matters


def test_bf16_export_reports_the_dtype_drift(tiny_model_dir, adapter_dir, tmp_path):
    out = tmp_path / "bf16"
    result = run_export(_cfg(tiny_model_dir, adapter_dir, out, export_dtype="bf16", export_size=1))
    assert result["dtype"] == "bf16" and result["passed"]
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        assert fh.get_tensor(fh.keys()[0]).dtype == torch.bfloat16
    drift = json.loads((out / "export_check.json").read_text())["saved_bf16_vs_adapter"]
    assert 0 < drift["max_abs_diff"] < 1


def test_interrupted_export_leaves_nothing_that_looks_valid(tiny_model_dir, adapter_dir, tmp_path,
                                                            monkeypatch):
    real = formats.get_exporter("safetensors")

    def save_then_die(model, tokenizer, template, out_dir, cfg):
        real.save(model, tokenizer, template, out_dir, cfg)  # every file written...
        raise KeyboardInterrupt  # ...then killed before the rename

    monkeypatch.setattr(merge, "get_exporter", lambda name: replace(real, save=save_then_die))
    out = tmp_path / "merged"
    with pytest.raises(KeyboardInterrupt):
        run_export(_cfg(tiny_model_dir, adapter_dir, out))
    assert list(tmp_path.iterdir()) == []


def test_failed_check_writes_nothing(tiny_model_dir, adapter_dir, tmp_path, monkeypatch):
    from tunesmith.export import check

    monkeypatch.setattr(check, "tolerance", lambda reference: -1.0)  # no merge can pass this
    with pytest.raises(ModelError, match="export check failed"):
        run_export(_cfg(tiny_model_dir, adapter_dir, tmp_path / "merged"))
    assert list(tmp_path.iterdir()) == []


def test_reexport_replaces_a_previous_export_but_not_other_dirs(tiny_model_dir, adapter_dir, tmp_path):
    out = tmp_path / "merged"
    run_export(_cfg(tiny_model_dir, adapter_dir, out, export_size=1))
    run_export(_cfg(tiny_model_dir, adapter_dir, out, export_size=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a tunesmith export"):
        run_export(_cfg(tiny_model_dir, adapter_dir, other))
    assert (other / "notes.txt").read_text() == "keep me"


def test_quantized_base_is_refused_unless_dequantized(tiny_model_dir, adapter_dir, tmp_path, capsys):
    args = ["export", f"model_name_or_path={tiny_model_dir}", f"adapter_name_or_path={adapter_dir}",
            "quantization_bit=4", f"export_dir={tmp_path / 'm'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "4-bit quantized base" in err and "export_dequantize: true" in err
    assert "\n" not in err.strip() and not (tmp_path / "m").exists()
    assert main(args + ["export_dequantize=true", "export_size=1"]) == 0
    assert json.loads((tmp_path / "m" / "export_check.json").read_text())["passed"]


def test_llamafactory_flags_and_missing_adapter(tiny_model_dir, adapter_dir, tmp_path, capsys):
    out = tmp_path / "lf"
    code = main(["export", "--model_name_or_path", str(tiny_model_dir), "--adapter_name_or_path",
                 str(adapter_dir), "--template", "auto", "--finetuning_type", "lora",
                 "--export_dir", str(out), "--export_size", "2", "--export_device", "cpu",
                 "--export_legacy_format", "False"])
    assert code == 0 and "check passed" in capsys.readouterr().out
    assert (out / "model.safetensors").is_file()
    code = main(["export", f"model_name_or_path={tiny_model_dir}",
                 f"adapter_name_or_path={tmp_path / 'missing'}", f"export_dir={tmp_path / 'x'}"])
    assert code == 2 and "not found" in capsys.readouterr().err


def test_unmergeable_adapter_is_refused_before_loading(tmp_path, monkeypatch):
    """Mergeability is decided once (methods.adapter_merge_refusal), before the model load."""
    adapter = tmp_path / "prefix"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    monkeypatch.setattr(merge, "load_parts", lambda cfg: pytest.fail("loaded the model"))
    cfg = load_config(None, {"adapter_name_or_path": str(adapter),
                             "export_dir": str(tmp_path / "out")})
    with pytest.raises(ModelError, match="prefix adapter .*cannot be merged"):
        run_export(cfg)
    assert not (tmp_path / "out").exists()
