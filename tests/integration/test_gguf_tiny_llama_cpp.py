"""GGUF round trips through llama.cpp itself (llama-cpp-python) for tiny random models of every
architecture the exporter writes: llama.cpp must split the rendered chat prompts into the same
ids as transformers and compute the same logits (f16 rounding only); a K-quant on rows that are
not a multiple of 256 falls back per tensor and still runs."""

import json

import numpy as np
import pytest
import torch

from tunesmith.cli import main
from tunesmith.data.templates import get_template
from tunesmith.export.gguf_check import llama_cpp_logits

from . import gguf_models

PROMPTS = [[{"role": "user", "content": "Who are you?"}],
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
           [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! ünïcode 123"},
            {"role": "user", "content": "Tell me about the lighthouse."}]]
F16_TOLERANCE = 1e-2  # relative L2 logit error; f16 weights round at ~5e-4 each


@pytest.fixture(scope="module")
def tiny_dirs(bundled_dir, tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("gguf-tiny")
    bpe = AutoTokenizer.from_pretrained(str(bundled_dir))
    return {"qwen2": (gguf_models.build_qwen2(bpe, root / "qwen2"), "auto"),
            "qwen3": (gguf_models.build_qwen3(bpe, root / "qwen3"), "auto"),
            "llama": (gguf_models.build_llama3_rope(bpe, root / "llama"), "auto"),
            "mistral": (gguf_models.build_mistral(root / "spm", root / "mistral"), "mistral")}


def _hf(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(model_dir))


def _export(model_dir, template, out, quantization="f16", *flags):
    return main(["export", f"model_name_or_path={model_dir}", f"export_dir={out}",
                 "export_format=gguf", f"export_quantization={quantization}", f"template={template}",
                 "dtype=fp32", *flags])


def _same_ids_and_logits(path, model, tokenizer, template):
    import llama_cpp

    vocab = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    for conversation in PROMPTS:
        text = template.render(tokenizer, conversation, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert vocab.tokenize(text.encode(), add_bos=False, special=True) == ids, text
        with torch.no_grad():
            want = model(torch.tensor([ids])).logits[0].numpy()
        got = llama_cpp_logits(path, ids)
        error = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert error < F16_TOLERANCE, (path.name, error)
        assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.95
    vocab.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2", "qwen3", "llama", "mistral"])
def test_tiny_model_runs_in_llama_cpp_like_in_transformers(name, tiny_dirs, tmp_path, capsys):
    model_dir, template_name = tiny_dirs[name]
    out = tmp_path / name
    assert _export(model_dir, template_name, out) == 0
    check = json.loads((out / "export_check.json").read_text())
    assert check["passed"] and check["gguf_logits_by"] == "llama.cpp"
    model, tokenizer = _hf(model_dir)
    _same_ids_and_logits(out / f"{name}.f16.gguf", model, tokenizer,
                         get_template(template_name, tokenizer))
    modelfile = (out / "Modelfile").read_text()
    assert f"FROM ./{name}.f16.gguf" in modelfile
    assert ("[INST]" if name == "mistral" else "<|im_start|>") in modelfile


@pytest.mark.slow
def test_k_quant_on_rows_not_multiple_of_256_falls_back_and_runs(tiny_dirs, tmp_path, capsys):
    """hidden 64: no matrix row splits into 256-value K-quant blocks; llama.cpp stores each in
    its fallback type, the export says so, and the file still runs."""
    model_dir, _ = tiny_dirs["qwen2"]
    out = tmp_path / "kq"
    capsys.readouterr()
    assert _export(model_dir, "auto", out, "q8_0,q4_k_m", "--ollama", "tiny-qwen") == 0
    printed = capsys.readouterr().out
    assert f"ollama create tiny-qwen -f {out}/Modelfile" in printed
    assert "note: q4_k_m:" in printed and "not a multiple of 256" in printed
    files = json.loads((out / "export_check.json").read_text())["gguf_files"]
    types = files["kq.q4_k_m.gguf"]["types"]
    assert "Q4_K" not in types and types.get("Q5_0", 0) > 0, types
    assert set(files["kq.q8_0.gguf"]["types"]) == {"Q8_0", "F32"}
    assert not list(out.glob(".source*"))  # the temporary f32 source for llama.cpp is gone
    model, tokenizer = _hf(model_dir)
    ids = tokenizer("The lighthouse stood on a low island.")["input_ids"]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    for quant, bound in (("q8_0", 0.05), ("q4_k_m", 0.3)):
        got = llama_cpp_logits(out / f"kq.{quant}.gguf", ids)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < bound, quant


@pytest.mark.slow
def test_sentencepiece_vocab_from_tokenizer_json_alone_tokenizes_like_hf(tiny_dirs, tmp_path):
    """Without tokenizer.model, SentencePiece scores come from the merge ranks; llama.cpp then
    merges in HF's order."""
    import shutil

    import llama_cpp

    from tunesmith.export.gguf import write_gguf
    from tunesmith.export.gguf_quant import QUANTS

    model_dir, _ = tiny_dirs["mistral"]
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare)
    (bare / "tokenizer.model").unlink()
    model, tokenizer = _hf(bare)
    path = tmp_path / "bare.f16.gguf"
    write_gguf(path, QUANTS.get("f16"), model, tokenizer, get_template("mistral", tokenizer), "bare")
    vocab = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    for text in gguf_models.SPM_CORPUS + ["Unseen words: zebra quixotic 42!"]:
        assert vocab.tokenize(text.encode(), add_bos=True) == tokenizer(text)["input_ids"], text
    vocab.close()
