"""Stage-owned config keys: declared by the stage (``params_cls``), routed by the config parser,
typed and range-checked against the chosen stage before anything loads."""

from dataclasses import dataclass

import pytest

from tunesmith.config import load_config, valid_keys
from tunesmith.errors import ConfigError
from tunesmith.train.stages import STAGES, Stage, check_stage, stage_params


@dataclass
class _ToyParams:
    toy_beta: float = 0.1
    toy_count: int = 2

    def check(self):
        if self.toy_count <= 0:
            raise ConfigError(f"key 'toy_count': must be positive, got {self.toy_count}")


@pytest.fixture
def toy_stage():
    STAGES.discover()
    STAGES.add("toy", Stage(name="toy", summary="a test stage", data_kind="chat",
                            params=_ToyParams))
    yield
    STAGES._entries.pop("toy")


def test_stage_keys_are_typed_and_saved_flat(toy_stage):
    cfg = load_config(None, ["stage=toy", "toy_beta=0.5"])
    check_stage(cfg)
    assert cfg.method.stage_params == {"toy_beta": 0.5}
    assert stage_params(cfg) == _ToyParams(toy_beta=0.5, toy_count=2)
    assert cfg.to_flat()["toy_beta"] == 0.5
    assert "toy_count" in valid_keys()


def test_a_stage_key_under_another_stage_is_refused(toy_stage):
    with pytest.raises(ConfigError, match="key 'toy_beta' is a parameter of stage toy, not of stage 'sft'"):
        check_stage(load_config(None, {"toy_beta": 0.5}))


def test_stage_key_type_and_range_errors(toy_stage):
    with pytest.raises(ConfigError, match="key 'toy_beta': expected a number"):
        check_stage(load_config(None, {"stage": "toy", "toy_beta": "abc"}))
    with pytest.raises(ConfigError, match="key 'toy_count': must be positive"):
        check_stage(load_config(None, {"stage": "toy", "toy_count": 0}))


def test_unknown_key_still_suggests():
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, {"toy_betta": 1})
