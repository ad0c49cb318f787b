"""The last step is always logged, and ``logging_steps`` below 1 is a fraction of the run."""

import pytest

from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.train.records import read_log
from tunesmith.train.run import run_training


def _losses(cfg) -> list[int]:
    return [r["step"] for r in read_log(cfg.train.output_dir) if "loss" in r]


def test_last_step_logged_even_past_the_interval(tiny_overrides):
    cfg = load_config(None, {**tiny_overrides, "max_steps": 3, "logging_steps": 10})
    run_training(cfg)
    assert _losses(cfg) == [1, 3]  # the first step (logging_first_step) and the last


def test_fraction_of_the_run(tiny_overrides, tmp_path):
    cfg = load_config(None, {**tiny_overrides, "max_steps": 4, "logging_steps": 0.5,
                             "output_dir": str(tmp_path / "frac")})
    run_training(cfg)
    assert _losses(cfg) == [1, 2, 4]


@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_bad_logging_steps_is_one_line(value):
    with pytest.raises(ConfigError, match="key 'logging_steps'"):
        load_config(None, {"logging_steps": value})


def test_whole_number_stays_an_integer():
    assert load_config(None, {"logging_steps": "5"}).train.logging_steps == 5
    assert isinstance(load_config(None, {"logging_steps": 5.0}).train.logging_steps, int)
