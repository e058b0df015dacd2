"""The API's resource bounds: answer size, rows, trace, validate budget, heavy-request slots, allowed
hosts, logs without request content, and odd bodies that must never be a 500.
MEDPAY_FUZZ_EXAMPLES > 1 runs the large versions (full-size lists and situations)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from evalkit import template_folder
from fastapi.testclient import TestClient

from engine.api import evaluation
from engine.api.app import create_app
from engine.api.limits import HeavySlots, host_name, run_with_deadline
from engine.errors import LimitExceeded
from engine.settings import Limits

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "policies" / "_template.yaml"
SITUATION = yaml.safe_load((ROOT / "tests" / "cases" / "_template" / "basics.yaml").read_text(encoding="utf-8"))["situation"]
SCALE = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))
EVALUATE = "/v1/cities/_template/evaluate"
TOKEN = {"Authorization": "Bearer test-token"}
MARKER = "ZQX-MARKER-93817"


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDPAY_ADMIN_TOKEN", "test-token")
    template_folder(tmp_path)
    return tmp_path


@pytest.fixture()
def client(folder: Path) -> TestClient:
    return TestClient(create_app(folder, watch=False), base_url="http://localhost")


def claims(n: int) -> list[dict]:
    base = SITUATION["entities"]["claim"][0]
    return [{**base, "id": f"c{i}"} for i in range(n)]


def with_claims(n: int, **extra) -> dict:
    return {**SITUATION, "entities": {**SITUATION["entities"], "claim": claims(n)}, **extra}


def other_rows() -> int:
    return sum(len(v) for e, v in SITUATION["entities"].items() if e != "claim")


# ---- 1. answer size, rows, trace -------------------------------------------------------------------

def test_the_answer_size_is_refused_before_any_work(client, monkeypatch):
    # 10 claims with one output each: per claim its id and claim.points (2 values), every other row its id
    asked = with_claims(10, outputs=["claim.points"])
    expected = 10 * 2 + other_rows() * 1
    monkeypatch.setattr(evaluation, "LIMITS", Limits(response_values=expected))
    assert client.post(EVALUATE, json=asked).status_code == 200
    monkeypatch.setattr(evaluation, "LIMITS", Limits(response_values=expected - 1))
    ran = []
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: ran.append(1))
    r = client.post(EVALUATE, json=asked)
    fault = r.json()["detail"][0]
    assert r.status_code == 413 and fault["path"] == "MEDPAY_MAX_RESPONSE_VALUES"
    assert "`outputs`" in fault["message"] and "batch settlement" in fault["message"] and fault["message_zh"]
    assert ran == []  # nothing was evaluated


def test_too_many_rows_is_a_413_before_the_rows_are_copied(client, monkeypatch):
    monkeypatch.setattr("engine.api.models.LIMITS", Limits(rows=other_rows() + 3))
    assert client.post(EVALUATE, json=with_claims(3)).status_code == 200
    r = client.post(EVALUATE, json=with_claims(4))
    assert r.status_code == 413 and r.json()["detail"][0]["path"] == "MEDPAY_MAX_ROWS"
    assert f"{other_rows() + 4} rows" in r.json()["detail"][0]["message"]


def test_default_limits_bound_one_request():
    limits = Limits()
    assert limits.rows <= 120_000 and limits.response_values <= 2_000_000 and limits.trace_values <= 5_000
    assert limits.body_bytes <= 20_000_000 and limits.validate_bytes < limits.policy_bytes


def test_a_cut_trace_keeps_the_first_values_and_says_so(client, monkeypatch):
    full = client.post(EVALUATE + "?trace=true", json=SITUATION).json()
    keys = [k for k in full["trace"] if not k.startswith("_")]
    assert "_truncated" not in full["trace"] and len(keys) > 10
    monkeypatch.setattr("engine.explain.trace.MAX_TRACE_VALUES", 10)
    cut = client.post(EVALUATE + "?trace=true", json=SITUATION).json()
    kept = [k for k in cut["trace"] if not k.startswith("_")]
    assert len(kept) == 10 and set(kept) <= set(keys)
    assert all(cut["trace"][k] == full["trace"][k] for k in kept)  # the values kept are whole
    warning = next(w for w in cut["warnings"] if w["code"] == "trace_truncated")
    assert warning["rows"] == len(keys) - 10 and "MEDPAY_MAX_TRACE_VALUES" in warning["message"]
    assert cut["entities"] == full["entities"]  # the answer itself is not cut


# ---- 2. validate budget, heavy slots, a cheap request stays prompt --------------------------------

def test_validate_without_the_token_has_a_smaller_size_limit(client, monkeypatch):
    text = TEMPLATE.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    monkeypatch.setattr("engine.api.app.LIMITS", Limits(validate_bytes=size - 1, policy_bytes=size))
    r = client.post("/v1/validate", json={"text": text})
    assert r.status_code == 413 and r.json()["detail"][0]["path"] == "MEDPAY_MAX_VALIDATE_BYTES"
    assert f"{size} bytes" in r.json()["detail"][0]["message"]
    r = client.post("/v1/validate", json={"text": text}, headers=TOKEN)
    assert r.status_code == 200 and r.json()["valid"] is True


def test_the_validate_worker_is_killed_at_its_deadline():
    began = time.perf_counter()
    with pytest.raises(LimitExceeded) as caught:
        run_with_deadline(time.sleep, (60,), 0.5, "MEDPAY_MAX_VALIDATE_SECONDS")
    assert caught.value.status == 503 and caught.value.setting == "MEDPAY_MAX_VALIDATE_SECONDS"
    assert time.perf_counter() - began < 5


def test_a_checker_that_gives_up_is_a_422_not_a_500(client):
    for text in ["a: " + "[" * 5000, "&a [*a, *a]\n"]:
        r = client.post("/v1/validate", json={"text": text})
        assert r.status_code in (200, 422), r.text
        if r.status_code == 422:
            assert r.json()["detail"][0]["path"] == "text"


def test_busy_answers_503_with_retry_after(client, monkeypatch):
    slots = HeavySlots(1)
    monkeypatch.setattr(evaluation, "HEAVY", slots)
    monkeypatch.setattr("engine.api.app.HEAVY", slots)
    with slots:  # one heavy request in progress
        r = client.post(EVALUATE, json=with_claims(evaluation.INLINE_ROWS + 1, outputs=["claim.points"]))
        assert r.status_code == 503 and r.headers["retry-after"].isdigit()
        assert r.json()["detail"][0]["path"] == "MEDPAY_MAX_HEAVY_REQUESTS"
        assert client.post("/v1/validate", json={"text": "x: 1"}).status_code == 503
        assert client.post(EVALUATE, json=SITUATION).status_code == 200  # a small one is still served
    assert slots.busy == 0
    assert client.post(EVALUATE, json=with_claims(evaluation.INLINE_ROWS + 1, outputs=["claim.points"])).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_is_prompt_while_heavy_requests_run(folder):
    server = uvicorn.Server(uvicorn.Config(create_app(folder, watch=False), host="127.0.0.1", port=_free_port(),
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{server.config.port}"
    body = json.dumps(with_claims(3000 * SCALE, outputs=["claim.points"]))
    statuses, latencies = [], []

    def heavy():
        with httpx.Client(base_url=base, timeout=120) as http:
            for _ in range(2):
                statuses.append(http.post(EVALUATE, content=body, headers={"content-type": "application/json"}).status_code)
                statuses.append(http.post("/v1/validate", json={"text": TEMPLATE.read_text(encoding="utf-8")}).status_code)
    try:
        workers = [threading.Thread(target=heavy) for _ in range(3)]
        for w in workers:
            w.start()
        with httpx.Client(base_url=base, timeout=30) as http:
            while any(w.is_alive() for w in workers):
                began = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - began)
                time.sleep(0.01)
        for w in workers:
            w.join()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert set(statuses) <= {200, 503} and 200 in statuses  # the third concurrent heavy request may be told to wait
    assert latencies and max(latencies) < 1.0, max(latencies)


# ---- 3. logs never quote request content ---------------------------------------------------------

def test_no_log_record_quotes_the_request(client, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise ValueError(f"cannot handle {MARKER} / {args!r}")

    secret = with_claims(1)
    secret["entities"]["claim"][0].update({"id": MARKER, "total_cost": 98765.43})
    with caplog.at_level(logging.DEBUG):
        client.post("/v1/validate", json={"text": f"policy: {{id: {MARKER}}}\n", "file": MARKER})
        client.post("/v1/validate", json={"text": "a: " + "[" * 5000 + MARKER})  # the checker gives up
        client.post(f"/v1/cities/{MARKER}/evaluate", json=secret, headers={"x-note": MARKER})
        client.post(EVALUATE + f"?trace={MARKER}", json=secret)
        client.post(EVALUATE, content=f'{{"period": "{MARKER}"'.encode(), headers={"content-type": "application/json"})
        assert client.post(EVALUATE, json=secret).status_code == 200
        monkeypatch.setattr(evaluation, "evaluate", boom)
        r = client.post(EVALUATE, json=secret)
        assert r.status_code == 500 and MARKER not in r.text and r.json()["error"] == "internal_error"
    records = [rec for rec in caplog.records if not rec.name.startswith(("httpx", "httpcore"))]  # the test's client
    assert any("unexpected ValueError" in rec.getMessage() for rec in records)  # the 500 was logged
    assert any("/v1/cities/{city}/evaluate" in rec.getMessage() for rec in records)  # requests are logged
    for rec in records:
        text = rec.getMessage() + str(rec.exc_text or "") + str(rec.args or "")
        assert MARKER not in text and "98765" not in text, text


# ---- 4. allowed hosts ----------------------------------------------------------------------------

@pytest.mark.parametrize("host, served", [
    ("localhost", True), ("localhost:8000", True), ("127.0.0.1:80", True), ("[::1]:8000", True), ("LOCALHOST", True),
    ("evil.example", False), ("evil.example:8000", False), ("localhost.evil.example", False), ("", False),
    ("127.0.0.2", False),
])
def test_only_allowed_hosts_are_served(folder, host, served):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    r = client.get("/healthz", headers={"host": host})
    if served:
        assert r.status_code == 200
    else:
        assert r.status_code == 400
        assert r.json()["error"] == "host_not_allowed" and r.json()["detail"][0]["path"] == "headers.host"
        assert "MEDPAY_ALLOWED_HOSTS" in r.json()["detail"][0]["message"] and r.json()["detail"][0]["message_zh"]


def test_allowed_hosts_come_from_the_setting(folder, monkeypatch):
    assert TestClient(create_app(folder, watch=False)).get("/healthz").status_code == 400  # "testserver"
    monkeypatch.setenv("MEDPAY_ALLOWED_HOSTS", "medpay.internal, testserver")
    app = create_app(folder, watch=False)
    assert TestClient(app).get("/healthz").status_code == 200
    assert TestClient(app, base_url="http://medpay.internal:9000").get("/healthz").status_code == 200
    assert TestClient(app, base_url="http://localhost").get("/healthz").status_code == 400


def test_host_names_without_their_port():
    assert [host_name(h) for h in (b"a.b:80", b"[::1]:8000", b"::1", b"X.Y")] == ["a.b", "::1", "::1", "x.y"]


# ---- 5. odd bodies: a 4xx naming the path, never a 500 --------------------------------------------

def _odd_bodies() -> dict[str, bytes]:
    big = 10_001 if SCALE == 1 else 1_000_000  # one more than the outputs accepted, or 10^6
    return {
        "deep list": ("[" * 100_000 + "]" * 100_000).encode(),
        "deep object": ('{"period": ' + '{"a": ' * 20_000 + "1" + "}" * 20_001).encode(),
        "huge integer": json.dumps(SITUATION).replace('"total_cost": ', '"total_cost": 1' + "0" * 5000 + ', "x": ', 1).encode(),
        "1e400": json.dumps(SITUATION).replace('"total_cost": ', '"total_cost": 1e400, "x": ', 1).encode(),
        "long list": json.dumps({**SITUATION, "outputs": ["claim.points"] * big}).encode(),
        "many output names": json.dumps({**SITUATION, "outputs": [f"claim.x{i}" for i in range(100_000)]}).encode(),
        "not UTF-8": b'{"period": "\xff\xfe"}',
        "lone surrogate": b'{"period": "\\ud800"}',
        "null": b"null",
        "empty": b"",
    }


@pytest.mark.parametrize("name", list(_odd_bodies()))
def test_odd_bodies_are_4xx(client, name):
    r = client.post(EVALUATE, content=_odd_bodies()[name], headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["detail"][0]["path"] is not None and r.json()["detail"][0]["message_zh"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_types_are_4xx(client, content_type):
    r = client.post(EVALUATE, content=b"a=1", headers={"content-type": content_type})
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "body"


@pytest.mark.parametrize("query", ["trace=2", "trace=", "trace=%00"])
def test_bad_query_values_are_422(client, query):
    r = client.post(f"{EVALUATE}?{query}", json=SITUATION)
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "query.trace"


def test_a_demo_name_too_long_for_a_file_is_404(client):
    assert client.get("/v1/demo/" + "a" * 5000).status_code == 404
