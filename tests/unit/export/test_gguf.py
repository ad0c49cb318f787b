"""export_format: gguf: a Llama GGUF that transformers reads back, answering like the adapter."""

import json

import pytest
import torch

from tunesmith.config import load_config
from tunesmith.data.templates import get_template
from tunesmith.errors import ConfigError
from tunesmith.export.gguf import permute_rotary
from tunesmith.export.merge import run_export
from tunesmith.infer.engine import GenParams
from tunesmith.infer.hf import HFEngine
from tunesmith.infer.load import load_engine

from .test_export import PROMPTS, adapter_dir  # noqa: F401  (module fixture)


@pytest.mark.slow
def test_gguf_export_loads_back_and_answers_like_the_adapter(tiny_model_dir, adapter_dir,  # noqa: F811
                                                              tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "gg"
    over = {"model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(adapter_dir),
            "dtype": "fp32"}
    result = run_export(load_config(None, {**over, "export_dir": str(out), "export_format": "gguf"}))
    assert result["passed"] and result["saved"]["tensors"] == 21
    name = json.loads((out / "tunesmith_export.json").read_text())["files"][0]
    assert name == "gg.f32.gguf" and (out / name).is_file()
    # transformers reads model and tokenizer from the one file (gguf_file=)
    model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(out), gguf_file=name)
    reread = HFEngine(model, tokenizer, get_template("auto", tokenizer))
    tuned = load_engine(load_config(None, over))
    params = GenParams(max_new_tokens=10)
    answers = [c.text for c in tuned.batch_generate(PROMPTS, params)]
    assert [c.text for c in reread.batch_generate(PROMPTS, params)] == answers
    assert reread.encode(PROMPTS[2]) == tuned.encode(PROMPTS[2])  # same vocab, merges, template


def test_rotary_permutation_matches_llama_cpp_layout():
    # One head of dim 4: HF keeps rotary halves [x0 x1 | y0 y1]; llama.cpp interleaves pairs.
    w = torch.arange(8.0).reshape(4, 2)
    assert permute_rotary(w.numpy(), 1).tolist() == [[0, 1], [4, 5], [2, 3], [6, 7]]


def test_gguf_refuses_other_architectures(tmp_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from tunesmith.export.gguf import save_gguf

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10))
    cfg = load_config(None, {"export_dir": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="Llama-architecture"):
        save_gguf(model, AutoTokenizer, None, tmp_path, cfg)
