"""Reliability cases 20-28 and 33 for `tunesmith serve` (see ../shared/RELIABILITY.md).

Real uvicorn processes on free loopback ports; the tiny model; every loop bounded.
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tunesmith.serve.launch import ServerProcess

KEY = "sk-fault-key"
MODEL = "tiny"
AUTH = {"Authorization": f"Bearer {KEY}"}
ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    overrides = {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32", "api_key": KEY,
                 "model_name": MODEL, "max_new_tokens": 4, "max_tokens_cap": 200,
                 "max_concurrency": 32, "max_queue": 64, "max_body_bytes": 50000}
    with ServerProcess(overrides, env={"TUNESMITH_TEST_FAIL_GENERATION": "2"}) as srv:
        yield srv


def health(srv) -> dict:
    return httpx.get(f"{srv.url}/health", timeout=30).json()


def wait_idle(srv, limit_s: float = 30.0) -> dict:
    """Poll /health until no row is generating (a hang guard, not a timing claim)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        state = health(srv)
        if state["active"] == 0 and state["queued"] == 0:
            return state
        time.sleep(0.05)
    raise AssertionError(f"server still busy after {limit_s} s: {state}")


def is_openai_error(resp: httpx.Response) -> bool:
    try:
        body = resp.json()
    except ValueError:
        return False
    return (set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
            and isinstance(body["error"]["message"], str) and "Traceback" not in resp.text)


def chat(**extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
            **extra}


# -- 20/23: fuzzing ------------------------------------------------------------------------------
BAD_VALUES = [None, "x", "5", -1, 0, 10**18, 2**70, 1e308, -1e308, [], {}, True, [1, "a"],
              {"a": {"b": []}}, "\u0000", "\ud7ff" * 3]
FIELDS = ["model", "messages", "temperature", "top_p", "max_tokens", "n", "stop", "seed",
          "stream", "stream_options", "system", "max_completion_tokens", "logprobs"]
PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/v1/embeddings",
         "/v1/chat/completions/", "//v1/chat/completions", "/v1/models/tiny", "/v1/models/../x",
         "/v2/chat", "/", "/docs", "/openapi.json", "/v1/%2e%2e/health", "/v1/chat%2Fcompletions"]


def fuzz_case(rng: random.Random) -> dict:
    """One request: method, path, headers, body (most aim at the two generation routes)."""
    kind = rng.choice(["field", "field", "json", "json", "ctype", "path", "unknown", "messages"])
    path = rng.choice(["/v1/chat/completions", "/v1/completions"])
    headers = {**AUTH, "Content-Type": "application/json"}
    body = chat() if path.endswith("chat/completions") else {"model": MODEL, "prompt": "hi",
                                                             "max_tokens": 2}
    if kind == "field":
        body[rng.choice(FIELDS)] = rng.choice(BAD_VALUES)
    elif kind == "unknown":
        body["".join(rng.choice("abcxyz_") for _ in range(rng.randint(1, 12)))] = 1
    elif kind == "messages":
        body["messages"] = rng.choice([[{"role": "user"}], [{"content": "x"}], ["x"], [None],
                                       [{"role": "user", "content": [{"type": "image_url"}]}],
                                       [{"role": "assistant", "content": "only"}], "hi",
                                       [{"role": "user", "content": {"a": 1}}]])
    raw = json.dumps(body).encode()
    if kind == "json":
        cut = rng.randint(0, len(raw) - 1)
        raw = rng.choice([raw[:cut], raw + b"}", b"\xff\xfe" + raw, raw.replace(b":", b"=", 1),
                          b"[" * 5000 + b"]" * 5000, b"null", b'"text"', b"{'a': 1}", b"NaN"])
    elif kind == "ctype":
        headers["Content-Type"] = rng.choice(["text/plain", "application/x-www-form-urlencoded",
                                              "multipart/form-data; boundary=x", "",
                                              "application/jsonx", "json"])
    elif kind == "path":
        path = rng.choice(PATHS + ["/" + "".join(rng.choice("abc/%.-_") for _ in range(40))])
    method = "POST" if kind != "path" else rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
    if rng.random() < 0.1:
        headers.pop("Authorization")
    return {"method": method, "path": path, "headers": headers, "content": raw}


