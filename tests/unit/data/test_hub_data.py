"""Datasets by ID through the real datasets/huggingface_hub clients and the stand-in hub.

``dataset: org/name`` (subset, split) and dataset_info.json ``hf_hub_url``/``ms_hub_url`` entries
go through the same format detection, column mapping, drop counting and one-line errors as local
files; a second read works offline from the cache.
"""

from __future__ import annotations

import json
import sys

import datasets  # noqa: F401  (imported first, so hub_env points its constants at the stand-in)
import pytest

from tunesmith.config import load_config
from tunesmith.data.load import read_conversations, tokenized
from tunesmith.data.report import DataReport
from tunesmith.data.templates import get_template
from tunesmith.errors import DataError, MissingExtraError

ROWS = [{"instruction": f"What is {i} plus {i}?", "output": f"{2 * i}."} for i in range(12)]
BAD = {"instruction": "a row without an answer"}


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


README = b"""---
configs:
- config_name: easy
  data_files:
  - split: train
    path: easy/train.jsonl
  - split: test
    path: easy/test.jsonl
- config_name: qa
  data_files:
  - split: train
    path: qa/train.jsonl
---
# tiny
"""


@pytest.fixture
def hub_data(hub_env):
    """Two dataset repos: one plain (alpaca rows, one bad), one with subsets and splits."""
    hub_env.add("tunesmith-test/sums", {"data/train.jsonl": _jsonl(ROWS + [BAD])},
                repo_type="dataset")
    qa = [{"Question": f"Q{i}?", "Answer": f"A{i}."} for i in range(5)]
    hub_env.add("tunesmith-test/multi", {"README.md": README, "easy/train.jsonl": _jsonl(ROWS[:4]),
                                         "easy/test.jsonl": _jsonl(ROWS[4:6]),
                                         "qa/train.jsonl": _jsonl(qa)}, repo_type="dataset")
    hub_env.add("tunesmith-test/gated-data", {"data/train.jsonl": _jsonl(ROWS)},
                repo_type="dataset", gated=True, tokens=("hf_granted",))
    return hub_env


def _read(tmp_path, **over):
    cfg = load_config(None, {"dataset_dir": str(tmp_path), **over})
    report = DataReport()
    convs = read_conversations(cfg.data, cfg.data.dataset, report)
    return convs, report


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_dataset_by_id_reads_rows_counts_drops_and_names_the_source(hub_data, tmp_path):
    convs, report = _read(tmp_path, dataset="tunesmith-test/sums")
    assert len(convs) == 12 and report.total == 13 and report.n_dropped == 1
    assert convs[0].messages[-1] == {"role": "assistant", "content": "0."}
    assert convs[3].origin == "tunesmith-test/sums[train][3]"
    assert report.sources == ["tunesmith-test/sums: tunesmith-test/sums[train] (alpaca)"]


def test_subset_split_and_column_mapping(hub_data, tmp_path):
    convs, _ = _read(tmp_path, dataset="tunesmith-test/multi", subset="easy", split="test")
    assert len(convs) == 2
    convs, report = _read(tmp_path, dataset="tunesmith-test/multi", subset="qa",
                          columns={"prompt": "Question", "response": "Answer"}, format="alpaca")
    assert len(convs) == 5 and report.n_dropped == 0
    assert convs[4].messages[-1]["content"] == "A4."


def test_dataset_info_hf_hub_url_entry(hub_data, tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "qa_hub": {"hf_hub_url": "tunesmith-test/multi", "subset": "qa", "split": "train",
                   "columns": {"prompt": "Question", "response": "Answer"}},
        "sums_hub": {"hf_hub_url": "tunesmith-test/sums", "num_samples": 3}}))
    convs, report = _read(tmp_path, dataset="qa_hub,sums_hub")
    assert len(convs) == 5 + 3 and report.n_dropped == 0


