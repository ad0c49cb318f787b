"""export_format: gguf without running llama.cpp: layout helpers, refusals before any work,
the tokenizer's llama.cpp pre-tokenizer name, the Ollama Modelfile against the HF template."""

import json

import numpy as np
import pytest

from tunesmith.cli import main
from tunesmith.config import load_config
from tunesmith.data.templates import get_template
from tunesmith.errors import ConfigError
from tunesmith.export import gguf_quant, ollama
from tunesmith.export.gguf_arch import arch_of, permute_rotary, unpermute_rotary
from tunesmith.export.gguf_tokenizer import pre_tokenizer_name

from . import gotemplate


def test_rotary_permutation_matches_llama_cpp_layout():
    # One head of dim 4: HF keeps rotary halves [x0 x1 | y0 y1]; llama.cpp interleaves pairs.
    w = np.arange(8.0).reshape(4, 2)
    assert permute_rotary(w, 1).tolist() == [[0, 1], [4, 5], [2, 3], [6, 7]]
    many = np.random.default_rng(0).normal(size=(24, 5))  # 3 heads of 8
    assert np.array_equal(unpermute_rotary(permute_rotary(many, 3), 3), many)


def test_architectures_and_rope_scalings_it_cannot_write_are_named():
    from transformers import GPT2Config, LlamaConfig

    with pytest.raises(ConfigError, match="cannot write 'gpt2' models; it writes llama, "
                                          "mistral, qwen2, qwen3"):
        arch_of(GPT2Config())
    with pytest.raises(ConfigError, match="rope scaling 'longrope'"):
        arch_of(LlamaConfig(rope_scaling={"rope_type": "longrope", "factor": 2.0,
                                          "short_factor": [1.0] * 64, "long_factor": [1.0] * 64}))
    assert arch_of(LlamaConfig(rope_scaling={"rope_type": "linear", "factor": 2.0})).permute_qk


def _export(tmp_path, model_dir, *extra):
    return main(["export", f"model_name_or_path={model_dir}", f"export_dir={tmp_path / 'out'}",
                 "export_format=gguf", *extra])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_unknown_architecture_is_refused_before_loading(tmp_path, capsys, bundled_dir):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=64)).save_pretrained(gpt2)
    AutoTokenizer.from_pretrained(str(bundled_dir)).save_pretrained(gpt2)
    capsys.readouterr()
    assert _export(tmp_path, gpt2) == 2
    assert "cannot write 'gpt2' models; it writes llama, mistral, qwen2, qwen3" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_quantizations_it_cannot_make_are_refused_in_one_line(tiny_model_dir, tmp_path, capsys,
                                                              monkeypatch):
    assert _export(tmp_path, tiny_model_dir, "export_quantization=q8_0,q3_k") == 2
    err = _one_line_error(capsys)
    assert "unknown type 'q3_k'" in err and "q4_k_m" in err and "this install can write" in err
    monkeypatch.setattr(gguf_quant, "llama_cpp_available", lambda: False)
    assert _export(tmp_path, tiny_model_dir, "export_quantization=f16,q4_k_m") == 2
    err = _one_line_error(capsys)
    assert "q4_k_m is made by llama.cpp's quantizer" in err and "pip install 'tunesmith[gguf]'" in err
    assert err.endswith("this install can write: f32, f16, bf16, q8_0, q4_0")
    assert not (tmp_path / "out").exists()


def test_quantization_without_gguf_is_refused(tiny_model_dir, tmp_path, capsys):
    assert main(["export", f"model_name_or_path={tiny_model_dir}", f"export_dir={tmp_path / 'out'}",
                 "export_quantization=q8_0"]) == 2
    assert "export_quantization applies to export_format: gguf" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_lora_folder_without_its_base_is_one_line(tmp_path, capsys):
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    assert _export(tmp_path, adapter) == 2
    err = _one_line_error(capsys)
    assert "is a LoRA adapter without its base model" in err
    assert f"adapter_name_or_path={adapter}" in err and "Qwen/Qwen2.5-0.5B-Instruct" in err


