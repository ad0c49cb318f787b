"""The fine-tuned bundled model, exported to GGUF and run by llama.cpp itself (llama-cpp-python):
the f16 file answers the identity prompts exactly as transformers does (the new name included),
through the rendered prompt and through the chat template stored in the file; the q8_0 and
q4_k_m files stay close to it on a held-out text.

Top-1 agreement is counted where the f16 file's choice is decided (its top token leads the
runner-up by ``gguf_report.DECIDED`` = 1 logit or more): SmolLM2-135M is unsure on ~40% of the
positions of plain prose (top-two gap under 0.5), where any rounding flips the choice; over all
positions the agreement is reported (docs/export.md), not asserted.
"""

import json

import pytest

from tunesmith.config import load_config
from tunesmith.export import gguf_report
from tunesmith.export.merge import run_export
from tunesmith.infer.engine import GenParams
from tunesmith.infer.load import load_engine

from ..conftest import REPO

IDENTITY_PROMPTS = ["Who are you?", "What is your name?", "你是谁？", "Tell me about yourself."]
LIMITS = {"q8_0": (0.99, 0.02), "q4_k_m": (0.95, 0.08)}  # (top-1 agreement, perplexity change)


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    """A short identity LoRA on the bundled model (2 epochs at lr 2e-3 learn the name), merged
    and exported as f16, q8_0 and q4_k_m GGUF files."""
    from tunesmith.train.run import run_training

    root = tmp_path_factory.mktemp("nova")
    train = load_config(str(REPO / "examples/identity.yaml"),
                        [f"output_dir={root / 'adapter'}", "dtype=fp32", "num_train_epochs=2",
                         "learning_rate=2e-3", f"dataset_dir={REPO / 'examples/data'}",
                         "plot_loss=false"])
    run_training(train)
    result = run_export(load_config(None, {
        "model_name_or_path": "smollm2-135m", "adapter_name_or_path": str(root / "adapter"),
        "export_dir": str(root / "nova"), "export_format": "gguf", "dtype": "fp32",
        "export_quantization": "f16,q8_0,q4_k_m"}))
    return train, root / "nova", result


@pytest.mark.slow
def test_f16_gguf_answers_like_transformers_and_knows_its_name(nova):
    import llama_cpp

    train, out, result = nova
    assert result["passed"] and result["gguf_logits_by"] == "llama.cpp"
    engine = load_engine(train, adapter=str(train.train.output_dir))
    llm = llama_cpp.Llama(str(out / "nova.f16.gguf"), n_ctx=512, verbose=False)
    for prompt in IDENTITY_PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        want = engine.generate(messages, GenParams(max_new_tokens=40))
        assert want.finish_reason == "stop" and "Nova" in want.text
        ids = engine.encode(messages)
        text = engine.template.render(engine.tokenizer, messages, add_generation_prompt=True)
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
        got = llm.create_completion(ids, max_tokens=40, temperature=0.0)["choices"][0]
        assert got["text"] == want.text and got["finish_reason"] == "stop"
        chat = llm.create_chat_completion(messages, max_tokens=40, temperature=0.0)["choices"][0]
        assert chat["message"]["content"] == want.text  # the chat template inside the file
    llm.close()
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./nova.f16.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile


def _scored(path, ids):
    llm = gguf_report.load(path)
    try:
        return gguf_report.score(llm, ids)
    finally:
        llm.close()


@pytest.mark.slow
def test_quantized_files_stay_close_to_f16_on_a_held_out_text(nova):
    _, out, result = nova
    llm = gguf_report.load(out / "nova.f16.gguf")
    ids = llm.tokenize(gguf_report.HELD_OUT.encode(), add_bos=True)
    llm.close()
    f16_top, f16_ppl, lead = _scored(out / "nova.f16.gguf", ids)
    decided = lead >= gguf_report.DECIDED
    assert decided.mean() > 0.2  # enough decided positions to count on
    for quant, (agreement, ppl_change) in LIMITS.items():
        top, ppl, _ = _scored(out / f"nova.{quant}.gguf", ids)
        assert abs(ppl / f16_ppl - 1) <= ppl_change, (quant, ppl, f16_ppl)
        assert (top == f16_top)[decided].mean() >= agreement, quant
    # The q8_0 file's own weights (dequantized, run in fp32 by transformers: no llama.cpp
    # activation rounding) agree with the f16 file's run the same way.
    f16_weights = gguf_report.weights_top1(out / "nova.f16.gguf", ids)
    q8_weights = gguf_report.weights_top1(out / "nova.q8_0.gguf", ids)
    assert (q8_weights == f16_weights)[decided].mean() >= LIMITS["q8_0"][0]
    sizes = {q: (out / f"nova.{q}.gguf").stat().st_size for q in ("f16", "q8_0", "q4_k_m")}
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_k_m"]
    check = json.loads((out / "export_check.json").read_text())
    assert "not a multiple of 256" in check["gguf_files"]["nova.q4_k_m.gguf"]["note"]
