"""The web UI in a real browser (Debian chromium driven by Playwright), plus its file-access
security checked over HTTP against the running server.

One server per module on a free loopback port, with a temporary data root and output root.
The browser test trains the bundled SmolLM2 for 3 steps, chats with the result, evaluates,
exports and visits the Runs tab, screenshotting each tab into test-artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CHAT_ROWS, REPO, write_rows

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "test-artifacts"



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory, bundled_dir):
    """``tunesmith webui`` in a subprocess; yields (base url, data root, output root, process)."""
    tmp = tmp_path_factory.mktemp("webui")
    data, out = tmp / "data", tmp / "saves"
    write_rows(data / "mini.jsonl", CHAT_ROWS)
    (data / "dataset_info.json").write_text(json.dumps(
        {"mini": {"file_name": "mini.jsonl", "formatting": "openai"}}))
    port = _free_port()
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "webui", "--port", str(port),
                             "--data-root", str(data), "--output-root", str(out)],
                            cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        if proc.poll() is not None:
            pytest.fail(f"webui exited: {(tmp / 'server.log').read_text()}")
        try:
            if _get(url + "/")[0] == 200:
                break
        except OSError:
            time.sleep(0.5)
    yield url, data, out, proc
    proc.terminate()
    proc.wait(60)
    log.close()


SECRET_PATHS = ["/file=/etc/passwd", "/gradio_api/file=/etc/passwd",
                "/gradio_api/file=%2Fetc%2Fpasswd", "/gradio_api/file=/etc/../etc/passwd"]


@pytest.mark.slow
def test_file_routes_refuse_paths_outside_the_output_root(server):
    url, data, out, _ = server
    (out / "served.txt").write_text("allowed")
    (data.parent / "cwd-secret.txt").write_text("root: in the server's working directory")
    escapes = [f"/gradio_api/file={out}/../../../../../../etc/passwd",
               f"/gradio_api/file={out}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
               f"/gradio_api/file={out}/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
               f"/gradio_api/file={data}/mini.jsonl", f"/gradio_api/file={REPO}/pyproject.toml",
               f"/gradio_api/file={data.parent}/cwd-secret.txt", "/gradio_api/file=cwd-secret.txt",
               "/gradio_api/file=../../../../etc/passwd", "/gradio_api/file=..%2F..%2Fetc%2Fpasswd"]
    for path in SECRET_PATHS + escapes:
        status, body = _get(url + path)
        assert status != 200, f"{path} was served"
        assert b"root:" not in body and b"What is 1 plus 1" not in body and b"[project]" not in body
    # The check above would catch a leak: a file inside the output root is served.
    status, body = _get(f"{url}/gradio_api/file={out}/served.txt")
    assert (status, body) == (200, b"allowed")


@pytest.mark.slow
def test_server_listens_on_loopback_only(server):
    import psutil

    url, _, _, proc = server
    port = int(url.rsplit(":", 1)[1])
    listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert (("127.0.0.1", port)) in [(a.ip, a.port) for a in listening]
    assert all(a.ip == "127.0.0.1" for a in listening), listening


@pytest.fixture(scope="module")
def page(server):
    if not CHROMIUM.is_file():
        message = ("Debian chromium is not installed, so the web UI browser test cannot run. "
                   "Install it with `make browser` (apt-get install -y chromium)")
        if os.environ.get("CI"):  # `make test` installs it: missing in CI is a failure
            pytest.fail(message)
        pytest.skip("LOUD: " + message)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="chromium-"), executable_path=str(CHROMIUM), headless=True,
            args=FLAGS, viewport={"width": 1280, "height": 900})
        pg = ctx.pages[0] if ctx.pages else ctx.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(server[0] + "/")
        pg.wait_for_selector("#train_start")
        yield pg
        ctx.close()


def _fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    box.fill(str(value))
    box.press("Tab")  # Gradio commits the value on blur


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(500)


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"webui-{name}.png"), full_page=True)


def _wait_text(page, selector: str, text: str, timeout_s: float, fail_on: str = "Error") -> str:
    """Poll the element's text until ``text`` appears (a training or predict job is running)."""
    deadline = time.monotonic() + timeout_s
    content = ""
    while time.monotonic() < deadline:
        content = page.locator(selector).inner_text()
        if text in content:
            return content
        assert fail_on not in content, content[-2000:]
        page.wait_for_timeout(1000)
    raise AssertionError(f"'{text}' never appeared in {selector}; last text: {content[-800:]}")


