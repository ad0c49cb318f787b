"""The STAGES registry: every stage declares its data kind and template need; the config's
stage picks it, an unknown stage is one line before anything loads."""

import pytest

from tunesmith.config import load_config
from tunesmith.errors import ConfigError
from tunesmith.train.stages import DATA_KINDS, STAGES, check_stage, get_stage


def test_every_stage_declares_a_known_data_kind():
    for name, stage in STAGES.items():
        assert stage.name == name
        assert stage.data_kind in DATA_KINDS
        assert stage.summary


def test_sft_and_pt_declarations():
    assert get_stage("sft").data_kind == "chat" and get_stage("sft").needs_template
    assert get_stage("pt").data_kind == "text" and not get_stage("pt").needs_template


def test_unknown_stage_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown stage 'sfft' \(did you mean 'sft'\?\)"):
        check_stage(load_config(None, {"stage": "sfft"}))


def test_pt_rule_lives_in_the_pt_stage():
    cfg = load_config(None, {"stage": "pt", "train_on": "last_turn"})  # config alone accepts it
    with pytest.raises(ConfigError, match="stage: pt trains on every token"):
        check_stage(cfg)
