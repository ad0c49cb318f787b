"""The web UI in a real browser (Debian chromium driven by Playwright), plus its file-access
security checked over HTTP against the running server.

One server per module on a free loopback port, with a temporary data root and output root.
The browser test trains the bundled SmolLM2 for 3 steps, chats with the result, evaluates,
exports and visits the Runs tab, screenshotting each tab into test-artifacts/.
"""

from __future__ import annotations

import json
import os
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
