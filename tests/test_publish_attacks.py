"""Attacks on publishing, startup and the policy store: each is refused clearly, changes nothing,
and never stops the server from serving the good policies. MEDPAY_FUZZ_EXAMPLES raises the sizes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api.app import create_app
from engine.policy import publish as publishing
from engine.policy.publish import publish, read_audit, write_atomic
from engine.policy.store import PolicyStore

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "policies" / "_template.yaml"
TEMPLATE_TEXT = TEMPLATE.read_text(encoding="utf-8")
TOKEN = {"Authorization": "Bearer test-token"}
SITUATION = {"entities": {"fund": [{"id": "F", "revenue": 1000}]}, "outputs": ["fund.points_budget"], "period": "2025"}
SCALE = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1"))
FUZZ = settings(max_examples=40 * SCALE, deadline=2000, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDPAY_ADMIN_TOKEN", "test-token")
    monkeypatch.delenv("MEDPAY_ARCHIVE", raising=False)
    (tmp_path / "tables").mkdir()
    shutil.copy(TEMPLATE, tmp_path / "_template.yaml")
    shutil.copy(ROOT / "engine" / "model" / "model.yaml", tmp_path / "model.yaml")
    shutil.copy(ROOT / "policies" / "tables" / "_template_drg.csv", tmp_path / "tables")
    return tmp_path


def variant(rate: str, version: str | None = None, policy_id: str | None = None) -> str:
    """The template with another risk-fund rate, and optionally a version name and another id."""
    text = TEMPLATE_TEXT.replace("    value: 5%                          # percent literal", f"    value: {rate}  #", 1)
    if version:
        text = text.replace("  effective: {from: 2024-01-01", f"  version: \"{version}\"\n  effective: {{from: 2024-01-01", 1)
    if policy_id:
        text = text.replace("  id: _template ", f"  id: {policy_id} ", 1)
    return text


def sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every policy-folder file (archive excluded) with its hash: to show nothing changed."""
    return {str(p.relative_to(folder)): sha(p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file() and ".published" not in p.parts}


def publishes(folder: Path) -> list[dict]:
    return [e for e in read_audit(folder)[0] if e.get("action") == "publish"]


# 1. the shared model and table files are not policies --------------------------------------------

def test_model_and_table_files_cannot_be_published(folder):
    """The shared model's name is refused; table files live in `tables/`, which no published name
    can reach (a name has no folder part), so a table is never replaced through this endpoint."""
    (folder / "_template_2026.yaml").write_text(
        variant("6%").replace("effective: {from: 2024-01-01, to: 2025-12-31}", "effective: {from: 2026-01-01, to: null}", 1),
        encoding="utf-8")
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    assert client.get("/healthz").json()["policies"] == {"_template": ["2024-01-01", "2026-01-01"]}
    before = snapshot(folder)
    r = client.put("/v1/admin/policies/model.yaml", json={"text": variant("9%", "v9")}, headers=TOKEN)
    assert r.status_code == 422, r.text
    fault = r.json()["detail"][0]
    assert fault["path"] == "file" and "model.yaml" in fault["message"] and "shared entity model" in fault["message"]
    assert "model.yaml" in fault["message_zh"]
    for name in ("tables%2F_template_drg.csv", "tables%2F_template_drg.yaml", "..%2Ftables%2Fx.yaml"):
        r = client.put(f"/v1/admin/policies/{name}", json={"text": variant("9%", "v9")}, headers=TOKEN)
        assert r.status_code == 422, (name, r.text)
    assert snapshot(folder) == before
    restarted = TestClient(create_app(folder, watch=False), base_url="http://localhost")  # the next start still serves both versions
    assert restarted.get("/healthz").json()["policies"] == {"_template": ["2024-01-01", "2026-01-01"]}


# 2. publishing is per city id; a served version is never replaced by surprise ----------------------

def test_a_file_name_must_agree_with_its_policy_id(folder):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    before = snapshot(folder)
    r = client.put("/v1/admin/policies/othercity.yaml", json={"text": variant("9%", "v9")}, headers=TOKEN)
    assert r.status_code == 422
    fault = r.json()["detail"][0]
    assert fault["path"] == "policy.id" and "'_template'" in fault["message"] and "othercity.yaml" in fault["message"]
    r = client.put("/v1/admin/policies/othercity.yaml", json={"text": variant("9%", "v9", "othercity")}, headers=TOKEN)
    assert r.status_code == 200 and r.json()["policy"] == "othercity"  # its own id: fine
    assert snapshot(folder).keys() - before.keys() == {"othercity.yaml"}
    r = client.put("/v1/admin/policies/othercity_b.yaml", json={"text": variant("9%", "v9", "othercity_b")},
                   headers=TOKEN)
    assert r.status_code == 200  # a city whose id extends another's
    r = client.put("/v1/admin/policies/othercity_b.yaml", json={"text": variant("9%", "v10", "othercity")},
                   headers=TOKEN)
    assert r.status_code == 409 and "'othercity_b'" in r.json()["detail"][0]["message"]
    assert client.get("/healthz").json()["policies"] == {"_template": ["2024-01-01"], "othercity": ["v9"],
                                                         "othercity_b": ["v9"]}
    for good in ["othercity_2026.yaml", "othercity-b.yaml", "othercity@v2.yaml"]:
        assert publishing.id_fault(good, "othercity") is None
    assert publishing.id_fault("othercityx.yaml", "othercity")["code"] == "file_name_mismatch"


def test_a_served_version_is_only_replaced_by_its_own_file_when_asked(folder):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    original = (folder / "_template.yaml").read_text(encoding="utf-8")

    def budget() -> float:
        r = client.post("/v1/cities/_template/evaluate", json=SITUATION)
        return r.json()["entities"]["fund"][0]["points_budget"]
    assert budget() == 950.0  # 1000 × (1 − 5%)
    same_version = variant("9%")  # version 2024-01-01, as served from _template.yaml
    for url in ["/v1/admin/policies/_template_evil.yaml", "/v1/admin/policies/_template_evil.yaml?replace=true",
                "/v1/admin/policies/_template.yaml"]:
        r = client.put(url, json={"text": same_version}, headers=TOKEN)
        assert r.status_code == 409, (url, r.text)
        fault = r.json()["detail"][0]
        assert "2024-01-01" in fault["message"] and "_template.yaml" in fault["message"] and fault["message_zh"]
    assert not (folder / "_template_evil.yaml").exists()
    assert (folder / "_template.yaml").read_text(encoding="utf-8") == original and budget() == 950.0
    r = client.put("/v1/admin/policies/_template.yaml?replace=true", json={"text": same_version}, headers=TOKEN)
    assert r.status_code == 200 and r.json()["replaced"] is True
    assert budget() == 910.0  # 1000 × (1 − 9%)
    outcomes = [(e["file"], e["outcome"], e.get("replaced", False)) for e in publishes(folder)]
    assert outcomes == [("_template_evil.yaml", "conflict", False), ("_template_evil.yaml", "conflict", False),
                        ("_template.yaml", "conflict", False), ("_template.yaml", "accepted", True)]
    r = client.put("/v1/admin/policies/_template_2.yaml", json={"text": variant("7%", "v2")}, headers=TOKEN)
    assert r.status_code == 200  # a new version under a new file of the same city is fine
    assert client.get("/healthz").json()["policies"] == {"_template": ["2024-01-01", "v2"]}


def test_two_files_on_disk_with_one_version_serve_the_first_and_report_the_second(folder):
    (folder / "_template_copy.yaml").write_text(variant("9%"), encoding="utf-8")
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    health = client.get("/healthz").json()
    assert health["policies"] == {"_template": ["2024-01-01"]} and health["refused_files"] == ["_template_copy.yaml"]
    assert "duplicate_version" in health["refused"]["_template_copy.yaml"][0]
    assert client.post("/v1/cities/_template/evaluate", json=SITUATION).json()["entities"]["fund"][0][
        "points_budget"] == 950.0  # _template.yaml (first in name order) is the one served


# 3. startup reads what it can -------------------------------------------------------------------

def test_startup_survives_a_torn_audit_line_and_broken_files(folder):
    archive = folder / ".published"
    archive.mkdir()
    whole = json.dumps({"time": "2024-01-01T00:00:00+00:00", "action": "publish", "file": "_template_b.yaml",
                        "accepted": True, "archived": "../_template.yaml"})  # outside the archive: not trusted
    (archive / "audit.jsonl").write_text(whole + "\n" + '{"time": "2024-05-0SECRET-PART', encoding="utf-8")
    (folder / "_template_b.yaml").write_text("policy: [broken SECRET-YAML", encoding="utf-8")
    (folder / "_template_c.yaml").write_bytes(b"policy:\n  id: \xff\xfe\n")  # not UTF-8
    (folder / "_template_d.yaml").mkdir()  # a folder with a policy's name
    os.mkfifo(folder / "_template_e.yaml")  # reading it would block for ever
    (folder / "_template_f.yaml").write_bytes(b"#" * 2_000_001)  # over the policy size limit: not read
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    health = client.get("/healthz")
    body = health.json()
    assert body["policies"] == {"_template": ["2024-01-01"]}
    assert body["skipped"] == {"audit.jsonl": [2]}
    assert body["refused_files"] == ["_template_b.yaml", "_template_c.yaml", "_template_d.yaml", "_template_e.yaml",
                                     "_template_f.yaml"]
    assert "not_utf8" in body["refused"]["_template_c.yaml"][0]
    assert "not_a_file" in body["refused"]["_template_e.yaml"][0]
    assert "file_too_large" in body["refused"]["_template_f.yaml"][0]
    assert body["fallbacks"] == {}  # the audit entry pointing outside the archive was not followed
    assert "SECRET" not in health.text and str(folder) not in health.text
    events = client.get("/v1/admin/audit", headers=TOKEN).json()["events"]
    assert {"skipped": "audit.jsonl", "lines": [2]}.items() <= events[0].items()
    assert "SECRET" not in json.dumps(events)
    # the next entry closes the torn line instead of being swallowed by it
    assert client.put("/v1/admin/policies/_template.yaml", json={"text": variant("8%", "v8")},
                      headers=TOKEN).status_code == 200
    entries, skipped = read_audit(folder)
    assert skipped == [2] and entries[-1]["version"] == "v8" and entries[-1]["accepted"] is True


def test_a_text_that_is_not_unicode_is_refused(folder):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    body = '{"text": "policy: \\ud800"}'  # a lone surrogate: valid JSON, not encodable text
    r = client.put("/v1/admin/policies/_template.yaml", content=body,
                   headers={**TOKEN, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "text"
    entry = publish(folder, "_template.yaml", "policy: \ud800")  # the same, from Python
    assert entry["outcome"] == "refused" and entry["diagnostics"][0]["code"] == "bad_text"
    assert (folder / "_template.yaml").read_text(encoding="utf-8") == TEMPLATE_TEXT


# 4. the last good text of every file is kept, and served at the next start -----------------------

def test_a_hand_edit_that_loaded_is_served_after_the_file_breaks(folder):
    (folder / "_template.yaml").write_text(variant("3%", "v3"), encoding="utf-8")  # never published
    TestClient(create_app(folder, watch=False), base_url="http://localhost")
    assert (folder / ".published" / "last-good" / "_template.yaml").read_text(encoding="utf-8") == variant("3%", "v3")
    (folder / "_template.yaml").write_text("policy: [broken", encoding="utf-8")
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    health = client.get("/healthz").json()
    assert health["policies"] == {"_template": ["v3"]} and health["refused_files"] == ["_template.yaml"]
    fallback = health["fallbacks"]["_template.yaml"]
    assert fallback["version"] == "v3" and fallback["served_from"] == "last-good/_template.yaml"
    assert fallback["sha256"] == sha(variant("3%", "v3"))
    r = client.post("/v1/cities/_template/evaluate", json=SITUATION)
    assert r.headers["x-medpay-policy"] == "_template@v3" and r.json()["entities"]["fund"][0]["points_budget"] == 970.0
    (folder / "_template.yaml").write_text(variant("4%", "v4"), encoding="utf-8")  # mended: the file wins again
    client.post("/v1/admin/reload", headers=TOKEN)
    assert client.get("/healthz").json()["fallbacks"] == {}


def test_a_file_renamed_into_place_with_the_same_size_and_time_is_reloaded(folder):
    store = PolicyStore(folder)
    policy = folder / "_template.yaml"
    info = policy.stat()
    write_atomic(policy, variant("5%", "vA").encode("utf-8"))  # same size as vB below
    os.utime(policy, ns=(info.st_atime_ns, info.st_mtime_ns))
    store.reload()
    info = policy.stat()
    write_atomic(policy, variant("5%", "vB").encode("utf-8"))
    os.utime(policy, ns=(info.st_atime_ns, info.st_mtime_ns))  # a coarse clock: the same time stamp
    store.reload()
    assert [p.meta.version for p in store.registry.cities["_template"]] == ["vB"]


# 5. writes are whole or not at all ----------------------------------------------------------------

def test_a_failed_write_changes_nothing_and_leaves_no_temporary_file(folder, monkeypatch):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    before = snapshot(folder)

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(publishing.os, "replace", full_disk)
    r = client.put("/v1/admin/policies/_template.yaml", json={"text": variant("8%", "v8")}, headers=TOKEN)
    assert r.status_code == 503 and r.json()["detail"][0]["message_zh"]
    monkeypatch.undo()
    assert snapshot(folder) == before
    assert not [p for p in folder.rglob("*.tmp")]
    assert publishes(folder)[-1]["outcome"] == "write_failed"
    assert client.get("/healthz").json()["policies"] == {"_template": ["2024-01-01"]}


def test_a_reader_never_sees_half_a_file(tmp_path):
    target = tmp_path / "policy.yaml"
    texts = [b"a" * 300_000, b"b" * 200_000]
    write_atomic(target, texts[0])
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(sha(target.read_bytes()))
    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(40 * SCALE):
        write_atomic(target, texts[i % 2])
    stop.set()
    thread.join()
    assert seen <= {sha(t) for t in texts} and seen
    assert [p.name for p in tmp_path.iterdir()] == ["policy.yaml"]


# 6. refused tokens are audited; concurrent publishes keep the log and the disk in step -------------

def test_every_admin_endpoint_audits_a_refused_token(folder):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    wrong = {"Authorization": "Bearer not-the-token-XYZZY"}
    calls = [("post", "/v1/admin/reload", {}), ("get", "/v1/admin/audit", {}),
             ("put", "/v1/admin/policies/_template.yaml", {"json": {"text": TEMPLATE_TEXT}})]
    for method, url, body in calls:
        assert getattr(client, method)(url, **body).status_code == 403
        assert getattr(client, method)(url, headers=wrong, **body).status_code == 403
    entries = client.get("/v1/admin/audit", headers=TOKEN).json()["entries"]
    assert [(e["endpoint"], e["reason"]) for e in entries] == [
        ("POST /v1/admin/reload", "no token"), ("POST /v1/admin/reload", "wrong token"),
        ("GET /v1/admin/audit", "no token"), ("GET /v1/admin/audit", "wrong token"),
        ("PUT /v1/admin/policies/{file_name:path}", "no token"), ("PUT /v1/admin/policies/{file_name:path}", "wrong token")]
    assert all(e["outcome"] == "forbidden" and e["client"] == "testclient" and e["time"] for e in entries)
    assert "XYZZY" not in (folder / ".published" / "audit.jsonl").read_text(encoding="utf-8")
    assert (folder / "_template.yaml").read_text(encoding="utf-8") == TEMPLATE_TEXT


def test_the_audit_endpoint_reads_the_last_entries_from_the_end(folder):
    archive = folder / ".published"
    archive.mkdir()
    lines = [json.dumps({"n": i, "pad": "x" * 200}) for i in range(2000)]
    lines[1995] = '{"n": 1995, "torn'  # unreadable: left out, the others still come
    (archive / "audit.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [e["n"] for e in publishing.audit_entries(folder, 3)] == [1997, 1998, 1999]
    assert [e["n"] for e in publishing.audit_entries(folder, 6)] == [1993, 1994, 1996, 1997, 1998, 1999]
    everything = publishing.audit_entries(folder, 10_000)
    assert [e["n"] for e in everything] == [i for i in range(2000) if i != 1995]
    assert read_audit(folder)[1] == [1996]


def test_a_flood_of_refused_tokens_is_logged_at_a_bounded_rate(monkeypatch):
    from engine.api import app as api
    clock = [600.0]
    monkeypatch.setattr(api.time, "monotonic", lambda: clock[0])
    log = api.RefusalLog(per_minute=3)
    entries = [{"n": i} for i in range(6)]
    assert [log.admit(e) for e in entries[:5]] == [True, True, True, False, False]
    clock[0] += 60  # the next minute: written again, with the count of those left out
    assert log.admit(entries[5]) and entries[5]["not_logged_before"] == 2
    assert all("not_logged_before" not in e for e in entries[:5])


def _slow_writes(monkeypatch, folder: Path) -> Path:
    """Widen the window between a file's rename and its audit line, as a loaded disk would, and
    note the hash of every policy file written, in order, in a log (shared by forked processes)."""
    write, log = publishing.write_atomic, folder / "writes.log"

    def slow(path: Path, data: bytes, mode: int = 0o644) -> None:
        write(path, data, mode)
        if path == folder / "_template.yaml":
            with log.open("a", encoding="utf-8") as fh:
                fh.write(sha(data) + "\n")
        time.sleep(random.random() / 40)
    monkeypatch.setattr(publishing, "write_atomic", slow)
    return log


def _log_and_disk_agree(folder: Path, writes: Path, count: int) -> None:
    """The accepted entries, in log order, are the writes in the order they happened; the last is on disk."""
    accepted = [e for e in publishes(folder) if e["accepted"]]
    assert len(accepted) == count
    assert [e["sha256"] for e in accepted] == writes.read_text(encoding="utf-8").split()
    on_disk = (folder / "_template.yaml").read_bytes()
    assert accepted[-1]["sha256"] == sha(on_disk)
    assert (folder / ".published" / accepted[-1]["archived"]).read_bytes() == on_disk


def test_concurrent_publishes_leave_the_log_and_the_file_in_step(folder, monkeypatch):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    writes = _slow_writes(monkeypatch, folder)
    count = 30 * SCALE if SCALE > 1 else 8  # 30 at once broke the old code; 8 stays fast
    statuses: list[int] = []

    def put(i: int) -> None:
        r = client.put("/v1/admin/policies/_template.yaml", json={"text": variant(f"{i % 50}%", f"c{i}")},
                       headers=TOKEN)
        statuses.append(r.status_code)
    threads = [threading.Thread(target=put, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * count
    _log_and_disk_agree(folder, writes, count)
    served = client.get("/healthz").json()["policies"]["_template"]
    assert served == [[e for e in publishes(folder) if e["accepted"]][-1]["version"]]


def _publish_from_a_process(folder: str, first: int, count: int) -> None:
    store = PolicyStore(Path(folder))
    for i in range(first, first + count):
        entry = publish(Path(folder), "_template.yaml", variant(f"{i % 50}%", f"p{i}"), served=store.served)
        assert entry["accepted"], entry


def test_two_processes_publishing_serialise_on_the_file_lock(folder, monkeypatch):
    writes = _slow_writes(monkeypatch, folder)  # inherited by the forked processes
    count = 6 * SCALE if SCALE > 1 else 3
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_publish_from_a_process, args=(str(folder), k * count, count)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    _log_and_disk_agree(folder, writes, 2 * count)


# 7. names and headers: every odd one is a 422 or a 403, never a 500 --------------------------------

ODD_NAMES = ["a" * 300 + ".yaml", "a" * 96 + ".yaml", "杭州.yaml", "ｍodel.yaml", "a.b.yaml", "..%2Fescape.yaml",
             "sub%2F_template.yaml", "%2Fetc%2Fpasswd", "_template.yaml.tmp", ".hidden.yaml", "_evil.yaml",
             "_templates.yaml", "Upper.yaml", "a b.yaml", "-x.yaml", "x.yml", "x.YAML", "x%00.yaml", "x\\y.yaml",
             "x.yaml%0A", "%20", "@.yaml", "a@.yaml", "model.yaml", "tables%2F_template_drg.csv", ""]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_file_names_are_refused_with_a_422_naming_the_file(folder, name):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")
    before = snapshot(folder)
    r = client.put(f"/v1/admin/policies/{name}", json={"text": variant("9%", "v9")}, headers=TOKEN)
    assert r.status_code == 422, (name, r.status_code, r.text)
    fault = r.json()["detail"][0]
    assert fault["path"] == "file" and fault["message"] and fault["message_zh"]
    assert all(c.isprintable() for c in fault["message"] + fault["message_zh"])
    assert snapshot(folder) == before


def test_fuzzed_file_names_never_answer_500(folder):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")

    @FUZZ
    @given(name=st.text(max_size=120), replace=st.sampled_from(["true", "false", "1", "maybe", "", "真"]))
    def attempt(name: str, replace: str) -> None:
        r = client.put(f"/v1/admin/policies/{quote(name, safe='')}?replace={quote(replace)}",
                       json={"text": variant("9%", "v9", "fuzz")}, headers=TOKEN)
        assert r.status_code in (200, 404, 409, 422), (name, r.status_code, r.text)
        if r.status_code == 422:
            assert all(f["message"] and f["message_zh"] for f in r.json()["detail"])
    attempt()


def test_fuzzed_authorization_headers_get_403(folder):
    client = TestClient(create_app(folder, watch=False), base_url="http://localhost")

    @FUZZ
    @given(value=st.binary(max_size=300).filter(lambda b: not {10, 13, 0} & set(b)))
    def attempt(value: bytes) -> None:
        r = client.put("/v1/admin/policies/_template.yaml", json={"text": TEMPLATE_TEXT},
                       headers={"Authorization": b"Bearer " + value})
        assert r.status_code == 403
    attempt()
    assert (folder / "_template.yaml").read_text(encoding="utf-8") == TEMPLATE_TEXT
