"""What an integrator relies on: the input contract and situation schema, many situations in one call,
CORS, gzip, the offline API docs, and the demo situations (接口集成)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.api.models import DEMO_DIR

ROOT = Path(__file__).resolve().parents[1]
SHARED_EXAMPLES = ROOT.parent / "shared" / "docs" / "worked-examples"
CITIES = ("hangzhou", "jingdezhen", "zibo", "tianjin", "panzhihua")


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(ROOT / "policies", watch=False), base_url="http://localhost")


def demo(name: str) -> dict:
    return json.loads((DEMO_DIR / f"{name}.json").read_text(encoding="utf-8"))


def demos_of(city: str) -> list[str]:
    return sorted(p.stem for p in DEMO_DIR.glob(f"{city}-*.json"))


def close(got, want) -> bool:
    """The tolerance of the worked examples (contract.md): 0.005 for amounts, 1e-6 for ratios."""
    if isinstance(want, (bool, str)) or want is None:
        return got == want
    return isinstance(got, (int, float)) and abs(got - want) <= (0.0051 if abs(want) >= 10 else 1e-6)


# ---------------------------------------------------------------- the situation schema


@pytest.mark.parametrize("city", CITIES)
def test_schema_accepts_every_demo_of_the_city(client, city):
    answer = client.get(f"/v1/cities/{city}/schema")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/schema+json")
    schema = answer.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    names = demos_of(city)
    assert names, f"no demo situation for {city}"
    for name in names:
        jsonschema.validate(demo(name), schema)  # raises on the first fault


@pytest.mark.parametrize("fault, path", [
    (lambda s: s["entities"]["claim"][0].__setitem__("total_cost", "12000"), "total_cost"),
    (lambda s: s["entities"]["claim"][0].__setitem__("total_cst", 1.0), "total_cst"),
    (lambda s: s["entities"]["claim"][0].__setitem__("total_cost", -5), "total_cost"),
    (lambda s: s["entities"]["claim"][0].pop("id"), "id"),
    (lambda s: s.__setitem__("period", "last year"), "period"),
    (lambda s: s["entities"].__setitem__("claims", []), "claims"),
    (lambda s: s.__setitem__("parameters", {"no_such_rate": 1}), "no_such_rate"),
])
def test_what_the_schema_refuses_the_server_refuses(client, fault, path):
    """A situation the schema refuses is refused by the server too, and both name the place."""
    situation = demo("zibo-dip-settlement")
    fault(situation)
    schema = client.get("/v1/cities/zibo/schema").json()
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(situation))
    assert errors, "the schema accepted a faulty situation"
    answer = client.post("/v1/cities/zibo/evaluate", json=situation)
    assert answer.status_code == 422
    assert any(path in f["path"] for f in answer.json()["detail"]), answer.json()


def test_entities_describe_fields_as_the_model_declares_them(client):
    """Types, units, allowed values and links read independently from the model file."""
    model = yaml.safe_load((ROOT / "engine" / "model" / "model.yaml").read_text(encoding="utf-8"))
    answer = client.get("/v1/cities/zibo/entities").json()
    assert answer["policy"]["id"] == "zibo"
    entities = answer["entities"]
    for name in ("fund", "institution", "claim"):
        assert name in entities
    claim = entities["claim"]
    assert claim["links"]["institution"] == "institution" and claim["fields"]["institution"]["type"] == "link"
    assert claim["fields"]["institution"]["links_to"] == "institution"
    assert claim["fields"]["total_cost"]["type"] == "number"
    assert claim["fields"]["total_cost"]["required"] == "when_read"  # read by formulas, no default
    declared = _model_fields(model, "claim")
    for field, spec in declared.items():
        got = claim["fields"][field]
        if "values" in spec:
            assert got["values"] == spec["values"], field
        if "unit" in spec and spec["unit"]:
            assert got["unit"] == spec["unit"], field
    assert entities["account"]["rows"] == "derived"
    # every formula variable says it is computed (and may be supplied to replace the formula)
    assert all(f["required"] == "formula" for f in entities["fund"]["fields"].values() if "formula" in f)
    unknown = client.get("/v1/cities/nowhere/entities")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_city"
    bad_version = client.get("/v1/cities/zibo/schema?version=1999-01-01")
    assert bad_version.status_code == 404 and bad_version.json()["error"] == "unknown_version"


def _model_fields(model: dict, entity: str) -> dict:
    """The fields the model file declares for an entity, whatever the layout (a map or a list)."""
    ent = model["entities"][entity]
    fields = ent.get("fields") or ent.get("inputs") or ent.get("variables") or {}
    if isinstance(fields, list):
        return {f["name"]: f for f in fields if isinstance(f, dict) and "name" in f}
    return {k: (v if isinstance(v, dict) else {}) for k, v in fields.items()}


# ---------------------------------------------------------------- many situations in one call


def test_evaluate_many_answers_each_as_the_single_endpoint_would(client):
    names = demos_of("zibo")[:2]
    bad = {"period": "2022", "entities": {"claim": [{"id": "x", "bogus": 1}]}}
    body = {"situations": [demo(names[0]), bad, demo(names[1])]}
    answer = client.post("/v1/cities/zibo/evaluate-many", json=body)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [200, 422, 200]
    assert results[1]["error"] == "invalid_situation"
    assert results[1]["detail"][0]["path"] == "situations[1].entities.claim[0].bogus"
    for i, name in ((0, names[0]), (2, names[1])):
        single = client.post("/v1/cities/zibo/evaluate", json=demo(name)).json()
        assert results[i]["result"]["entities"] == single["entities"]


def test_evaluate_many_bounds(client):
    empty = client.post("/v1/cities/zibo/evaluate-many", json={"situations": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["path"] == "situations"
    unknown = client.post("/v1/cities/nowhere/evaluate-many", json={"situations": [demo("zibo-dip-settlement")]})
    assert unknown.status_code == 404
    many = {"situations": [{"period": "2022", "entities": {"claim": [{"id": str(i)} for i in range(70_000)]}}] * 2}
    over = client.post("/v1/cities/zibo/evaluate-many", json=many)
    assert over.status_code == 413 and over.json()["detail"][0]["path"] == "MEDPAY_MAX_ROWS"


# ---------------------------------------------------------------- demos are the worked examples


@pytest.mark.skipif(not SHARED_EXAMPLES.is_dir(), reason="the shared worked examples are not beside the project")
def test_every_worked_example_is_a_demo_that_evaluates_to_its_expected_values(client):
    files = sorted(SHARED_EXAMPLES.glob("*.json"))
    assert len(files) >= 25
    for file in files:
        case = json.loads(file.read_text(encoding="utf-8"))
        assert demo(file.stem) == case["situation"], f"docs/demo/{file.name} is not the worked example's situation"
        answer = client.post(f"/v1/cities/{case['city']}/evaluate", json=demo(file.stem))
        assert answer.status_code == 200, (file.name, answer.text[:300])
        got = answer.json()["entities"]
        checked = 0
        for entity, rows in case["expected"].items():
            by_id = {r["id"]: r for r in got[entity]}
            for rid, values in rows.items():
                for name, want in values.items():
                    assert close(by_id[rid].get(name), want), (file.name, entity, rid, name, by_id[rid].get(name), want)
                    checked += 1
        assert checked, f"{file.name} checks nothing"


# ---------------------------------------------------------------- CORS, gzip, offline docs


def test_cors_is_off_by_default_and_an_allow_list_when_set(client, monkeypatch):
    preflight = {"Origin": "https://his.example.org", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    plain = client.get("/v1/cities", headers={"Origin": "https://his.example.org"})
    assert "access-control-allow-origin" not in plain.headers
    monkeypatch.setenv("MEDPAY_CORS_ORIGINS", "https://his.example.org, https://other.example.org/")
    allowed = TestClient(create_app(ROOT / "policies", watch=False), base_url="http://localhost")
    ok = allowed.options("/v1/cities/zibo/evaluate", headers=preflight)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://his.example.org"
    other = allowed.options("/v1/cities/zibo/evaluate", headers={**preflight, "Origin": "https://evil.example.com"})
    assert other.headers.get("access-control-allow-origin") is None
    monkeypatch.setenv("MEDPAY_CORS_ORIGINS", "*")  # a wildcard is not an allow-list: refused
    star = TestClient(create_app(ROOT / "policies", watch=False), base_url="http://localhost")
    assert "access-control-allow-origin" not in star.get("/v1/cities", headers=preflight).headers


def test_large_answers_are_gzipped_small_ones_not(client):
    big = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert big.headers.get("content-encoding") == "gzip"
    assert json.loads(big.content)["info"]["title"] == "medpay"  # the client decoded it
    small = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    assert len(gzip.compress(big.content)) < len(big.content)  # worth compressing


def test_docs_pages_need_nothing_from_another_site(client):
    for route in ("/docs", "/redoc"):
        page = client.get(route)
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""", page.text)
        flat = [u for pair in urls for u in pair if u]
        assert flat and all(u.startswith("/") for u in flat), flat
        for url in flat:
            assert client.get(url).status_code == 200, url
