"""Loading engines: full fine-tuned dirs, adapters that do not fit, pickle weights, vLLM."""

import json
import sys

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.errors import MissingExtraError, ModelError
from tunesmith.infer.engine import GenParams
from tunesmith.infer.load import load_engine
from tunesmith.train.run import run_training


def test_full_finetuned_dir_loads_as_model(tiny_overrides, tmp_path):
    over = {k: v for k, v in tiny_overrides.items() if k != "lora_rank"}
    cfg = load_config(None, {**over, "method": "full", "max_steps": 2})
    run_training(cfg)
    out = tmp_path / "run"
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    engine = load_engine(load_config(None, {"model_name_or_path": str(out), "dtype": "fp32"}))
    answer = engine.generate([{"role": "user", "content": "What is 3 plus 3?"}],
                             GenParams(max_new_tokens=4))
    assert answer.completion_tokens >= 1
    # ... and the full dir used by mistake as an adapter says what to do instead.
    bad = load_config(None, {"model_name_or_path": str(out), "adapter_name_or_path": str(out)})
    with pytest.raises(ModelError, match="use it as model_name_or_path"):
        load_engine(bad)


def test_missing_adapter_dir_is_one_clear_line(tiny_model_dir, tmp_path):
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir),
                             "adapter_name_or_path": str(tmp_path / "nope")})
    with pytest.raises(ModelError, match="not found") as err:
        load_engine(cfg)
    assert "\n" not in str(err.value)


def _fake_adapter(tmp_path, model_dir, **base):
    """A LoRA adapter dir for the tiny model with a hand-written tunesmith_base.json."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    out = tmp_path / "adapter"
    peft.save_pretrained(out)
    signature = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2,
                 "vocab_size": model.config.vocab_size, **base}
    (out / "tunesmith_base.json").write_text(json.dumps(signature))
    return out


def test_adapter_for_another_base_is_refused(tiny_model_dir, tmp_path):
    adapter = _fake_adapter(tmp_path, tiny_model_dir, hidden_size=576, num_hidden_layers=30)
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir),
                             "adapter_name_or_path": str(adapter)})
    with pytest.raises(ModelError) as err:
        load_engine(cfg)
    msg = str(err.value)
    assert "different base model" in msg and "hidden_size: adapter 576 vs model 32" in msg


def test_matching_adapter_base_loads_merged_with_the_same_answers(tiny_model_dir, tmp_path):
    """A mergeable adapter is merged into the base for inference: the same greedy answers as
    the adapter attached (checked with non-zero LoRA weights)."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.data.templates import get_template
    from tunesmith.infer.hf import HFEngine

    adapter = _fake_adapter(tmp_path, tiny_model_dir)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"],
                                    init_lora_weights=False)).save_pretrained(adapter)
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir),
                             "adapter_name_or_path": str(adapter), "dtype": "fp32"})
    engine = load_engine(cfg)
    assert not isinstance(engine.model, PeftModel)  # merged
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    attached = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32), str(adapter))
    reference = HFEngine(attached, tokenizer, get_template("auto", tokenizer))
    prompts = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Tell a story"}]]
    params = GenParams(max_new_tokens=12)
    assert ([c.text for c in engine.batch_generate(prompts, params)]
            == [c.text for c in reference.batch_generate(prompts, params)])


def test_pickle_only_dir_is_refused_unless_allowed(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    model.config.save_pretrained(pickled)
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(pickled)
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    base = {"model_name_or_path": str(pickled), "dtype": "fp32"}
    with pytest.raises(ModelError, match="pickle"):
        load_engine(load_config(None, base))
    engine = load_engine(load_config(None, {**base, "allow_pickle": True}))
    weight = engine.model.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(weight, model.model.layers[0].self_attn.q_proj.weight)


def test_vllm_backend_missing_names_the_install(tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as on a machine without vllm
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir), "infer_backend": "vllm"})
    with pytest.raises(MissingExtraError, match="pip install vllm"):
        load_engine(cfg)


def test_chat_uses_the_training_template(tiny_model_dir, tmp_path):
    from tunesmith.infer.load import resolve_template

    run = tmp_path / "run"
    run.mkdir()
    (run / "tunesmith_config.yaml").write_text("template: chatml\ndefault_system: Be kind.\n")
    cfg = load_config(None, {"model_name_or_path": str(tiny_model_dir)})
    assert resolve_template(cfg, str(run), tiny_model_dir) == ("chatml", "Be kind.")
    assert resolve_template(cfg, None, tiny_model_dir) == ("auto", None)