def test_second_read_offline_from_the_cache(hub_data, tmp_path, monkeypatch):
    first, _ = _read(tmp_path, dataset="tunesmith-test/sums")
    hub_data.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(sys.modules["huggingface_hub.constants"], "HF_HUB_OFFLINE", True)
    again, _ = _read(tmp_path, dataset="tunesmith-test/sums")
    assert [c.origin for c in again] == [c.origin for c in first]
    assert hub_data.requests == []
    with pytest.raises(DataError) as err:
        _read(tmp_path, dataset="tunesmith-test/never-fetched")
    line = _one_line(err)
    assert "tunesmith-test/never-fetched" in line and "HF_HUB_OFFLINE" in line
    assert str(datasets.config.HF_DATASETS_CACHE) in line


@pytest.mark.parametrize("name, over, expected", [
    ("tunesmith-test/nope", {}, "'tunesmith-test/nope' not found on "),
    ("tunesmith-test/gated-data", {}, "is gated: accept its terms at "),
    ("tunesmith-test/sums", {"split": "validation"}, 'Unknown split "validation"'),
    ("tunesmith-test/multi", {"subset": "fr"}, "BuilderConfig 'fr' not found"),
])
def test_hub_dataset_failures_are_one_line(hub_data, tmp_path, name, over, expected):
    with pytest.raises(DataError) as err:
        _read(tmp_path, dataset=name, **over)
    line = _one_line(err)
    assert expected in line and name in line


def test_hf_token_key_opens_a_gated_dataset(hub_data, tmp_path, monkeypatch):
    from argparse import Namespace

    from tunesmith.commands import load_run_config

    monkeypatch.setenv("HF_TOKEN", "")  # restored after the test
    args = Namespace(config=None, overrides={"dataset": "tunesmith-test/gated-data",
                                             "dataset_dir": str(tmp_path), "hf_token": "hf_granted"})
    cfg = load_run_config(args)
    convs = read_conversations(cfg.data, cfg.data.dataset, DataReport())
    assert len(convs) == 12


def test_tokenized_cache_hits_then_misses_when_the_hub_dataset_changes(hub_data, tmp_path,
                                                                       chatml_tok):
    cfg = load_config(None, {"dataset": "tunesmith-test/sums", "dataset_dir": str(tmp_path)})
    template = get_template("auto", chatml_tok)
    first, report = tokenized(cfg, cfg.data.dataset, chatml_tok, template)
    assert not report.from_cache and len(first) == 12
    _, report = tokenized(cfg, cfg.data.dataset, chatml_tok, template)
    assert report.from_cache
    hub_data.add("tunesmith-test/sums", {"data/train.jsonl": _jsonl(ROWS[:5])}, repo_type="dataset")
    changed, report = tokenized(cfg, cfg.data.dataset, chatml_tok, template)
    assert not report.from_cache and len(changed) == 5


def test_ms_hub_url_without_modelscope_is_one_line(hub_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "modelscope", None)
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "ms_only": {"ms_hub_url": "AI-ModelScope/sums"}}))
    with pytest.raises(MissingExtraError) as err:
        _read(tmp_path, dataset="ms_only")
    assert "pip install 'tunesmith[modelscope]'" in _one_line(err)


def test_ms_hub_url_call_path_through_a_stand_in_module(hub_data, tmp_path, monkeypatch):
    calls = []

    class MsDataset:  # the call tunesmith makes, with modelscope's signature
        @staticmethod
        def load(dataset_name, subset_name=None, data_dir=None, split=None, use_streaming=False):
            calls.append((dataset_name, subset_name, data_dir, split, use_streaming))
            return datasets.Dataset.from_list(ROWS[:4])

    monkeypatch.setitem(sys.modules, "modelscope", type("modelscope", (), {"MsDataset": MsDataset}))
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "both": {"hf_hub_url": "tunesmith-test/sums", "ms_hub_url": "AI-ModelScope/sums",
                 "subset": "default", "folder": "data"}}))
    convs, report = _read(tmp_path, dataset="both")
    assert len(convs) == 4 and calls == [("AI-ModelScope/sums", "default", "data", "train", False)]
    assert hub_data.requests == []


def test_download_dataset_ahead_of_time(hub_data, capsys):
    from tunesmith.cli import main

    assert main(["download", "--dataset", "tunesmith-test/multi", "--subset", "easy",
                 "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tunesmith-test/multi/easy[test]: 2 rows cached in ")
    assert str(datasets.config.HF_DATASETS_CACHE) in out
