"""Golden input_ids/labels: every format x every train_on mode x two tokenizer families.

Each format's row encodes the same conversation; our ids must equal ``apply_chat_template``'s and
the labelled tokens must be exactly the supervised assistant turns, end-of-turn included.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_rows
from tunesmith.data.load import load_data
from tunesmith.data.templates import get_template
from tunesmith.data.tokenize import IGNORE

from .conftest import make_cfg

SYS, Q1, A1, Q2, A2 = "Be brief.", "hi", "Hello there.", "name?", "I am Nova."
MULTI = [{"role": "system", "content": SYS}, {"role": "user", "content": Q1},
         {"role": "assistant", "content": A1}, {"role": "user", "content": Q2},
         {"role": "assistant", "content": A2}]
SINGLE = [{"role": "user", "content": Q2}, {"role": "assistant", "content": A2}]

ROWS = {  # format -> (row, the conversation it stands for)
    "openai": ({"messages": MULTI}, MULTI),
    "sharegpt": ({"system": SYS, "conversations": [
        {"from": "human", "value": Q1}, {"from": "gpt", "value": A1},
        {"from": "human", "value": Q2}, {"from": "gpt", "value": A2}]}, MULTI),
    "alpaca": ({"system": SYS, "instruction": Q2, "input": "", "output": A2,
                "history": [[Q1, A1]]}, MULTI),
    "human_assistant": ({"conversation_id": 1, "conversation": [
        {"system": SYS, "human": Q1, "assistant": A1}, {"human": Q2, "assistant": A2}]}, MULTI),
    "input_output": ({"conversation": [{"system": SYS, "input": Q1, "output": A1},
                                       {"input": Q2, "output": A2}]}, MULTI),
    "prompt_completion": ({"prompt": Q2, "completion": A2}, SINGLE),
    "reasoning": ({"Question": Q2, "Complex_CoT": "", "Response": A2}, SINGLE),
}

EXPECTED = {  # train_on -> labelled text per sample, for MULTI
    "all_assistant": ["{a1}{eot}{a2}{eot}"],
    "last_turn": ["{a2}{eot}"],
    "split_turns": ["{a1}{eot}", "{a2}{eot}"],
}


def labelled(tok, ex) -> str:
    return tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE])


def _load(tmp_path, tok, fmt, train_on):
    row, conv = ROWS[fmt]
    path = write_rows(tmp_path / f"{fmt}.jsonl", [row])
    cfg = make_cfg(dataset=str(path), train_on=train_on, format=fmt)
    return load_data(cfg, tok, get_template("auto", tok)), conv


@pytest.mark.parametrize("fmt", sorted(ROWS))
@pytest.mark.parametrize("train_on", sorted(EXPECTED))
def test_golden_labels(tmp_path, any_tok, fmt, train_on):
    tok, eot = any_tok
    data, conv = _load(tmp_path, tok, fmt, train_on)
    want = EXPECTED[train_on] if conv is MULTI else ["{a2}{eot}"]
    if conv is SINGLE and train_on == "split_turns":
        want = ["{a2}{eot}"]
    assert [labelled(tok, ex) for ex in data.train] == [w.format(a1=A1, a2=A2, eot=eot) for w in want]
    last = data.train[-1]
    assert last.input_ids == tok.apply_chat_template(conv, tokenize=True, return_dict=False)
    assert last.labels[last.input_ids.index(tok.convert_tokens_to_ids(eot), len(last.input_ids) - 3)] \
        != IGNORE  # the final end-of-turn token is supervised


@pytest.mark.parametrize("fmt", sorted(ROWS))
def test_everything_labels_every_token(tmp_path, any_tok, fmt):
    tok, _ = any_tok
    data, conv = _load(tmp_path, tok, fmt, "everything")
    [ex] = data.train
    assert ex.labels == ex.input_ids == tok.apply_chat_template(conv, tokenize=True, return_dict=False)


def test_literal_golden_ids_chatml(tmp_path, chatml_tok):
    """A literal golden on the ChatML tokenizer: masked prompt, labelled answer + <|im_end|>."""
    data, _ = _load(tmp_path, chatml_tok, "prompt_completion", "all_assistant")
    [ex] = data.train
    im_start, im_end = chatml_tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    answer = chatml_tok.encode(A2, add_special_tokens=False)
    assert ex.labels[-len(answer) - 2:] == answer + [im_end, IGNORE]
    assert set(ex.labels[:-len(answer) - 2]) == {IGNORE}
    assert ex.input_ids.count(im_start) == 3  # default system (SmolLM2's own template), user, assistant


def test_text_rows_label_everything_with_eos(tmp_path, chatml_tok):
    path = write_rows(tmp_path / "imdb.jsonl", [{"text": "A fine film."}])
    data = load_data(make_cfg(dataset=str(path), stage="pt"), chatml_tok, None)
    [ex] = data.train
    assert ex.labels == ex.input_ids and ex.input_ids[-1] == chatml_tok.eos_token_id
    assert chatml_tok.decode(ex.input_ids[:-1]).endswith("A fine film.")


def test_reasoning_uses_template_think_markers(tmp_path, chatml_tok):
    row = {"Question": "Why rest?", "Complex_CoT": "Sleep restores.", "Response": "Rest helps."}
    path = write_rows(tmp_path / "r.json", [row])
    template = get_template("auto", chatml_tok)
    template.think_open, template.think_close = "<reason>", "</reason>"
    [ex] = load_data(make_cfg(dataset=str(path)), chatml_tok, template).train
    assert labelled(chatml_tok, ex) == "<reason>\nSleep restores.\n</reason>\n\nRest helps.<|im_end|>"
