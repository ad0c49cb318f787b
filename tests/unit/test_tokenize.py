"""Golden labels: exactly the assistant tokens (+ end-of-turn) per train_on strategy."""

import pytest
from transformers import AutoTokenizer

from tunesmith.data.conversation import Conversation, RowError
from tunesmith.data.templates import get_template
from tunesmith.data.tokenize import IGNORE, encode_conversation

CONV = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello there."},
        {"role": "user", "content": "name?"}, {"role": "assistant", "content": "I am Nova."}]


@pytest.fixture(params=["chatml", "llama3"])
def tok(request, tiny_model_dir, tiny_llama3_dir):
    path = tiny_model_dir if request.param == "chatml" else tiny_llama3_dir
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    eot = "<|im_end|>" if request.param == "chatml" else "<|eot_id|>"
    return tokenizer, eot


def labelled_text(tokenizer, ex):
    return tokenizer.decode([t for t, l in zip(ex.input_ids, ex.labels) if l != IGNORE])


def test_render_equals_apply_chat_template(tok):
    tokenizer, _ = tok
    template = get_template("auto", tokenizer)
    [ex] = encode_conversation(Conversation(CONV), tokenizer, template, train_on="all_assistant",
                               cutoff_len=1024)
    assert ex.input_ids == tokenizer.apply_chat_template(CONV, tokenize=True, return_dict=False)
    assert tokenizer.decode(ex.input_ids) == tokenizer.apply_chat_template(CONV, tokenize=False)


@pytest.mark.parametrize("mode,expected", [
    ("all_assistant", ["Hello there.{eot}I am Nova.{eot}"]),
    ("last_turn", ["I am Nova.{eot}"]),
    ("split_turns", ["Hello there.{eot}", "I am Nova.{eot}"]),
])
def test_golden_labels(tok, mode, expected):
    tokenizer, eot = tok
    template = get_template("auto", tokenizer)
    examples = encode_conversation(Conversation(CONV), tokenizer, template, train_on=mode, cutoff_len=1024)
    assert [labelled_text(tokenizer, ex) for ex in examples] == [e.format(eot=eot) for e in expected]


def test_eos_labelled_even_without_pad_token(tiny_llama3_dir):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama3_dir))
    assert tokenizer.pad_token is None
    template = get_template("auto", tokenizer)
    [ex] = encode_conversation(Conversation(CONV[:3]), tokenizer, template, train_on="all_assistant",
                               cutoff_len=1024)
    assert ex.labels[-1] == tokenizer.convert_tokens_to_ids("<|eot_id|>")


def test_everything_labels_all_tokens(tok):
    tokenizer, _ = tok
    [ex] = encode_conversation(Conversation(CONV), tokenizer, get_template("auto", tokenizer),
                               train_on="everything", cutoff_len=1024)
    assert ex.labels == ex.input_ids


def test_truncation_that_removes_every_label_is_an_error(tok):
    tokenizer, _ = tok
    with pytest.raises(RowError) as err:
        encode_conversation(Conversation(CONV), tokenizer, get_template("auto", tokenizer),
                            train_on="all_assistant", cutoff_len=5)
    assert err.value.reason == "no_label_after_truncation"


def test_truncation_is_flagged(tok):
    tokenizer, _ = tok
    full = encode_conversation(Conversation(CONV), tokenizer, get_template("auto", tokenizer),
                               train_on="all_assistant", cutoff_len=1024)[0]
    cut = encode_conversation(Conversation(CONV), tokenizer, get_template("auto", tokenizer),
                              train_on="all_assistant", cutoff_len=len(full.input_ids) - 2)[0]
    assert cut.truncated and len(cut.input_ids) == len(full.input_ids) - 2


THINK = [{"role": "user", "content": "Why rest?"},
         {"role": "assistant", "content": "<think>\nTo heal.\n</think>\n\nTo let the body heal."}]


def test_token_across_the_prompt_answer_edge_is_cut_there(tiny_model_dir):
    """SmolLM2's BPE merges the ``>`` ending ``<｜Assistant｜>`` with the ``<`` opening ``<think>``.
    Training must see the prompt tokenized as inference tokenizes it, and label the whole
    ``<think>``: else the model never learns to open its answer with it."""
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    with pytest.warns(UserWarning, match="differs from the model's own chat template"):
        template = get_template("deepseek-r1", tokenizer)  # foreign to SmolLM2, as in the example
    prompt = template.generation_prompt(tokenizer, THINK[:1])
    whole = tokenizer(prompt + THINK[1]["content"], add_special_tokens=False, return_offsets_mapping=True)
    assert any(s < len(prompt) < e for s, e in whole["offset_mapping"])  # the case being tested
    [ex] = encode_conversation(Conversation(THINK), tokenizer, template, train_on="all_assistant",
                               cutoff_len=1024)
    first = ex.labels.index(next(label for label in ex.labels if label != IGNORE))
    assert ex.input_ids[:first] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert labelled_text(tokenizer, ex).startswith("<think>\nTo heal.\n</think>")
    assert tokenizer.decode(ex.input_ids).startswith(prompt + "<think>")
