"""Data at scale: mixing datasets, parallel tokenization, the streaming pipeline and its resume."""

from __future__ import annotations

from itertools import islice

import pytest

from tests.conftest import write_rows
from tunesmith.data.load import load_data
from tunesmith.data.mix import mix
from tunesmith.data.stream import TokenStream, shuffled
from tunesmith.data.templates import get_template
from tunesmith.errors import ConfigError

from .conftest import make_cfg


def _opener(items):
    return lambda: iter(items)


def test_mix_strategies_have_llamafactory_meanings():
    a, b = _opener(["a0", "a1", "a2"]), _opener(["b0"])
    assert [r for _, r in mix([a, b], "concat")] == ["a0", "a1", "a2", "b0"]
    # under: alternate, stop when the first dataset runs out
    assert [r for _, r in mix([a, b], "interleave_under")] == ["a0", "b0", "a1"]
    # over: alternate, restart the short one, stop once both ran out
    assert [r for _, r in mix([a, b], "interleave_over")] == ["a0", "b0", "a1", "b0", "a2", "b0"]
    weighted = [i for i, _ in mix([_opener(range(100)), _opener(range(100))], "interleave_under",
                                  [0.9, 0.1], seed=3)]
    again = [i for i, _ in mix([_opener(range(100)), _opener(range(100))], "interleave_under",
                               [0.9, 0.1], seed=3)]
    assert weighted == again and 0.8 < weighted.count(0) / len(weighted) < 0.97


def test_interleave_probs_rules():
    with pytest.raises(ConfigError, match="2 values for 1 datasets"):
        make_cfg(dataset="a", mix_strategy="interleave_under", interleave_probs="0.5,0.5")
    with pytest.raises(ConfigError, match="needs mix_strategy: interleave_under"):
        make_cfg(dataset="a,b", interleave_probs="0.5,0.5")
    with pytest.raises(ConfigError, match="sum to 1"):
        make_cfg(dataset="a,b", mix_strategy="interleave_over", interleave_probs="0.5,0.6")


def _qa(prefix: str, n: int) -> list:
    return [{"instruction": f"{prefix} question {i}", "output": f"{prefix} answer {i}"} for i in range(n)]


def test_in_memory_mix_interleaves_rows(tmp_path, chatml_tok):
    a = write_rows(tmp_path / "a.jsonl", _qa("alpha", 4))
    b = write_rows(tmp_path / "b.jsonl", _qa("beta", 2))
    data = load_data(make_cfg(dataset=f"{a},{b}", mix_strategy="interleave_under"), chatml_tok,
                     get_template("auto", chatml_tok))
    texts = [chatml_tok.decode(e.input_ids) for e in data.train]
    assert [("alpha" in t, "beta" in t) for t in texts] == [(True, False), (False, True)] * 2 + [(True, False)]


def test_parallel_tokenization_equals_serial_and_shares_the_cache(tmp_path, chatml_tok, data_cache):
    rows = [{"messages": [{"role": "user", "content": f"q{i} " * (i % 7 + 1)},
                          {"role": "assistant", "content": f"a{i} " * (i % 5 + 1)}]} for i in range(700)]
    rows[10] = {"messages": [{"role": "user", "content": "no answer"}]}
    path = write_rows(tmp_path / "p.jsonl", rows)
    tpl = get_template("auto", chatml_tok)
    serial = load_data(make_cfg(dataset=str(path), overwrite_cache=True), chatml_tok, tpl)
    pooled = load_data(make_cfg(dataset=str(path), overwrite_cache=True,
                                preprocessing_num_workers=2), chatml_tok, tpl)
    assert [(e.input_ids, e.labels, e.row) for e in pooled.train] == \
        [(e.input_ids, e.labels, e.row) for e in serial.train]
    assert pooled.report.to_dict() == serial.report.to_dict() and pooled.report.n_dropped == 1
    again = load_data(make_cfg(dataset=str(path), preprocessing_num_workers=2), chatml_tok, tpl)
    assert again.from_cache


def test_shuffle_buffer_is_a_seeded_permutation():
    import random

    out = list(shuffled(iter(range(50)), 8, random.Random(1)))
    assert sorted(out) == list(range(50)) and out != list(range(50))
    assert out == list(shuffled(iter(range(50)), 8, random.Random(1)))


def _stream(tok, path, **over):
    cfg = make_cfg(dataset=str(path), streaming=True, max_steps=10, buffer_size=5, **over)
    return TokenStream(cfg, tok, get_template("auto", tok))


def test_stream_resumes_right_after_a_position(tmp_path, chatml_tok):
    """Every position of a 3-pass stream (split_turns: several examples per row): a stream
    resumed after it continues with exactly the examples that followed it."""
    rows = [{"conversation": [{"input": f"q{i}", "output": f"a{i}"}, {"input": "more", "output": f"ok{i}"}]}
            for i in range(9)] + [{"conversation": [{"input": "x", "output": ""}]}]
    path = write_rows(tmp_path / "m.jsonl", rows)
    full = list(islice(iter(_stream(chatml_tok, path, train_on="split_turns")), 60))
    assert len({row for _, row, _ in full}) > 20  # several passes, bad rows skipped
    for cut in (0, 7, 8, 19, 33):
        _, row, sub = full[cut]
        resumed = _stream(chatml_tok, path, train_on="split_turns")
        resumed.resume_from(row, sub, None)
        tail = list(islice(iter(resumed), 60 - cut - 1))
        assert [(e.input_ids, r, s) for e, r, s in tail] == \
            [(e.input_ids, r, s) for e, r, s in full[cut + 1:]]


def test_stream_holds_out_the_first_rows_for_evaluation(tmp_path, chatml_tok):
    path = write_rows(tmp_path / "h.jsonl", _qa("row", 12))
    stream = _stream(chatml_tok, path, val_size=3)
    held = [chatml_tok.decode(e.input_ids) for e in stream.eval_examples()]
    trained = {chatml_tok.decode(e.input_ids) for e, _, _ in islice(iter(stream), 9)}
    assert len(held) == 3 and all(f"row question {i}" in held[i] for i in range(3))
    assert not trained & set(held) and len(trained) == 9
