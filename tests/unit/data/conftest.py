"""Data-layer fixtures: tokenizers loaded once, an isolated tokenized-data cache per test."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from tunesmith.config import load_config


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    """Each test gets its own cache dir (never the user's ~/.cache)."""
    root = tmp_path / "data-cache"
    monkeypatch.setattr("tunesmith.paths.data_cache_dir", lambda: root)
    return root


@pytest.fixture(scope="session")
def chatml_tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture(scope="session")
def llama3_tok(tiny_llama3_dir):
    return AutoTokenizer.from_pretrained(str(tiny_llama3_dir))


@pytest.fixture(params=["chatml", "llama3"])
def any_tok(request, chatml_tok, llama3_tok):
    """(tokenizer, end-of-turn text) for both tokenizer families."""
    if request.param == "chatml":
        return chatml_tok, "<|im_end|>"
    return llama3_tok, "<|eot_id|>"


def make_cfg(**overrides):
    """A RunConfig for data tests (defaults: no drop tolerance surprises, small cutoff)."""
    return load_config(None, {"cutoff_len": 256, **overrides})
