"""Named templates: sensible rendering, prefix preservation, stop strings, system prompts,
the mismatch warning, and a clear error for templates that rewrite history."""

from __future__ import annotations

import warnings

import pytest

from tunesmith.data.conversation import Conversation
from tunesmith.data.template_library import NAMED_TEMPLATES
from tunesmith.data.templates import Template, TemplateError, get_template, template_mismatch
from tunesmith.data.tokenize import IGNORE, encode_conversation

CONV = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello there."}, {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "Goodbye."}]

MARKERS = {"chatml": "<|im_start|>assistant\n", "qwen": "<|im_start|>assistant\n",
           "qwen3_nothink": "<|im_start|>assistant\n",
           "smollm2": "<|im_start|>assistant\n", "llama3": "<|start_header_id|>assistant",
           "deepseek": "Assistant: ", "deepseek-r1": "<｜Assistant｜>", "mistral": "[/INST]",
           "gemma": "<start_of_turn>model\n"}


def _named(name, tok):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_template(name, tok)


def test_every_named_template_is_listed():
    assert set(MARKERS) == set(NAMED_TEMPLATES)


@pytest.mark.parametrize("name", sorted(NAMED_TEMPLATES))
def test_named_template_renders_and_labels_exact_turns(name, chatml_tok):
    template = _named(name, chatml_tok)
    text = template.render(chatml_tok, CONV)
    assert "Be kind." in text and "hi" in text and MARKERS[name].strip() in text
    full, spans = template.assistant_spans(chatml_tok, CONV, [2, 4])  # prefix-preserving
    assert [full[s:e].strip().startswith(w) for (s, e), w in zip(spans, ["Hello", "Goodbye"])] == [True, True]
    [ex] = encode_conversation(Conversation(CONV), chatml_tok, template, train_on="all_assistant",
                               cutoff_len=512)
    got = chatml_tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE])
    assert "Hello there." in got and "Goodbye." in got and "hi" not in got.replace("there", "")
    assert template.generation_prompt(chatml_tok, CONV[:2]).startswith(full[:spans[0][0]].rstrip())


@pytest.mark.parametrize("name,stop", [("chatml", "<|im_end|>"), ("llama3", "<|eot_id|>"),
                                       ("gemma", "<end_of_turn>"), ("deepseek", "<|im_end|>")])
def test_stop_strings(name, stop, chatml_tok):
    # deepseek ends a turn with the tokenizer's EOS, which is <|im_end|> for this tokenizer
    assert _named(name, chatml_tok).stop_strings(chatml_tok) == [stop]


def test_default_system_per_template(chatml_tok):
    assert "You are a helpful assistant." in _named("qwen", chatml_tok).render(chatml_tok, CONV[1:3])
    assert "Be kind." in _named("qwen", chatml_tok).render(chatml_tok, CONV)  # the row's own wins
    assert "system" not in _named("chatml", chatml_tok).render(chatml_tok, CONV[1:3])


def test_config_default_system_overrides(chatml_tok):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        template = get_template("chatml", chatml_tok, default_system="Speak softly.")
    assert template.render(chatml_tok, CONV[1:3]).startswith("<|im_start|>system\nSpeak softly.")


def test_gemma_folds_system_into_first_user_turn(chatml_tok):
    text = _named("gemma", chatml_tok).render(chatml_tok, CONV[:3])
    assert text.count("<start_of_turn>user") == 1 and "Be kind.\n\nhi" in text


def test_mismatch_warning(chatml_tok, llama3_tok):
    with pytest.warns(UserWarning, match="differs from the model's own chat template"):
        get_template("llama3", chatml_tok)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_template("smollm2", chatml_tok)  # SmolLM2's own template with its default system
        get_template("llama3", llama3_tok)  # same template as the tokenizer's own
    assert template_mismatch(_named("chatml", chatml_tok), chatml_tok)  # missing default system


def test_unknown_template_suggests(chatml_tok):
    from tunesmith.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'llama3'"):
        get_template("lama3", chatml_tok)


# Drops earlier <think> blocks from the history, as DeepSeek-R1's own template does.
DROP_THINK = (
    "{% for m in messages %}{% set c = m['content'] %}"
    "{% if m['role'] == 'assistant' and not loop.last %}{% set c = c.split('</think>')[-1] %}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\n' + c + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

THINK_CONV = [{"role": "user", "content": "a"},
              {"role": "assistant", "content": "<think>\nx\n</think>\n\nA."},
              {"role": "user", "content": "b"},
              {"role": "assistant", "content": "<think>\ny\n</think>\n\nB."}]


def test_non_prefix_preserving_template_is_explained(chatml_tok):
    template = Template("r1-like", DROP_THINK)
    with pytest.raises(TemplateError, match="not prefix-preserving.*<think>.*split_turns"):
        encode_conversation(Conversation(THINK_CONV), chatml_tok, template,
                            train_on="all_assistant", cutoff_len=512)
    # the fix it names works: each sample renders its own history unchanged
    examples = encode_conversation(Conversation(THINK_CONV), chatml_tok, template,
                                   train_on="split_turns", cutoff_len=512)
    assert len(examples) == 2