@pytest.mark.slow
def test_train_chat_evaluate_export_in_a_browser(page, server):
    out = server[2]
    train_step(page, out)
    chat_step(page)
    evaluate_step(page, out)
    export_step(page, out)
    runs_step(page)
    chinese_step(page)


def train_step(page, out) -> None:
    """3 steps of LoRA on the bundled SmolLM2; the status and loss curve update live."""
    for elem, value in (("train_run", "ui-run"), ("train_max_steps", 3), ("train_max_samples", 16),
                        ("train_cutoff_len", 128), ("train_logging_steps", 1),
                        ("train_per_device_train_batch_size", 2)):
        _fill(page, elem, value)
    page.click("#train_preview_btn")  # data.preview: rendered examples and their labels
    _wait_text(page, "#train_preview", "label_ids", 120)
    page.click("#train_show")
    _wait_text(page, "#train_cli", "max_steps=3", 30)
    page.click("#train_start")
    # A live update: the status shows the running job (start-up alone outlasts the 2 s refresh;
    # on a quiet machine the 3 steps themselves can finish between two refreshes).
    _wait_text(page, "#train_status", "Training", 240, fail_on="Failed")
    status = _wait_text(page, "#train_status", "Finished", 240, fail_on="Failed")
    assert "step 3/3" in status
    assert page.locator("#train_loss img, #train_loss canvas, #train_loss svg").count() > 0
    rows = [json.loads(line) for line in (out / "ui-run" / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert (out / "ui-run" / "adapter_model.safetensors").is_file()
    _shot(page, "train")


def chat_step(page) -> None:
    """Base and base + adapter side by side, streamed."""
    _tab(page, "Chat")
    page.click("#chat_refresh")
    page.get_by_label("Both, side by side").check()
    _fill(page, "chat_max_new", 12)
    _fill(page, "chat_message", "What is 3 plus 3?")
    page.click("#chat_send")
    _wait_text(page, "#chat_status", "Done", 240)
    assert "What is 3 plus 3?" in page.locator("#chat_left").inner_text()
    assert len(page.locator("#chat_right").inner_text()) > len("What is 3 plus 3?") + 5
    _shot(page, "chat")


def evaluate_step(page, out) -> None:
    """`tunesmith predict` on 4 rows; metrics and the predictions table."""
    from tunesmith.webui.jobs import verb_available

    _tab(page, "Evaluate")
    if not verb_available("predict"):
        print("\n!!! LOUD SKIP: commands/predict.py does not exist yet; Evaluate not exercised",
              file=sys.stderr)
        return
    page.click("#eval_refresh")
    _fill(page, "eval_max_samples", 4)
    _fill(page, "eval_max_new", 8)
    page.click("#eval_run")
    _wait_text(page, "#eval_metrics", "bleu", 240)
    results = json.loads((out / "ui-run" / "predict" / "predict_results.json").read_text())
    assert "predict_bleu-4" in results
    grid = page.locator("#eval_table [role='grid']")
    assert int(grid.get_attribute("aria-rowcount")) == 1 + 4  # header + one row per example
    assert "0 plus 0 is 0." in grid.inner_text()  # a reference shown beside its prediction
    _shot(page, "evaluate")


def export_step(page, out) -> None:
    """Merge into safetensors shards; the merge check is shown."""
    from tunesmith.webui.jobs import verb_available

    _tab(page, "Export")
    if not verb_available("export"):
        print("\n!!! LOUD SKIP: commands/export.py does not exist yet; Export not exercised",
              file=sys.stderr)
        return
    page.click("#export_refresh")
    _fill(page, "export_name", "ui-merged")
    page.click("#export_run")
    _wait_text(page, "#export_check", "max_abs_diff", 240)
    assert any((out / "ui-merged").glob("*.safetensors"))
    check = json.loads((out / "ui-merged" / "export_check.json").read_text())
    assert check["merge"]["passed"] and check["saved"]["passed"]
    _shot(page, "export")


def runs_step(page) -> None:
    """The run is listed with its loss; the two newest runs' curves are compared."""
    _tab(page, "Runs")
    page.click("#runs_refresh")
    _wait_text(page, "#runs_table", "ui-run", 30)
    assert page.locator("#runs_plot canvas, #runs_plot svg").count() > 0
    _shot(page, "runs")


def chinese_step(page) -> None:
    page.locator("#lang input").click()
    page.get_by_role("option", name="zh").click()
    _wait_text(page, "[role='tablist']", "训练", 15)
    _tab(page, "训练")
    assert "开始" in page.locator("#train_start").inner_text()
    _shot(page, "train-zh")


# ---- the form layer, without a browser (fast) ----

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