@pytest.mark.slow
def test_fuzzed_requests_all_get_openai_shaped_errors(server):
    rng = random.Random(1234)
    statuses, bad_shape = [], []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(240):
            case = fuzz_case(rng)
            resp = client.request(case["method"], case["path"], headers=case["headers"],
                                  content=case["content"])
            statuses.append(resp.status_code)
            if resp.status_code >= 400 and not is_openai_error(resp):
                bad_shape.append((case, resp.status_code, resp.text[:200]))
    errors = [s for s in statuses if s >= 400]
    print(f"fuzzed {len(statuses)} requests: {len(errors)} errors, "
          f"{len(errors) - len(bad_shape)}/{len(errors)} OpenAI-shaped")
    assert len(statuses) >= 200 and len(errors) >= 150
    assert not bad_shape, bad_shape[:3]
    assert not [s for s in statuses if s >= 500], sorted(set(statuses))
    assert health(server)["status"] == "ok"


# -- 24: disconnects -------------------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def open_and_drop(srv) -> None:
    """Start a long stream, read until the first token, then hang up."""
    with httpx.stream("POST", f"{srv.base_url}/chat/completions", headers=AUTH, timeout=60,
                      json=chat(max_tokens=200, stream=True)) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                return


@pytest.mark.slow
def test_100_disconnects_stop_generation_and_free_slots(server):
    with ThreadPoolExecutor(10) as pool:  # warm-up, so allocator growth is not counted
        list(pool.map(lambda _: open_and_drop(server), range(10)))
    before, rss_before = wait_idle(server), rss_kib(server.proc.pid)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: open_and_drop(server), range(100)))
    after, rss_after = wait_idle(server), rss_kib(server.proc.pid)
    print(f"100 disconnects: cancelled {after['cancelled'] - before['cancelled']}, worst stop "
          f"latency {after['cancel_latency_max_s']} s, RSS {rss_before} -> {rss_after} KiB")
    assert after["cancelled"] - before["cancelled"] == 100
    assert after["served"] == before["served"]
    assert after["cancel_latency_max_s"] <= 1.0
    assert rss_after - rss_before < 100 * 1024


# -- 25: many streams ------------------------------------------------------------------------------
def stream_events(srv, max_tokens: int = 8) -> tuple[int, list[str], dict]:
    with httpx.stream("POST", f"{srv.base_url}/chat/completions", headers=AUTH, timeout=120,
                      json=chat(max_tokens=max_tokens, stream=True)) as resp:
        if resp.status_code != 200:
            resp.read()
            return resp.status_code, [], dict(resp.headers)
        events = [ln[6:] for ln in resp.iter_lines() if ln.startswith("data: ")]
        return 200, events, dict(resp.headers)


@pytest.mark.slow
def test_64_concurrent_streams_all_end_with_done(server):
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda _: stream_events(server), range(64)))
    assert [r[0] for r in results] == [200] * 64
    for _, events, _ in results:
        assert events[-1] == "[DONE]"
        assert not any('"error"' in e for e in events)
        assert json.loads(events[-2])["choices"][0]["finish_reason"] == "length"
    print(f"64 concurrent streams: {sum(r[1][-1] == '[DONE]' for r in results)} ended with [DONE]")
    wait_idle(server)


# -- 26: failure inside generation ---------------------------------------------------------------
def test_generation_failure_mid_stream_gives_error_event_then_done(server):
    body = chat(max_tokens=10, stream=True,
                messages=[{"role": "user", "content": "TUNESMITH_FAIL please"}])
    with httpx.stream("POST", f"{server.base_url}/chat/completions", headers=AUTH, json=body,
                      timeout=60) as resp:
        events = [ln[6:] for ln in resp.iter_lines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert set(error) == {"error"} and set(error["error"]) == ERROR_KEYS
    assert "Traceback" not in "".join(events)
    assert sum('"content":"' in e for e in events[:-2]) >= 2  # tokens came before the failure
    whole = httpx.post(f"{server.base_url}/chat/completions", headers=AUTH, timeout=60,
                       json={**body, "stream": False})
    assert whole.status_code == 500 and is_openai_error(whole)
    assert health(server)["status"] == "ok"
    ok = httpx.post(f"{server.base_url}/chat/completions", headers=AUTH, json=chat(), timeout=60)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]


# -- 28: API key bypass attempts -------------------------------------------------------------------
BYPASS_TARGETS = ["/v1/models", "//v1/models", "/v1/models/", "/v1//models", "/V1/models",
                  "/v1/models/.", "/v1/models%2F", "/v1%2Fmodels", "/health/../v1/models",
                  "/health/%2e%2e/v1/models", "/./v1/models", "/v1/models/tiny", "/v1/models/tiny.",
                  "/health/", "/health.", "/%68ealth/../v1/models", "/v1/models?x=/health",
                  "http://127.0.0.1/v1/models", "/v1/models#/health", "/health%00"]
