"""Loading: every file type, column mappings, autodetection, streaming, splits, the cache."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_rows
from tunesmith.data import load as load_mod
from tunesmith.data.load import load_data
from tunesmith.data.templates import get_template
from tunesmith.errors import DataError

from .conftest import make_cfg

QA = [{"Question": f"What helps sleep {i}?", "Complex_CoT": f"Think {i}.", "Response": f"Rest {i}."}
      for i in range(6)]


def _load(tok, **over):
    return load_data(make_cfg(**over), tok, get_template("auto", tok))


def _write(tmp_path, suffix, rows):
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        import csv

        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        write_rows(path, rows)
    return path


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
def test_columns_mapping_on_every_file_type(tmp_path, chatml_tok, suffix):
    path = _write(tmp_path, suffix, QA)
    data = _load(chatml_tok, dataset=str(path), columns={"prompt": "Question", "response": "Response"})
    assert data.report.kept == 6
    text = chatml_tok.decode(data.train[0].input_ids)
    assert "What helps sleep 0?" in text and "Rest 0." in text and "Think 0." not in text


def test_autodetect_reasoning_and_column_rules(tmp_path, chatml_tok):
    path = _write(tmp_path, ".jsonl", QA)
    assert "<think>\nThink 0.\n</think>" in chatml_tok.decode(_load(chatml_tok, dataset=str(path)).train[0].input_ids)
    mapped = _load(chatml_tok, dataset=str(path),
                   columns={"prompt": "Question", "cot": "Complex_CoT", "response": "Response"})
    assert mapped.report.sources[0].endswith("(reasoning)")


@pytest.mark.parametrize("fmt,row,columns", [
    ("human_assistant", {"dialog": [{"q": "hi", "a": "hello"}]},
     {"messages": "dialog", "prompt": "q", "response": "a"}),
    ("input_output", {"turns": [{"sys": "S.", "in": "hi", "out": "hello"}]},
     {"messages": "turns", "prompt": "in", "response": "out", "system": "sys"}),
    ("openai", {"chat": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
     {"messages": "chat"}),
    ("alpaca", {"ask": "hi", "more": "x", "say": "hello"}, {"prompt": "ask", "query": "more", "response": "say"}),
    ("text", {"review": "hello film"}, {"text": "review"}),
])
def test_columns_for_each_format(tmp_path, chatml_tok, fmt, row, columns):
    path = write_rows(tmp_path / "d.jsonl", [row])
    stage = "pt" if fmt == "text" else "sft"
    template = None if stage == "pt" else get_template("auto", chatml_tok)
    data = load_data(make_cfg(dataset=str(path), columns=columns, stage=stage), chatml_tok, template)
    assert data.report.kept == 1 and "hello" in chatml_tok.decode(data.train[0].input_ids)
    same_family = {"input_output": "human_assistant"}  # identical once every column is mapped
    assert data.report.sources[0].endswith(f"({same_family.get(fmt, fmt)})")


def test_ambiguous_and_unknown_shapes_are_errors(tmp_path, chatml_tok):
    both = write_rows(tmp_path / "both.jsonl", [{"instruction": "a", "output": "b", "messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(DataError, match="fit several formats.*set format"):
        _load(chatml_tok, dataset=str(both))
    odd = write_rows(tmp_path / "odd.jsonl", [{"foo": 1}])
    with pytest.raises(DataError, match=r"cannot tell the data format from keys \['foo'\]"):
        _load(chatml_tok, dataset=str(odd))


def test_streaming_reads_lazily(tmp_path, chatml_tok, monkeypatch):
    """With max_samples the reader stops early: a broken line after it is never read."""
    path = write_rows(tmp_path / "big.jsonl", QA * 5)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"Question": "broken\n')
    seen = []
    real = load_mod.read_file

    def counting(p):
        for item in real(p):
            seen.append(item[0])
            yield item

    monkeypatch.setattr(load_mod, "read_file", counting)
    data = _load(chatml_tok, dataset=str(path), streaming=True, max_samples=3)
    assert data.report.total == 3 and len(seen) <= 3
    with pytest.raises(DataError, match=r"big.jsonl:31: invalid JSON"):
        _load(chatml_tok, dataset=str(path), streaming=True)


def test_streaming_warns_for_json_arrays(tmp_path, chatml_tok):
    path = _write(tmp_path, ".json", QA)
    with pytest.warns(UserWarning, match="parsed whole"):
        _load(chatml_tok, dataset=str(path), streaming=True)


def test_val_split_is_seeded_and_by_row(tmp_path, chatml_tok):
    rows = [{"conversation": [{"input": f"q{i}", "output": f"a{i}"}, {"input": "more", "output": "ok"}]}
            for i in range(20)]
    path = write_rows(tmp_path / "m.jsonl", rows)
    a = _load(chatml_tok, dataset=str(path), val_size=0.25, train_on="split_turns", data_seed=1)
    b = _load(chatml_tok, dataset=str(path), val_size=0.25, train_on="split_turns", data_seed=1)
    c = _load(chatml_tok, dataset=str(path), val_size=0.25, train_on="split_turns", data_seed=2)
    assert len(a.eval) == 10 and len(a.train) == 30  # 5 rows x 2 turns
    assert {e.row for e in a.eval}.isdisjoint({e.row for e in a.train})
    assert [e.input_ids for e in a.eval] == [e.input_ids for e in b.eval]
    assert {e.row for e in a.eval} != {e.row for e in c.eval}


def test_cache_hit_then_miss_on_change(tmp_path, chatml_tok, llama3_tok, monkeypatch, data_cache):
    path = write_rows(tmp_path / "c.jsonl", QA)
    calls = []
    real = load_mod.encode_batch
    monkeypatch.setattr(load_mod, "encode_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = _load(chatml_tok, dataset=str(path))
    assert not first.from_cache and calls and any(data_cache.iterdir())
    calls.clear()
    second = _load(chatml_tok, dataset=str(path))
    assert second.from_cache and not calls and second.report.summary().endswith("(tokenized data from cache)")
    assert [e.input_ids for e in second.train] == [e.input_ids for e in first.train]
    assert [e.labels for e in second.train] == [e.labels for e in first.train]
    for change in (lambda: _load(chatml_tok, dataset=str(path), cutoff_len=300),
                   lambda: _load(llama3_tok, dataset=str(path)),
                   lambda: _load(chatml_tok, dataset=str(path), overwrite_cache=True)):
        calls.clear()
        assert not change().from_cache and calls
    write_rows(path, QA[:5])
    calls.clear()
    changed = _load(chatml_tok, dataset=str(path))
    assert not changed.from_cache and calls and changed.report.total == 5


def test_cache_misses_when_template_changes(tmp_path, chatml_tok):
    import warnings

    path = write_rows(tmp_path / "c.jsonl", QA)
    cfg = make_cfg(dataset=str(path))
    assert not load_data(cfg, chatml_tok, get_template("auto", chatml_tok)).from_cache
    assert load_data(cfg, chatml_tok, get_template("auto", chatml_tok)).from_cache
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = get_template("chatml", chatml_tok)
    assert not load_data(cfg, chatml_tok, other).from_cache
    system = get_template("auto", chatml_tok, default_system="New system.")
    assert not load_data(cfg, chatml_tok, system).from_cache


def test_damaged_cache_entry_is_rebuilt(tmp_path, chatml_tok, data_cache):
    path = write_rows(tmp_path / "c.jsonl", QA)
    _load(chatml_tok, dataset=str(path))
    [entry] = [p for p in data_cache.iterdir() if not p.name.startswith(".")]
    (entry / "ids.npy").write_bytes(b"garbage")
    assert not _load(chatml_tok, dataset=str(path)).from_cache


def test_report_json_counts(tmp_path, chatml_tok):
    path = write_rows(tmp_path / "c.jsonl", QA + [{"Question": "x", "Response": ""}])
    data = _load(chatml_tok, dataset=str(path))
    saved = json.loads(data.report.save(tmp_path / "out").read_text())
    assert saved["kept"] + saved["dropped"] == saved["total"] == 7
    assert saved["dropped_by_reason"] == {"empty_field": 1}


def test_split_turns_keeps_turns_that_survive_truncation(tmp_path, chatml_tok):
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."},
                        {"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "Bye."}]}
    path = write_rows(tmp_path / "d.jsonl", [row])
    data = _load(chatml_tok, dataset=str(path), train_on="split_turns", cutoff_len=64)
    assert data.report.kept == 1 and len(data.train) == 1 and data.report.truncated == 0
    assert "Hello." in chatml_tok.decode(data.train[0].input_ids)


def test_chat_rows_with_stage_pt_are_counted_not_crashing(tmp_path, chatml_tok):
    from tunesmith.data.preview import preview

    path = write_rows(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "q"},
                                                           {"role": "assistant", "content": "a"}]}])
    text, _ = preview(make_cfg(dataset=str(path), stage="pt"), chatml_tok, None)
    assert "dropped: stage: pt trains on plain text rows" in text


def test_cache_is_pruned(tmp_path, chatml_tok, data_cache):
    from tunesmith.data import cache

    path = write_rows(tmp_path / "c.jsonl", QA)
    for n in (100, 101, 102):
        _load(chatml_tok, dataset=str(path), cutoff_len=n)
    cache.prune(data_cache, keep=2)
    assert len([p for p in data_cache.iterdir() if not p.name.startswith(".")]) == 2
    assert _load(chatml_tok, dataset=str(path), cutoff_len=102).from_cache  # the newest survives


def test_concurrent_runs_share_an_entry_without_pulling_it_from_a_reader(tmp_path, chatml_tok, data_cache,
                                                                         monkeypatch):
    """A sweep's parallel runs tokenize the same data: the second writer keeps the first's entry
    (same key, same content), and a reader whose entry vanishes after it read it keeps what it read."""
    from tunesmith.data import cache

    path = write_rows(tmp_path / "c.jsonl", QA)
    first = _load(chatml_tok, dataset=str(path))
    [entry] = [p for p in data_cache.iterdir() if not p.name.startswith(".")]
    inode = (entry / "ids.npy").stat().st_ino
    cache.save(entry.name, first.train, first.report, data_cache)  # the second, concurrent writer
    assert (entry / "ids.npy").stat().st_ino == inode
    assert [p.name for p in data_cache.iterdir()] == [entry.name]  # its temp dir is gone too

    def vanished(p, *a, **k):  # another run replaced the entry between our read and the touch
        raise FileNotFoundError(2, "No such file or directory", str(p))

    monkeypatch.setattr(cache.os, "utime", vanished)
    again = _load(chatml_tok, dataset=str(path))
    assert again.from_cache and [e.input_ids for e in again.train] == [e.input_ids for e in first.train]
