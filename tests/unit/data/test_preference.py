"""Preference data (kinds ``pairs`` and ``unpaired``): every shape LLaMA-Factory's
dataset_info.json and TRL describe reads to the same pair, labels cover only each answer (plus
its end-of-turn), and bad pairs are dropped with a count."""

import json

import pytest

from tests.conftest import write_rows
from tests.unit.data.conftest import make_cfg
from tunesmith.data.load import load_data
from tunesmith.data.preview import preview
from tunesmith.data.stats import stats, validate
from tunesmith.data.templates import get_template
from tunesmith.data.tokenize import IGNORE

PROMPT = "Who are you?"
CHOSEN, REJECTED = "I am Nova, made by Tunesmith Labs.", "An AI."

SHAPES = {
    "alpaca": ({"instruction": PROMPT, "input": "", "chosen": CHOSEN, "rejected": REJECTED}, {}),
    "sharegpt": ({"conversations": [{"from": "human", "value": PROMPT}],
                  "chosen": {"from": "gpt", "value": CHOSEN},
                  "rejected": {"from": "gpt", "value": REJECTED}}, {"formatting": "sharegpt"}),
    "trl_strings": ({"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}, None),
    "trl_messages": ({"prompt": [{"role": "user", "content": PROMPT}],
                      "chosen": [{"role": "assistant", "content": CHOSEN}],
                      "rejected": [{"role": "assistant", "content": REJECTED}]}, None),
    "trl_implicit": ({"chosen": [{"role": "user", "content": PROMPT},
                                 {"role": "assistant", "content": CHOSEN}],
                      "rejected": [{"role": "user", "content": PROMPT},
                                   {"role": "assistant", "content": REJECTED}]}, None),
}


def _register(tmp_path, entry: dict) -> None:
    (tmp_path / "dataset_info.json").write_text(json.dumps({"pref": entry}), encoding="utf-8")


def _answer_text(tok, ex) -> str:
    return tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE])


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_reads_to_the_same_pair(shape, tmp_path, chatml_tok):
    row, entry = SHAPES[shape]
    write_rows(tmp_path / "p.json", [row, row])
    if entry is None:  # TRL shapes: a plain file path, format detected
        cfg = make_cfg(dataset=str(tmp_path / "p.json"))
    else:
        _register(tmp_path, {"file_name": "p.json", "ranking": True, **entry})
        cfg = make_cfg(dataset="pref", dataset_dir=str(tmp_path))
    tpl = get_template("auto", chatml_tok)
    data = load_data(cfg, chatml_tok, tpl, kind="pairs")
    chosen, rejected = data.train[:2]
    assert (chosen.flag, rejected.flag, chosen.row) == (1, 0, rejected.row)
    assert _answer_text(chatml_tok, chosen) == CHOSEN + "<|im_end|>"
    assert _answer_text(chatml_tok, rejected) == REJECTED + "<|im_end|>"
    prompt = tpl.generation_prompt(chatml_tok, [{"role": "user", "content": PROMPT}])
    start = next(i for i, lab in enumerate(chosen.labels) if lab != IGNORE)
    assert chatml_tok.decode(chosen.input_ids[:start]) == prompt
    assert chosen.input_ids[:start] == rejected.input_ids[:start]


def test_kto_tag_and_trl_unpaired(tmp_path, chatml_tok):
    rows = [{"instruction": PROMPT, "output": CHOSEN, "kto_tag": True},
            {"instruction": PROMPT, "output": REJECTED, "kto_tag": False}]
    write_rows(tmp_path / "k.json", rows)
    _register(tmp_path, {"file_name": "k.json", "columns": {
        "prompt": "instruction", "response": "output", "kto_tag": "kto_tag"}})
    tpl = get_template("auto", chatml_tok)
    data = load_data(make_cfg(dataset="pref", dataset_dir=str(tmp_path)), chatml_tok, tpl,
                     kind="unpaired")
    assert [e.flag for e in data.train] == [1, 0]
    trl = write_rows(tmp_path / "t.jsonl", [{"prompt": PROMPT, "completion": CHOSEN, "label": False}])
    [ex] = load_data(make_cfg(dataset=str(trl)), chatml_tok, tpl, kind="unpaired").train
    assert ex.flag == 0 and _answer_text(chatml_tok, ex) == CHOSEN + "<|im_end|>"


def test_bad_pairs_are_counted_and_reported(tmp_path, chatml_tok):
    good = {"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}
    rows = [good, {**good, "rejected": CHOSEN}, {**good, "rejected": " "},
            {**good, "chosen": CHOSEN * 40}]
    path = write_rows(tmp_path / "p.jsonl", rows)
    cfg = make_cfg(dataset=str(path), cutoff_len=64, max_drop_ratio=0.9)
    tpl = get_template("auto", chatml_tok)
    data = load_data(cfg, chatml_tok, tpl, kind="pairs")
    r = data.report
    assert (r.total, r.kept, r.truncated) == (4, 2, 1)
    assert r.dropped == {"same_answers": 1, "empty_response": 1}
    long_c, long_r = data.train[2:]  # cut at cutoff_len, the shared prompt whole on both sides
    start = next(i for i, lab in enumerate(long_r.labels) if lab != IGNORE)
    assert len(long_c.input_ids) == 64 and long_c.input_ids[:start] == long_r.input_ids[:start]
    st = stats(cfg, chatml_tok, tpl, kind="pairs")
    assert (st["same_answers"], st["empty_responses"], st["rows_over_cutoff"]) == (1, 1, 1)
    lines, code = validate(cfg, chatml_tok, tpl, strict=True, kind="pairs")
    assert code == 2 and any("identical" in x for x in lines) and any("cutoff" in x for x in lines)


def test_preview_shows_both_answers_side_by_side(tmp_path, chatml_tok):
    path = write_rows(tmp_path / "p.jsonl", [{"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}])
    text, _ = preview(make_cfg(dataset=str(path)), chatml_tok, get_template("auto", chatml_tok),
                      kind="pairs")
    row = next(line for line in text.splitlines() if CHOSEN[:20] in line)
    assert " | " in row and REJECTED in row  # one line holds both answers
    assert "chosen label_ids" in text and "rejected input_ids" in text


def test_registry_kind_must_match_the_stage(tmp_path, chatml_tok):
    from tunesmith.errors import DataError

    write_rows(tmp_path / "p.json", [{"instruction": PROMPT, "output": CHOSEN}])
    _register(tmp_path, {"file_name": "p.json"})
    with pytest.raises(DataError, match="not a preference dataset.*stage: sft or pt"):
        load_data(make_cfg(dataset="pref", dataset_dir=str(tmp_path)), chatml_tok,
                  get_template("auto", chatml_tok), kind="pairs")
