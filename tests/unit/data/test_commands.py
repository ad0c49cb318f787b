"""``tunesmith data preview|validate|stats`` through the CLI entry point (in-process)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_rows
from tunesmith.cli import main

ROWS = [{"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}]}
        for i in range(4)]


@pytest.fixture
def config(tmp_path, tiny_model_dir):
    def make(rows, **extra):
        data = write_rows(tmp_path / "d.jsonl", rows)
        cfg = {"model_name_or_path": str(tiny_model_dir), "dataset": str(data), "cutoff_len": 64, **extra}
        path = tmp_path / "cfg.yaml"
        path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in cfg.items()), encoding="utf-8")
        return str(path), data
    return make


def test_preview_marks_masked_spans(config, capsys):
    cfg, _ = config(ROWS)
    assert main(["data", "preview", cfg, "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== example") == 2
    for label in ("input_ids:", "inputs:", "label_ids:", "labels:"):
        assert label in out
    assert "[-100 x " in out and "A0.<|im_end|>" in out and "Q0?<|im_end|>" in out.split("labels:")[0]


def test_preview_overrides_after_config(config, capsys):
    cfg, _ = config(ROWS)
    assert main(["data", "preview", cfg, "train_on=everything", "-n", "1"]) == 0
    assert "[-100 x" not in capsys.readouterr().out.split("labels:")[1]


def test_validate_lists_every_error_with_location(config, capsys):
    bad = [{"messages": [{"role": "assistant", "content": "x"}]}, {"messages": 3},
           {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 5}]}]
    cfg, data = config(ROWS + bad + [ROWS[0]])
    with open(data, "a", encoding="utf-8") as fh:
        fh.write("{broken\n")
    assert main(["data", "validate", cfg]) == 0  # some rows are fine: report, don't fail
    out = capsys.readouterr().out
    assert f"error: {data}:5: message 0: expected a user turn, got assistant" in out
    assert f"error: {data}:6: key 'messages': expected a list, got int" in out
    assert f"error: {data}:7: " in out and "content must be a string" in out
    assert f"error: {data}:9: invalid JSON" in out
    assert f"warning: {data}:8: duplicate of an earlier row" in out
    assert "9 rows: 5 ok, 4 with errors, 1 warnings" in out
    assert main(["data", "validate", cfg, "--strict"]) == 2


def test_validate_all_bad_exits_2(config, capsys):
    cfg, _ = config([{"messages": 1}, {"messages": [{"role": "user", "content": "q"}]}])
    assert main(["data", "validate", cfg]) == 2


def test_validate_strict_turns_warnings_into_errors(config, capsys):
    long = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "word " * 100}]}
    cfg, data = config(ROWS + [long])
    assert main(["data", "validate", cfg]) == 0
    assert f"warning: {data}:5: longer than cutoff_len=64" in capsys.readouterr().out
    assert main(["data", "validate", cfg, "--strict"]) == 2


def test_stats(config, capsys):
    empty = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}
    long = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "word " * 100}]}
    cfg, _ = config(ROWS + [ROWS[1], empty, long])
    assert main(["data", "stats", cfg, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["rows"], st["kept"], st["duplicates"], st["empty_responses"], st["rows_over_cutoff"]) == (7, 6, 1, 1, 1)
    assert st["response_tokens"]["max"] > 100 > st["response_tokens"]["p50"]
    assert st["prompt_tokens"]["min"] > 0
    assert main(["data", "stats", cfg]) == 0
    text = capsys.readouterr().out
    assert "rows over cutoff_len (64): 1" in text and "response_tokens: min" in text


def test_bad_action_is_one_line_error(config, capsys):
    cfg, _ = config(ROWS)
    with pytest.raises(SystemExit) as exc:
        main(["data", "explode", cfg])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_validate_json_rows_are_named_by_index(tmp_path, tiny_model_dir, capsys):
    data = write_rows(tmp_path / "d.json", ROWS + [{"messages": [{"role": "user", "content": "q"}]}])
    assert main(["data", "validate", f"model_name_or_path={tiny_model_dir}", f"dataset={data}"]) == 0
    assert f"error: {data}[4]: conversation does not end with an assistant turn" in capsys.readouterr().out


def test_zero_sample_count_is_refused(tmp_path, tiny_model_dir, capsys):
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    assert main(["data", "stats", f"model_name_or_path={tiny_model_dir}", f"dataset={data}:0"]) == 2
    assert "the sample count must be positive" in capsys.readouterr().err
