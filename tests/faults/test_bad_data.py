"""Bad input data (RELIABILITY.md cases 1-7): every case is a row of a table below.

File-level faults stop the run with a one-line DataError naming ``file:line``; row-level faults
are skipped and counted by reason, with kept + dropped == total; too many drops fail before
training. A few cases also run through the real CLI in a subprocess (exit 2, no traceback).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from tests.conftest import REPO, write_rows
from tunesmith.config import load_config
from tunesmith.data.collate import PadCollator
from tunesmith.data.load import load_data
from tunesmith.data.templates import get_template
from tunesmith.data.tokenize import IGNORE
from tunesmith.errors import TunesmithError

GOOD = [{"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}]}
        for i in range(5)]
ALPACA = [{"instruction": f"Q{i}", "input": "", "output": f"A{i}"} for i in range(5)]


def _m(*turns):
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("tunesmith.paths.data_cache_dir", lambda: tmp_path / "data-cache")


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def _load(tok, **over):
    cfg = load_config(None, {"cutoff_len": 256, **over})
    return load_data(cfg, tok, get_template("auto", tok))


# --- row-level faults: skipped and counted, the run goes on --------------------------------
ROW_FAULTS = {  # id -> (good rows, bad row, expected drop reason)
    "missing_output_key": (ALPACA, {"instruction": "Q", "input": ""}, "missing_key"),
    "assistant_first": (GOOD, _m(("assistant", "A"), ("user", "Q")), "bad_role_order"),
    "two_user_turns": (GOOD, _m(("user", "Q"), ("user", "Q"), ("assistant", "A")), "bad_role_order"),
    "system_in_middle": (GOOD, _m(("user", "Q"), ("system", "S"), ("assistant", "A")), "bad_role_order"),
    "tool_without_call": (GOOD, _m(("user", "Q"), ("tool", "r"), ("assistant", "A")), "bad_role_order"),
    "ends_with_user": (GOOD, _m(("user", "Q"), ("assistant", "A"), ("user", "Q")), "no_response"),
    "empty_assistant": (GOOD, _m(("user", "Q"), ("assistant", "  \n")), "empty_response"),
    "content_int": (GOOD, _m(("user", "Q"), ("assistant", 42)), "non_string_content"),
    "content_list": (GOOD, _m(("user", ["Q"]), ("assistant", "A")), "non_string_content"),
    "content_null": (GOOD, _m(("user", None), ("assistant", "A")), "non_string_content"),
    "system_content_dict": (GOOD, _m(("system", {"x": 1}), ("user", "Q"), ("assistant", "A")),
                            "non_string_content"),
    "unknown_role": (GOOD, _m(("user", "Q"), ("bot", "A")), "bad_role"),
    "messages_not_list": (GOOD, {"messages": "hello"}, "bad_type"),
    "messages_missing": (GOOD, {"text_only": "hello"}, "missing_key"),
    "messages_empty": (GOOD, {"messages": []}, "empty"),
    "turn_not_object": (GOOD, {"messages": ["hi", "there"]}, "bad_type"),
    "row_is_list": (GOOD, ["user", "Q"], "bad_type"),
    "row_is_number": (GOOD, 7, "bad_type"),
    "alpaca_empty_output": (ALPACA, {"instruction": "Q", "input": "", "output": ""}, "empty_response"),
    "alpaca_instruction_int": (ALPACA, {"instruction": 3, "output": "A"}, "non_string_content"),
    "alpaca_bad_history": (ALPACA, {"instruction": "Q", "output": "A", "history": ["x"]}, "bad_type"),
    "sharegpt_unknown_from": ([{"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}] * 5,
                              {"conversations": [{"from": "alien", "value": "Q"}]}, "bad_role"),
    "pairs_missing_human": ([{"conversation": [{"human": "Q", "assistant": "A"}]}] * 5,
                            {"conversation": [{"assistant": "A"}]}, "missing_key"),
    "reasoning_empty_response": ([{"Question": "Q", "Complex_CoT": "c", "Response": "R"}] * 5,
                                 {"Question": "Q", "Complex_CoT": "c", "Response": " "}, "empty_field"),
    "all_labels_truncated": (GOOD, _m(("user", "word " * 400), ("assistant", "A")), "no_label_after_truncation"),
}


@pytest.mark.parametrize("case", sorted(ROW_FAULTS))
def test_bad_row_is_skipped_and_counted(tmp_path, tok, case):
    good, bad, reason = ROW_FAULTS[case]
    path = write_rows(tmp_path / "mixed.jsonl", list(good) + [bad])
    data = _load(tok, dataset=str(path))
    report = json.loads(data.report.save(tmp_path / "out").read_text())
    assert report["dropped_by_reason"] == {reason: 1}, report
    assert report["kept"] + report["dropped"] == report["total"] == len(good) + 1
    assert report["first_errors"][reason][0].startswith(f"{path}:{len(good) + 1}: ")
    assert all(any(lab != IGNORE for lab in ex.labels) for ex in data.train)


def test_mixed_bad_rows_reported_by_reason(tmp_path, tok):
    bad = [ROW_FAULTS[c][1] for c in ("assistant_first", "empty_assistant", "content_int", "messages_missing")]
    path = write_rows(tmp_path / "mixed.jsonl", GOOD * 2 + bad)
    data = _load(tok, dataset=str(path))
    r = data.report
    assert (r.total, r.kept, r.n_dropped) == (14, 10, 4) and len(r.dropped) == 4
    assert "4 dropped" in r.summary() and "bad_role_order: 1" in r.summary()


# --- file-level faults: one-line DataError naming the place ---------------------------------
def _bytes(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


GOOD_LINE = json.dumps(GOOD[0]).encode()
FILE_FAULTS = {  # id -> (file name, bytes, message regex; {path} is the file)
    "truncated_jsonl": ("d.jsonl", GOOD_LINE + b"\n" + GOOD_LINE[:20], r"{path}:2: invalid JSON"),
    "truncated_json": ("d.json", b"[\n" + GOOD_LINE + b",\n" + GOOD_LINE[:25], r"{path}:3: invalid JSON"),
    "non_utf8_jsonl": ("d.jsonl", GOOD_LINE + b"\n" + GOOD_LINE + b"\n" + GOOD_LINE.replace(b"Q0", b"Q\xff"),
                       r"{path}:3: not valid UTF-8 \(byte 0xff"),
    "non_utf8_json": ("d.json", b"[\n" + GOOD_LINE.replace(b"A0", b"A\xc3") + b"]", r"{path}:2: not valid UTF-8"),
    "non_utf8_csv": ("d.csv", b"prompt,completion\nhi,there\nbad\xfe,x\n", r"{path}:\d+: not valid UTF-8"),
    "latin1_jsonl": ("d.jsonl", GOOD_LINE.replace(b"Q0", "Qé".encode("latin-1")), r"{path}:1: not valid UTF-8"),
    "garbage_line_mid_file": ("d.jsonl", GOOD_LINE + b"\n\n" + b"not json\n" + GOOD_LINE, r"{path}:3: invalid JSON"),
    "empty_jsonl": ("d.jsonl", b"", r"dataset is empty.*d.jsonl"),
    "blank_lines_only": ("d.jsonl", b"\n  \n\n", r"dataset is empty.*d.jsonl"),
    "empty_json_list": ("d.json", b"[]", r"dataset is empty.*d.json"),
    "whitespace_json": ("d.json", b"  \n ", r"dataset is empty.*d.json"),
    "json_scalar": ("d.json", b'"hello"', r"{path}: expected a JSON list of objects, got str"),
    "unsupported_suffix": ("d.txt", b"hello", r"{path}: unsupported file type '.txt'"),
    "corrupt_parquet": ("d.parquet", b"PAR1 not really", r"{path}: cannot read parquet"),
    "unknown_shape": ("d.jsonl", b'{"foo": 1}\n', r"cannot tell the data format from keys \['foo'\]"),
    "all_rows_bad": ("d.jsonl", b'{"messages": [{"role": "assistant", "content": "x"}]}\n' * 3,
                     r"all 3 rows of d: {path} \(openai\) were dropped .*bad_role_order.*first: {path}:1"),
}


@pytest.mark.parametrize("case", sorted(FILE_FAULTS))
def test_bad_file_is_a_one_line_error(tmp_path, tok, case):
    name, data, pattern = FILE_FAULTS[case]
    path = _bytes(tmp_path / name, data)
    with pytest.raises(TunesmithError) as err:
        _load(tok, dataset=str(path))
    message = str(err.value)
    assert "\n" not in message
    assert re.search(pattern.format(path=re.escape(str(path))), message), message


@pytest.mark.parametrize("name,data", [
    ("bom.jsonl", b"\xef\xbb\xbf" + GOOD_LINE + b"\n" + GOOD_LINE),
    ("bom.json", b"\xef\xbb\xbf[" + GOOD_LINE + b"," + GOOD_LINE + b"]"),
    ("bom.csv", b"\xef\xbb\xbfprompt,completion\nhi,there\nyo,hey\n"),
    ("crlf.jsonl", GOOD_LINE + b"\r\n" + GOOD_LINE + b"\r\n"),
    ("lines_as.json", GOOD_LINE + b"\n" + GOOD_LINE + b"\n"),  # JSON Lines saved as .json
])
def test_accepted_oddities(tmp_path, tok, name, data):
    data_obj = _load(tok, dataset=str(_bytes(tmp_path / name, data)))
    assert data_obj.report.kept == 2 and data_obj.report.n_dropped == 0
    assert "\ufeff" not in tok.decode(data_obj.train[0].input_ids)


def test_blank_lines_keep_line_numbers_and_bad_first_row(tmp_path, tok):
    first_bad = write_rows(tmp_path / "first.jsonl", [{"messages": 5}] + GOOD)
    assert _load(tok, dataset=str(first_bad)).report.dropped == {"bad_type": 1}
    report_path = tmp_path / "ok.jsonl"
    write_rows(report_path, GOOD)
    with open(report_path, "a") as fh:
        fh.write("\n\n" + json.dumps({"messages": 5}) + "\n")
    data = _load(tok, dataset=str(report_path))
    assert data.report.examples["bad_type"][0].startswith(f"{report_path}:8: ")


def test_drop_ratio_over_limit_fails_before_training(tmp_path, tok):
    path = write_rows(tmp_path / "d.jsonl", GOOD[:2] + [_m(("assistant", "x"))] * 3)
    with pytest.raises(TunesmithError, match=r"3/5 rows dropped, over max_drop_ratio=0.5.*d.jsonl:3"):
        _load(tok, dataset=str(path))
    assert _load(tok, dataset=str(path), max_drop_ratio=0.7).report.kept == 2
    with pytest.raises(TunesmithError, match="strict"):
        _load(tok, dataset=str(path), max_drop_ratio=0.7, strict=True)


def test_truncation_counted_and_no_row_without_labels(tmp_path, tok):
    long = _m(("user", "Q?"), ("assistant", "word " * 300))
    path = write_rows(tmp_path / "d.jsonl", GOOD + [long])
    data = _load(tok, dataset=str(path), cutoff_len=64)
    assert data.report.truncated == 1 and data.report.kept == 6
    assert max(len(e.input_ids) for e in data.train) == 64
    assert all(any(lab != IGNORE for lab in e.labels) for e in data.train)


# --- the registry -------------------------------------------------------------------------
def _registry(tmp_path, entries):
    (tmp_path / "dataset_info.json").write_text(json.dumps(entries), encoding="utf-8")


@pytest.mark.parametrize("entries,name,pattern", [
    ({"gone": {"file_name": "missing.json"}}, "gone", r"dataset 'gone': file 'missing.json' not found"),
    ({"mix": {"file_name": "both.jsonl", "formatting": "sharegpt"}}, "mix",
     r"all 1 rows of mix: .*both.jsonl \(sharegpt\) were dropped"),
    ({"identity": {"file_name": "both.jsonl"}}, "identiy", r"did you mean 'identity'"),
    ({"esc": {"file_name": "../x.json"}}, "esc", r"dataset 'esc': path '../x.json' escapes dataset_dir"),
    ({"ab": {"file_name": "/etc/passwd"}}, "ab", r"dataset 'ab': absolute path"),
])
def test_registry_errors_name_the_entry(tmp_path, tok, entries, name, pattern):
    write_rows(tmp_path / "both.jsonl", [{"instruction": "a", "output": "b",
                                          "messages": [{"role": "user", "content": "x"}]}])
    _registry(tmp_path, entries)
    with pytest.raises(TunesmithError, match=pattern):
        _load(tok, dataset=name, dataset_dir=str(tmp_path), format="auto",
              max_drop_ratio=0.0)


def test_ambiguous_format_names_the_entry(tmp_path, tok):
    write_rows(tmp_path / "both.jsonl", [{"instruction": "a", "output": "b",
                                          "messages": [{"role": "user", "content": "x"}]}])
    _registry(tmp_path, {"both": {"file_name": "both.jsonl", "formatting": "openai"}})
    cfg_entry = {"both": {"file_name": "both.jsonl"}}
    _registry(tmp_path, cfg_entry)
    # formatting defaults to alpaca (LLaMA-Factory); an explicit auto format asks the rows
    from tunesmith.data.registry import resolve_dataset

    spec = resolve_dataset("both", str(tmp_path))
    spec.format = "auto"
    from tunesmith.data.load import open_dataset

    with pytest.raises(TunesmithError, match=r"dataset 'both': .*fit several formats"):
        open_dataset(spec, load_config(None, {}).data)


def test_invalid_registry_json(tmp_path, tok):
    (tmp_path / "dataset_info.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(TunesmithError, match="dataset_info.json: invalid JSON"):
        _load(tok, dataset="x", dataset_dir=str(tmp_path))


def test_unknown_format_name_suggests(tmp_path, tok):
    path = write_rows(tmp_path / "d.jsonl", GOOD)
    with pytest.raises(TunesmithError, match="did you mean 'alpaca'"):
        _load(tok, dataset=str(path), format="alpacca")


# --- case 7: no pad token --------------------------------------------------------------------
def test_eos_labelled_without_pad_token(tiny_llama3_dir, tmp_path):
    from tunesmith.model.load import load_tokenizer

    raw = AutoTokenizer.from_pretrained(str(tiny_llama3_dir))
    assert raw.pad_token is None
    tokenizer = load_tokenizer(load_config(None, {"model_name_or_path": str(tiny_llama3_dir)}).model,
                               tiny_llama3_dir)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # pad falls back to EOS
    path = write_rows(tmp_path / "d.jsonl", GOOD)
    data = load_data(load_config(None, {"dataset": str(path)}), tokenizer, get_template("auto", tokenizer))
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert all(ex.labels[-1] == eot for ex in data.train)
    batch = PadCollator(tokenizer.pad_token_id)([{"input_ids": e.input_ids, "labels": e.labels}
                                                 for e in data.train[:2]] + [
        {"input_ids": data.train[0].input_ids[:5], "labels": data.train[0].labels[:5]}])
    # padding uses the EOS id but is never labelled; every real EOS stays labelled
    n = len(data.train[0].input_ids)
    assert batch["labels"][0, n - 1].item() == eot and (batch["labels"][2, 5:] == IGNORE).all()


# --- through the CLI: exit 2, one line naming the place, no traceback ----------------------
def _cli_args(tmp_path, tiny_model_dir, *extra):
    return ["train", f"model_name_or_path={tiny_model_dir}", f"output_dir={tmp_path / 'run'}",
            "max_steps=1", "dtype=fp32", *extra]


@pytest.mark.parametrize("case", ["truncated_jsonl", "non_utf8_jsonl", "all_rows_bad", "empty_jsonl",
                                  "unsupported_suffix"])
def test_cli_train_refuses_bad_file(tmp_path, tiny_model_dir, capsys, case):
    from tunesmith.cli import main

    name, data, pattern = FILE_FAULTS[case]
    path = _bytes(tmp_path / name, data)
    assert main(_cli_args(tmp_path, tiny_model_dir, f"dataset={path}")) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(errors) == 1
    assert re.search(pattern.format(path=re.escape(str(path))), errors[0]), err
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()


def test_cli_train_refuses_traversal(tmp_path, tiny_model_dir, capsys):
    from tunesmith.cli import main

    _registry(tmp_path, {"evil": {"file_name": "../../etc/passwd"}})
    assert main(_cli_args(tmp_path, tiny_model_dir, "dataset=evil", f"dataset_dir={tmp_path}")) == 2
    err = capsys.readouterr().err
    assert "dataset 'evil': path '../../etc/passwd' escapes dataset_dir" in err and "Traceback" not in err


def test_cli_subprocess_truncated_jsonl(tmp_path, tiny_model_dir):
    """The real process: exit status 2, one error line with file:line, no traceback."""
    path = _bytes(tmp_path / "d.jsonl", GOOD_LINE + b"\n" + GOOD_LINE[:20])
    cmd = [sys.executable, "-m", "tunesmith.cli", *_cli_args(tmp_path, tiny_model_dir, f"dataset={path}")]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TUNESMITH_HOME": str(tmp_path / "home"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {path}:2: invalid JSON: Unterminated string starting at (column 15)"] or (
        len(errors) == 1 and f"{path}:2: invalid JSON" in errors[0]), proc.stderr


@pytest.mark.slow
def test_tiny_model_without_pad_token_learns_to_stop(tiny_llama3_dir, tmp_path):
    """Case 7 end to end: pad falls back to EOS, yet EOS is labelled, so the model learns to stop."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunesmith.train.run import run_training

    rows = [{"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]}] * 16
    path = write_rows(tmp_path / "d.jsonl", rows)
    cfg = load_config(None, {"model_name_or_path": str(tiny_llama3_dir), "dataset": str(path),
                             "output_dir": str(tmp_path / "run"), "method": "full", "max_steps": 30,
                             "learning_rate": 1e-2, "per_device_train_batch_size": 4, "save_strategy": "no",
                             "dtype": "fp32", "logging_steps": 10, "plot_loss": False})
    run_training(cfg)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "run"))
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "run"))
    prompt = tok.apply_chat_template(rows[0]["messages"][:1], add_generation_prompt=True, return_tensors="pt",
                                     return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
    new = out[0, prompt["input_ids"].shape[1]:].tolist()
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert eot in new and new.index(eot) <= 3, tok.decode(new)  # "hi" then <|eot_id|>
