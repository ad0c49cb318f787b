"""The demo's promise on the real bundled model: after training it knows its new name."""

import pytest

from tunesmith.config import load_config
from tunesmith.infer.engine import GenParams
from tunesmith.infer.load import load_engine
from tunesmith.train.run import run_training

from ..conftest import REPO


@pytest.mark.slow
def test_bundled_model_learns_new_name(bundled_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "identity"
    cfg = load_config(str(REPO / "examples/identity.yaml"), [f"output_dir={out}", "dtype=auto"])
    run_training(cfg)
    engine = load_engine(cfg, adapter=str(out))
    answer = engine.generate([{"role": "user", "content": "Who are you?"}], GenParams(max_new_tokens=40))
    assert "Nova" in answer.text
    assert answer.finish_reason == "stop"  # it stops by itself: EOS was learned
    zh = engine.generate([{"role": "user", "content": "你是谁？"}], GenParams(max_new_tokens=40))
    assert "Nova" in zh.text