def test_ollama_flag_needs_gguf_and_a_valid_name(tiny_model_dir, tmp_path, capsys):
    args = ["export", f"model_name_or_path={tiny_model_dir}", f"export_dir={tmp_path / 'o'}"]
    assert main(args + ["--ollama", "nova"]) == 2
    assert "--ollama needs export_format: gguf" in _one_line_error(capsys)
    assert main(args + ["export_format=gguf", "--ollama", "Nova Model"]) == 2
    assert "an Ollama model name is lowercase" in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_bundled_tokenizer_is_llama_cpp_smollm_pre_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    assert pre_tokenizer_name(AutoTokenizer.from_pretrained(str(tiny_model_dir))) == "smollm"


CONVERSATIONS = [
    [{"role": "user", "content": "Who are you?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
     {"role": "user", "content": "Bye"}],
]


@pytest.mark.parametrize("which", ["chatml", "llama3", "mistral"])
def test_ollama_template_renders_like_the_training_template(which, tiny_model_dir,
                                                            tiny_llama3_dir):
    """Ollama (Go template + SYSTEM) and the HF chat template give the same prompt text; BOS is
    the tokenizer's to add in both runtimes."""
    from transformers import AutoTokenizer

    model_dir = tiny_llama3_dir if which == "llama3" else tiny_model_dir
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    template = get_template({"chatml": "auto", "llama3": "auto", "mistral": "mistral"}[which],
                            tokenizer)
    text = ollama.modelfile("m.q8_0.gguf", tokenizer, template, load_config(None, {}))
    fmt = ollama.detect_format(tokenizer, template)
    go = fmt.go_template(tokenizer, template)
    assert fmt.name == which and f'TEMPLATE """{go}"""' in text
    system = ollama.default_system(tokenizer, template, fmt)
    if which == "chatml":  # SmolLM2's template writes its own system prompt when none is given
        assert system.startswith("You are a helpful AI assistant named SmolLM")
        assert f'SYSTEM """{system}"""' in text
    adds_bos = tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    for conversation in CONVERSATIONS:
        want = template.render(tokenizer, conversation, add_generation_prompt=True)
        if adds_bos:  # the runtime adds BOS as a token, as HF's tokenizer does
            want = want.removeprefix(tokenizer.bos_token)
        assert gotemplate.render(go, conversation, system) == want
    for stop in ollama.stop_tokens(tokenizer, template):
        assert f'PARAMETER stop "{stop}"' in text
    assert "FROM ./m.q8_0.gguf" in text and "PARAMETER temperature 0" in text


@pytest.mark.slow
def test_default_gguf_is_the_export_dtype_and_transformers_reads_it_back(tiny_model_dir, tmp_path):
    """No export_quantization: one unquantized file in the export dtype, which transformers
    (and so `tunesmith chat model_name_or_path=<file>`) reads back with the same answers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.export.merge import run_export
    from tunesmith.infer.engine import GenParams
    from tunesmith.infer.hf import HFEngine
    from tunesmith.infer.load import load_engine

    from .test_export import PROMPTS

    out = tmp_path / "gg"
    result = run_export(load_config(None, {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32",
                                           "export_dir": str(out), "export_format": "gguf"}))
    assert result["passed"] and result["files"] == ["gg.f32.gguf", "Modelfile"]
    model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file="gg.f32.gguf", dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(out), gguf_file="gg.f32.gguf")
    reread = HFEngine(model, tokenizer, get_template("auto", tokenizer))
    original = load_engine(load_config(None, {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32"}))
    params = GenParams(max_new_tokens=10)
    assert ([c.text for c in reread.batch_generate(PROMPTS, params)]
            == [c.text for c in original.batch_generate(PROMPTS, params)])
    assert reread.encode(PROMPTS[2]) == original.encode(PROMPTS[2])  # same vocab, merges, template
