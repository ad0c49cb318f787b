"""The web UI's form layer without a browser (fast): the Train tab's controls come from the
method and stage dataclasses, the form builds the flat config the CLI runs, paths stay inside the
roots, stop/resume works, and every interface string exists in English and Chinese. The same UI
in a real browser: test_webui.py."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.conftest import CHAT_ROWS, write_rows


@pytest.fixture
def app(tmp_path):
    from tunesmith.webui.app import App
    from tunesmith.webui.roots import Roots

    data = tmp_path / "data"
    write_rows(data / "mini.jsonl", CHAT_ROWS)
    return App(Roots.create(data, tmp_path / "saves"))


def _form(app, **over):
    """Values in the Train tab's input order: run, model, template, trust, dataset, method,
    extra, hyperparameters, method parameters, stage, stage parameters (all at their defaults
    unless given)."""
    from tunesmith.webui import forms, train_tab

    hyper = {k: forms.config_default(k) for k in (*train_tab.HYPER, *train_tab.CHOICE_HYPER)}
    hyper.update({k: v for k, v in over.items() if k in hyper})
    fields, defaults = forms.method_fields(), forms.method_defaults(over.get("method", "lora"))
    params = {k: forms.to_control(defaults.get(k), f) for k, f in fields.items()}
    params.update({k: v for k, v in over.items() if k in fields})
    stage, stage_fields = over.get("stage", "sft"), forms.stage_fields()
    stage_defaults = forms.stage_defaults(stage)
    stage_values = {k: forms.to_control(stage_defaults.get(k), f) for k, f in stage_fields.items()}
    stage_values.update({k: v for k, v in over.items() if k in stage_fields})
    head = [over.get("run", "r1"), over.get("model", "smollm2-135m"), "auto",
            over.get("trust", False), over.get("dataset", ["mini.jsonl"]),
            over.get("method", "lora"), over.get("extra", "")]
    return ((list(hyper), list(params), list(stage_values)),
            head + list(hyper.values()) + list(params.values()) + [stage, *stage_values.values()])


def test_method_controls_are_generated_from_every_method_dataclass():
    import dataclasses

    from tunesmith.methods import METHODS
    from tunesmith.webui import forms

    fields = forms.method_fields()
    assert forms.method_names() == sorted(METHODS) and "lora" in METHODS
    for method in METHODS.values():
        for f in dataclasses.fields(method.params_cls):
            assert f.name in fields, (method.name, f.name)
    assert fields["lora_rank"].kind == "int" and fields["use_dora"].kind == "bool"
    assert fields["lora_target"].kind == "text" and fields["lora_alpha"].optional


def test_form_builds_the_flat_config_the_cli_runs(app):
    import shlex

    from tunesmith.config import build_config, parse_overrides
    from tunesmith.webui import forms, train_tab

    keys, values = _form(app, lora_rank=4, max_steps=3, lora_target="q_proj,v_proj")
    flat, out = train_tab._flat(app, keys, values)
    assert out == app.roots.output / "r1" and flat["output_dir"] == str(out)
    assert flat["lora_rank"] == 4 and flat["max_steps"] == 3 and "trust_remote_code" not in flat
    assert "max_samples" not in flat and "use_dora" not in flat  # defaults stay implicit
    cfg = build_config(flat)
    assert cfg.method.params["lora_target"] == ["q_proj", "v_proj"]
    cmd = forms.cli_command("train", flat).splitlines()[-1]
    again = build_config(parse_overrides(shlex.split(cmd)[2:]))
    assert again.to_flat() == cfg.to_flat()


def test_stage_selector_lists_every_stage_and_adds_its_own_keys(app):
    from tunesmith.config import build_config
    from tunesmith.train.stages import STAGES
    from tunesmith.webui import forms, train_tab

    assert forms.stage_names() == STAGES.names() and {"sft", "dpo", "kto", "rm"} <= set(STAGES)
    flat, _ = train_tab._flat(app, *_form(app, stage="dpo", pref_beta=0.3, pref_loss="ipo"))
    assert flat["stage"] == "dpo" and flat["pref_beta"] == 0.3 and flat["pref_loss"] == "ipo"
    assert "simpo_gamma" not in flat and "kto_chosen_weight" not in flat  # defaults / other stages
    assert build_config(flat).method.stage_params == {"pref_beta": 0.3, "pref_loss": "ipo"}


def test_form_refuses_paths_outside_the_roots_and_ticks_trust_only_when_asked(app):
    from tunesmith.errors import ConfigError
    from tunesmith.webui import train_tab
    from tunesmith.webui.roots import PathRefused

    for bad in ({"run": "../escape"}, {"model": "/etc"}, {"dataset": ["../../etc/passwd"]},
                {"dataset": ["/etc/passwd"]}):
        with pytest.raises(PathRefused):
            train_tab._flat(app, *_form(app, **bad))
    with pytest.raises(ValueError, match="output_dir"):
        train_tab._flat(app, *_form(app, extra="output_dir: /tmp/elsewhere"))
    with pytest.raises(ConfigError, match="learnig_rate"):
        train_tab._flat(app, *_form(app, extra="learnig_rate: 0.1"))
    flat, _ = train_tab._flat(app, *_form(app, trust=True))
    assert flat["trust_remote_code"] is True


@pytest.mark.slow
def test_stop_saves_a_checkpoint_and_resume_continues(app, tiny_model_dir):
    """The Stop and Resume buttons' handlers on a tiny model: SIGTERM -> checkpoint, then
    resume_from_checkpoint=auto finishes the run from it, in a child process each time."""
    from tunesmith.webui import train_tab

    shutil.copytree(tiny_model_dir, app.roots.data / "tiny")
    over = dict(run="stop-me", model=str(app.roots.data / "tiny"), max_steps=120,
                logging_steps=1, cutoff_len=64, per_device_train_batch_size=2, lora_rank=4,
                learning_rate=1e-3, dtype="fp32", save_steps=100000)
    keys, values = _form(app, **over)

    def flat_config(*v):
        return train_tab._flat(app, keys, v)

    train_tab._start(app, flat_config, values, resume=False)
    log = app.roots.output / "stop-me" / "trainer_log.jsonl"
    deadline = time.monotonic() + 240
    while not (log.is_file() and log.read_text().count("\n") >= 2):
        assert app.train.job.running, app.train.job.log_tail()
        assert time.monotonic() < deadline, app.train.job.log_tail()
        time.sleep(0.5)
    assert train_tab._stop(app) == "Stopped; checkpoint saved"
    assert app.train.job.wait(120) == 143, app.train.job.log_tail()
    checkpoints = list((app.roots.output / "stop-me").glob("checkpoint-*"))
    assert checkpoints, app.train.job.log_tail()
    stopped_at = int(checkpoints[0].name.split("-")[1])
    assert 0 < stopped_at < 120

    yaml_text, _, status = train_tab._start(app, flat_config, values, resume=True)
    assert "resume_from_checkpoint: auto" in yaml_text and "Started" in status
    assert app.train.job.wait(300) == 0, app.train.job.log_tail()
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]  # per-step records, not the summaries
    assert steps == list(range(1, 121)), steps  # resumed after the checkpoint, no step twice
    status, _, _, seen = train_tab._watch(app)
    assert "Finished" in status and "step 120/120" in status
    assert train_tab._watch(app, seen)[0] == {"__type__": "update"}  # no redraw when unchanged


def test_every_interface_string_exists_in_english_and_chinese():
    from tunesmith.webui.i18n import EN, ZH, t

    assert set(EN) == set(ZH)
    assert all(ZH[k] for k in ZH)
    assert t("zh", "tab_train") == "训练" and t("en", "failed", rc=2).startswith("Failed (exit code 2)")


def test_app_builds_and_switches_language(app):
    demo = app.build()
    assert demo is not None and len(app.labels.items) > 30
    updates = app.switch("zh")
    assert len(updates) == len(app.labels.items) and app.lang == "zh"
    assert {"label": "训练"} in [{k: v for k, v in u.items() if k == "label"} for u in updates]
