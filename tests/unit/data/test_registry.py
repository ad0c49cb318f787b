"""LLaMA-Factory dataset_info.json: fields, mixing, sample counts, and path containment."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import write_rows
from tunesmith.data.load import load_data
from tunesmith.data.registry import resolve_dataset
from tunesmith.data.templates import get_template
from tunesmith.errors import DataError

from .conftest import make_cfg

ALPACA = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(10)]


def registry(tmp_path, entries: dict):
    (tmp_path / "dataset_info.json").write_text(json.dumps(entries), encoding="utf-8")
    return tmp_path


def _load(tmp_path, tok, **over):
    return load_data(make_cfg(dataset_dir=str(tmp_path), **over), tok, get_template("auto", tok))


def test_sharegpt_tags_and_columns(tmp_path, chatml_tok):
    row = {"dialog": [{"speaker": "me", "text": "Weather?"}, {"speaker": "bot", "text": "Sunny."},
                      {"speaker": "me", "text": "Rain?"}, {"speaker": "call",
                      "text": "{\"name\": \"f\", \"arguments\": {}}"},
                      {"speaker": "obs", "text": "none"}, {"speaker": "bot", "text": "No rain."}],
           "sys": "Be helpful."}
    write_rows(tmp_path / "d.json", [row])
    registry(tmp_path, {"chat": {"file_name": "d.json", "formatting": "sharegpt",
                                 "columns": {"messages": "dialog", "system": "sys"},
                                 "tags": {"role_tag": "speaker", "content_tag": "text",
                                          "user_tag": "me", "assistant_tag": "bot",
                                          "function_tag": "call", "observation_tag": "obs"}}})
    data = _load(tmp_path, chatml_tok, dataset="chat")
    text = chatml_tok.decode(data.train[0].input_ids)
    assert "Be helpful." in text and "No rain." in text
    assert '<tool_call>\n{"name": "f", "arguments": {}}' in text  # ChatML: the <tool_call> fallback
    assert "<tool_response>\nnone\n</tool_response>" in text
    assert data.report.kept == 1


def test_openai_formatting_and_default_alpaca(tmp_path, chatml_tok):
    write_rows(tmp_path / "o.jsonl", [{"messages": [{"role": "user", "content": "x"},
                                                    {"role": "assistant", "content": "y"}]}])
    write_rows(tmp_path / "a.json", ALPACA)
    registry(tmp_path, {"o": {"file_name": "o.jsonl", "formatting": "openai"},
                        "a": {"file_name": "a.json"}})  # LLaMA-Factory's default: alpaca
    assert _load(tmp_path, chatml_tok, dataset="o,a").report.kept == 11


def test_mixing_with_counts_num_samples_and_max_samples(tmp_path, chatml_tok):
    write_rows(tmp_path / "a.json", ALPACA)
    write_rows(tmp_path / "b.jsonl", ALPACA)
    registry(tmp_path, {"a": {"file_name": "a.json", "num_samples": 4}, "b": {"file_name": "b.jsonl"}})
    assert _load(tmp_path, chatml_tok, dataset="a,b:3").report.total == 7
    assert _load(tmp_path, chatml_tok, dataset="a,b", max_samples=2).report.total == 4  # per dataset


def test_directory_and_path_datasets(tmp_path, chatml_tok):
    write_rows(tmp_path / "dir" / "1.jsonl", ALPACA[:3])
    write_rows(tmp_path / "dir" / "2.json", ALPACA[3:5])
    data = load_data(make_cfg(dataset=str(tmp_path / "dir")), chatml_tok, get_template("auto", chatml_tok))
    assert data.report.total == 5


def test_ranking_dataset_outside_a_preference_stage_names_the_stages(tmp_path, chatml_tok):
    write_rows(tmp_path / "p.json", [{"instruction": "q", "chosen": "a", "rejected": "b"}])
    registry(tmp_path, {"pref": {"file_name": "p.json", "ranking": True}})
    assert resolve_dataset("pref", str(tmp_path)).ranking
    with pytest.raises(DataError, match="'pref' is a preference \\(ranking\\) dataset.*stage: dpo or rm"):
        load_data(make_cfg(dataset="pref", dataset_dir=str(tmp_path)), chatml_tok,
                  get_template("auto", chatml_tok))


@pytest.mark.parametrize("entry,match", [
    ({"file_name": "a.json", "split": "test"}, "split 'test'"),
    ({"file_name": "a.json", "formatting": "xml"}, "formatting 'xml'"),
    ({"file_name": "a.json", "num_samples": -1}, "num_samples"),
    ({"file_name": "a.json", "columns": ["x"]}, "columns must be an object"),
    ({"script_url": "org/data"}, "no file_name .*not supported"),
    ({"hf_hub_url": ["org/data"]}, "hf_hub_url must be a string"),
    ("a.json", "must be an object"),
])
def test_bad_entries_name_the_entry(tmp_path, entry, match):
    write_rows(tmp_path / "a.json", ALPACA)
    registry(tmp_path, {"bad": entry})
    with pytest.raises(DataError, match=f"entry 'bad'.*{match}"):
        resolve_dataset("bad", str(tmp_path))


TRAVERSAL = [
    "../outside.json", "../../etc/passwd", "/etc/passwd", "sub/../../outside.json",
    "./../outside.json", "sub/../../../etc/passwd", "..", ".", "", "   ", "~/outside.json",
    "link_out.json", "linkdir/outside.json", "sub/../link_out.json", "a\x00b.json",
    "%2e%2e/outside.json", "..%2foutside.json", "..\\outside.json", "....//outside.json",
    "file:///etc/passwd", "//etc/passwd", "sub//../../outside.json",
]


@pytest.mark.parametrize("payload", TRAVERSAL)
def test_traversal_payloads_are_refused(tmp_path, payload):
    base = tmp_path / "data"
    (base / "sub").mkdir(parents=True)
    write_rows(tmp_path / "outside.json", ALPACA)
    os.symlink(tmp_path / "outside.json", base / "link_out.json")
    os.symlink(tmp_path, base / "linkdir")
    registry(base, {"evil": {"file_name": payload}})
    with pytest.raises(DataError) as err:
        resolve_dataset("evil", str(base))
    assert "dataset 'evil'" in str(err.value) or "entry 'evil'" in str(err.value)


def test_symlink_inside_dataset_dir_is_allowed(tmp_path):
    write_rows(tmp_path / "real.json", ALPACA)
    os.symlink(tmp_path / "real.json", tmp_path / "alias.json")
    registry(tmp_path, {"ok": {"file_name": "alias.json"}})
    assert resolve_dataset("ok", str(tmp_path)).path == (tmp_path / "real.json").resolve()


EXAMPLES = {"identity": 80, "emotional_support": 42, "emotional_support_pc": 20, "multi_turn": 20,
            "medical_reasoning": 20, "imdb_like": 40}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_datasets_load_completely(chatml_tok, name):
    from tests.conftest import REPO

    stage = "pt" if name == "imdb_like" else "sft"
    cfg = make_cfg(dataset=name, dataset_dir=str(REPO / "examples" / "data"), stage=stage,
                   cutoff_len=1024, placeholders={"name": "Nova", "author": "Tunesmith Labs"})
    data = load_data(cfg, chatml_tok, None if stage == "pt" else get_template("auto", chatml_tok))
    assert (data.report.total, data.report.kept, data.report.truncated) == (EXAMPLES[name], EXAMPLES[name], 0)
    if name == "medical_reasoning":
        assert "<think>\n" in chatml_tok.decode(data.train[0].input_ids)


def test_saved_hf_dataset_dir_and_registry_dir(tmp_path, chatml_tok):
    import datasets

    datasets.Dataset.from_list(ALPACA).save_to_disk(str(tmp_path / "saved"))
    data = load_data(make_cfg(dataset=str(tmp_path / "saved")), chatml_tok, get_template("auto", chatml_tok))
    assert data.report.total == 10 and data.report.n_dropped == 0
    write_rows(tmp_path / "reg" / "a.json", ALPACA[:3])
    registry(tmp_path / "reg", {"a": {"file_name": "a.json"}})  # never read as rows
    data = load_data(make_cfg(dataset=str(tmp_path / "reg")), chatml_tok, get_template("auto", chatml_tok))
    assert data.report.total == 3