BYPASS_HEADERS = [{}, {"Host": "localhost"}, {"Host": "127.0.0.1"}, {"X-Forwarded-For": "127.0.0.1"},
                  {"X-Original-URL": "/health"}, {"X-Rewrite-URL": "/health"},
                  {"Authorization": "Bearer "}, {"Authorization": f"Bearer {KEY}x"},
                  {"Authorization": f"Basic {KEY}"}, {"Authorization": KEY},
                  {"Authorization": f"Bearer {KEY.upper()}"}, {"X-Api-Key": KEY}]


def raw_request(srv, method: str, target: str, headers: dict, body: bytes = b"") -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host="Host" in headers)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_api_key_cannot_be_bypassed(server):
    attempts = 0
    for target in BYPASS_TARGETS:
        for headers in BYPASS_HEADERS:
            for method, body in (("GET", b""), ("POST", json.dumps(chat()).encode())):
                status, raw = raw_request(server, method, target, headers, body)
                attempts += 1
                assert status == 401, (method, target, headers, status, raw[:200])
                error = json.loads(raw)["error"]
                assert set(error) == ERROR_KEYS and b'"object":"list"' not in raw
    assert raw_request(server, "GET", "/health", {})[0] == 200
    status, _ = raw_request(server, "GET", "/v1/models", AUTH)
    assert status == 200
    print(f"API-key bypass attempts refused: {attempts}")


# -- 25 (over capacity) and 27 (SIGTERM) on a deliberately small server ----------------------------
@pytest.fixture
def small_server(tiny_model_dir):
    overrides = {"model_name_or_path": str(tiny_model_dir), "dtype": "fp32", "api_key": KEY,
                 "model_name": MODEL, "max_concurrency": 2, "max_queue": 2,
                 "shutdown_grace_s": 60}
    srv = ServerProcess(overrides).start()
    yield srv
    srv.stop()


@pytest.mark.slow
def test_over_capacity_is_429_with_retry_after_then_sigterm_drains(small_server):
    srv = small_server
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: stream_events(srv, 40), range(10)))
    statuses = sorted(r[0] for r in results)
    assert set(statuses) <= {200, 429} and 429 in statuses and statuses.count(200) >= 2
    for status, events, headers in results:
        if status == 429:
            assert int(headers["retry-after"]) >= 1
        else:
            assert events[-1] == "[DONE]"
    wait_idle(srv)
    _sigterm_drains(srv)


def _sigterm_drains(srv) -> None:
    """Streams in flight finish after SIGTERM; a new request meanwhile gets 503 + Retry-After."""
    def first_token_then_rest(_):
        with httpx.stream("POST", f"{srv.base_url}/chat/completions", headers=AUTH, timeout=120,
                          json=chat(max_tokens=60, stream=True)) as resp:
            return [ln[6:] for ln in resp.iter_lines() if ln.startswith("data: ")]

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(first_token_then_rest, i) for i in range(2)]
        deadline = time.monotonic() + 60
        while health(srv)["active"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        srv.proc.send_signal(signal.SIGTERM)
        late = httpx.post(f"{srv.base_url}/chat/completions", headers=AUTH, json=chat(),
                          timeout=30)
        assert late.status_code == 503 and is_openai_error(late)
        assert int(late.headers["retry-after"]) >= 1
        streams = [f.result(timeout=120) for f in futures]
    for events in streams:
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["choices"][0]["finish_reason"] == "length"
    assert srv.proc.wait(timeout=60) == 0


# -- 33: bind address ------------------------------------------------------------------------------
def test_binds_loopback_by_default_and_warns_on_public_without_key(monkeypatch):
    from tunesmith.commands import serve as serve_cmd
    from tunesmith.config import load_config

    assert load_config(None, {}).serve.host == "127.0.0.1"
    flags = load_config(None, ["--port", "8001", "--host", "0.0.0.0", "--api-key", "k"]).serve
    assert (flags.port, flags.host, flags.api_key) == (8001, "0.0.0.0", "k")
    assert serve_cmd._is_loopback("127.0.0.1") and serve_cmd._is_loopback("::1")
    assert not serve_cmd._is_loopback("0.0.0.0")
    started = {}

    class FakeServer:
        def __init__(self, config):
            started["host"] = config.host

        def run(self):
            pass

    monkeypatch.setattr(serve_cmd, "_graceful_server", lambda config, *a: FakeServer(config))
    monkeypatch.setattr("tunesmith.serve.app.Scheduler", lambda *a, **k: _NoScheduler())
    cfg = load_config(None, {"host": "0.0.0.0"}).serve
    with pytest.MonkeyPatch.context() as mp:
        records = []
        mp.setattr(serve_cmd.log, "warning", lambda msg, *a: records.append(msg % a))
        serve_cmd.serve(object(), cfg, "m", None)
    assert started["host"] == "0.0.0.0"
    assert records and "API key" in records[0]


class _NoScheduler:
    def close(self):
        pass
