"""The city documents kept in line with the policies and the notices, mechanically (城市文档与政策、通知一致).

- Every clause a policy cites (`source:`, a reading's `clause:`) exists in the notice's own numbering;
  a Chinese phrase a note or reason quotes from the notice stands in the clause cited, or in a
  clause the text names.
- Every note and assumption reason of a shipped policy is written in Chinese and in English.
- docs/cities/<city>.md: its parameter table gives every parameter's value and clause (or
  `assumed`) as the policy does; a parameter quoted in the prose with a number has the policy's
  number; every clause it cites exists in the notice; its open readings are the policy's; every
  assumed rule, table and check, and every policy check, is named; Panzhihua's per-diem rate
  table is the CSV's.
- docs/cities.md: the patient-share formulas and the edges quoted for each city are the policies'.
- `medpay validate` lists, per city, each assumed value with its reason and each open reading, in
  both languages; the API describes notes and reasons as {zh, en}.

The notices are kept beside the pages (docs/cities/notices/<city>.txt, the text as published).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.cli import main
from engine.compile.build import load_policy_file
from engine.policy.spec import Policy

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
DOCS = ROOT / "docs"
NOTICES = DOCS / "cities" / "notices"
CITIES = ("hangzhou", "jingdezhen", "zibo", "tianjin", "panzhihua")

CN = "一二三四五六七八九十"
# The notices' numbering: 一、 / （一） / 1． / （1）, each at the start of a line (markdown # allowed).
LEVELS = (
    re.compile(rf"^[#\s\u3000]*([{CN}]+)、"),
    re.compile(rf"^[#\s\u3000]*[（(]\s*([{CN}]+)\s*[）)]"),
    re.compile(r"^[#\s\u3000]*(\d+)\s*[.．、](?!\d)"),
    re.compile(r"^[#\s\u3000]*[（(](\d+)[）)]"),
)
CLAUSE = re.compile(rf"[{CN}]+(?:（[{CN}]+）)?(?:\d+(?:（\d+）)?)?")
WIDE = str.maketrans({",": "，", ";": "；", ":": "：", "(": "（", ")": "）", "!": "！", "?": "？", '"': "“"})


def clause_id(path: list[str | None]) -> str:
    part, section, item, sub = path
    return part + (f"（{section}）" if section else "") + (item or "") + (f"（{sub}）" if sub else "")


def parse_notice(text: str) -> dict[str, str]:
    """Clause id (一, 二（二）, 二（二）1（7）) → its text (sub-clauses included, whitespace removed)."""
    path: list[str | None] = [None, None, None, None]
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        for level, pattern in enumerate(LEVELS):
            hit = pattern.match(line)
            if hit and path[0] is not None or hit and level == 0:
                path[level] = hit.group(1)
                path[level + 1:] = [None] * (3 - level)
                break
        if path[0] is None:
            continue
        for depth in range(1, 5):
            if path[depth - 1] is not None:
                found.setdefault(clause_id(path[:depth] + [None] * (4 - depth)), []).append(line)
    return {k: "".join("".join(v).split()) for k, v in found.items()}


@cache
def notice(city: str) -> dict[str, str]:
    return parse_notice((NOTICES / f"{city}.txt").read_text(encoding="utf-8"))


@cache
def notice_text(city: str) -> str:
    return "".join((NOTICES / f"{city}.txt").read_text(encoding="utf-8").split()).translate(WIDE)


@cache
def policy(city: str) -> Policy:
    return load_policy_file(POLICIES / f"{city}.yaml")


@cache
def raw(city: str) -> dict:
    return yaml.safe_load((POLICIES / f"{city}.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module", autouse=True)
def _forget_the_policies():
    """The loaded policies are kept for this module only, not for the rest of the session."""
    yield
    for cached in (notice, notice_text, policy, raw):
        cached.cache_clear()


def page(city: str) -> str:
    return (DOCS / "cities" / f"{city}.md").read_text(encoding="utf-8")


def cited(source: str) -> list[str]:
    """The clauses of a citation: 二（二）1、2、4 and 二（二）1-6 name several items of 二（二）."""
    head = CLAUSE.match(source)
    assert head, f"not a clause: {source!r}"
    first = head.group(0)
    rest = source[head.end():].strip()
    stem = first.rstrip("0123456789")
    ranged = re.fullmatch(r"[-–](\d+)", rest)
    if ranged and first != stem:
        return [f"{stem}{n}" for n in range(int(first[len(stem):]), int(ranged.group(1)) + 1)]
    listed = re.findall(r"[、,，]\s*(\d+)", rest)
    assert rest == "" or listed, f"cannot read the citation {source!r}"
    return [first] + [f"{stem}{n}" for n in listed]


def items(data: dict):
    """(where, declaration) of every parameter, table, variable, check and reading of a raw policy."""
    for section in ("parameters", "tables"):
        for name, spec in (data.get(section) or {}).items():
            yield f"{section}.{name}", spec
    for entity, declared in (data.get("variables") or {}).items():
        for name, spec in declared.items():
            yield f"variables.{entity}.{name}", spec
    for entity, declared in (data.get("checks") or {}).items():
        for name, spec in declared.items():
            yield f"checks.{entity}.{name}", spec
    for i, reading in enumerate(data.get("readings") or []):
        yield f"readings[{i}]", {"source": reading["clause"], "note": reading["text"]}


def texts(spec: dict) -> list[str]:
    out = []
    for key in ("note", "assumed"):
        value = spec.get(key)
        out += [value["zh"], value["en"]] if isinstance(value, dict) else [value] if value else []
    return out


def quotes(text: str) -> set[str]:
    """Runs of eight or more characters of Chinese text (the notice's words a note quotes)."""
    out = set()
    for part in re.split(r"…|\.\.\.", "".join(text.split()).translate(WIDE)):
        for run in re.findall(r"[\u4e00-\u9fff，、；：“”（）%\d]{8,}", part):
            run = run.strip("，、；：（）")
            if sum("\u4e00" <= c <= "\u9fff" for c in run) >= 6:
                out.add(run)
    return out


# ------------------------------------------------------------------ the notices and the policies


def test_the_notices_numbering_is_read():
    assert "年终清算" in notice("jingdezhen")["四（四）2"]
    assert "每月未拨付的5%部分不予支付" in notice("hangzhou")["二（二）1（7）"]
    assert "无效人头予以剔除" in notice("hangzhou")["二（二）1（5）"]
    assert "全年清算" in notice("zibo")["二（三）4（4）"] and "15例（含）" in notice("zibo")["二（三）1（2）"]
    assert "连续计算起付线" in notice("tianjin")["二（十一）"]
    assert "累计计算起付线" in notice("panzhihua")["五（二）4"]
    assert "一、主要目标" not in notice("hangzhou")["二"]  # a part ends where the next begins
    assert cited("二（二）1、2、4") == ["二（二）1", "二（二）2", "二（二）4"]
    assert cited("二（二）1-6") == [f"二（二）{n}" for n in range(1, 7)]


@pytest.mark.parametrize("city", CITIES)
def test_every_clause_a_policy_cites_is_in_the_notice(city):
    missing = []
    for where, spec in items(raw(city)):
        sources = [spec.get("source")] + [v.get("source") for v in spec.get("values") or [] if isinstance(v, dict)]
        for source in filter(None, sources):
            missing += [f"{where}: {c}" for c in cited(source) if c not in notice(city)]
    assert missing == []


@pytest.mark.parametrize("city", CITIES)
def test_a_quoted_phrase_stands_in_the_clause_cited(city):
    """A note or reason that quotes the notice quotes the clause its item cites, or names the
    clause it quotes (e.g. "四（二）1 付费标准包括…")."""
    clauses, whole, wrong = notice(city), notice_text(city), []
    for where, spec in items(raw(city)):
        own = cited(spec["source"]) if spec.get("source") else []
        named = {m.group(0) for t in texts(spec) for m in CLAUSE.finditer(t) if m.group(0) in clauses}
        for phrase in quotes(" ".join(texts(spec))):
            if phrase not in whole:
                continue  # a paraphrase, not a quotation
            if not any(phrase in clauses[c].translate(WIDE) for c in [*own, *named] if c in clauses):
                homes = [c for c, t in clauses.items() if phrase in t.translate(WIDE)]
                wrong.append(f"{where} cites {own or 'nothing'} but quotes {phrase!r} of {homes[-1:]}")
    assert wrong == []


def _is_bilingual(text: object) -> bool:
    if not (isinstance(text, dict) and set(text) == {"zh", "en"}):
        return False
    zh, en = str(text["zh"]), str(text["en"])
    english = re.sub(r"\b\w+_\w+\b|[\w/.]+\.(?:md|yaml|csv)", " ", en)
    return (zh != en and sum("\u4e00" <= c <= "\u9fff" for c in zh) >= 2
            and len(re.findall(r"\b[A-Za-z]{3,}\b", english)) >= 2)


@pytest.mark.parametrize("city", (*CITIES, "_template"))
def test_every_note_and_reason_is_in_both_languages(city):
    data = yaml.safe_load((POLICIES / f"{city}.yaml").read_text(encoding="utf-8"))
    one_language = [f"{where}.{key}" for where, spec in items(data) for key in ("note", "assumed")
                    if key in spec and not _is_bilingual(spec[key])]
    assert one_language == []
    loaded = load_policy_file(POLICIES / f"{city}.yaml")
    assert loaded.assumptions and all(why.zh != why.en for _, why in loaded.assumptions)


# ------------------------------------------------------------------ docs/cities/<city>.md


def shown(value: object, unit: str, name: str = "") -> str:
    """A parameter value as the pages write it: rates as percentages (a coefficient, weight or
    factor as a plain number), maps as `key: value`, bands as their edges and rates."""
    if isinstance(value, (bool, str)):
        return str(value).lower() if isinstance(value, bool) else value
    if isinstance(value, (int, float)):
        percent = unit == "ratio" and not re.search(r"coefficient|weight|factor|bonus|_ratio$", name)
        text = f"{value * 100 if percent else value:.6f}".rstrip("0").rstrip(".")
        return text + ("%" if percent else "")
    if isinstance(value, list):
        return ", ".join(shown(v, unit, name) for v in value)
    if isinstance(value, dict) and set(value) == {"edges", "rates"}:
        return f"edges {shown(value['edges'], unit, name)}; rates {shown(value['rates'], 'ratio')}"
    return ", ".join(f"{k}: {shown(v, unit, name)}" for k, v in value.items())


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section (up to the next `## `)."""
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 4)
    return text[start:end if end > 0 else len(text)]


def table_rows(body: str) -> list[list[str]]:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in body.splitlines()
            if line.strip().startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line.strip())]
    return rows[1:]


@pytest.mark.parametrize("city", CITIES)
def test_the_parameter_table_is_the_policys(city):
    rows = table_rows(section(page(city), "Parameters 参数"))
    documented = {r[0].strip("`"): (r[1], r[2]) for r in rows}
    expected = {}
    for name, p in policy(city).parameters.items():
        values = "; ".join(shown(v.value, p.unit, name) for v in p.versions)
        expected[name] = (values, f"`{p.source}`" if p.source else "assumed")
    assert documented == expected


def _numbers(text: str) -> list[float]:
    return [float(n[:-1]) / 100 if n.endswith("%") else float(n) for n in re.findall(r"\d+(?:\.\d+)?%?", text)]


@pytest.mark.parametrize("city", CITIES)
def test_a_parameter_quoted_with_a_number_has_the_policys_number(city):
    text, wrong = page(city), []
    for name, p in policy(city).parameters.items():
        value = p.versions[-1].value
        flat = list(value.values()) if isinstance(value, dict) and "edges" not in value else [value]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            continue
        for hit in re.finditer(rf"`{name}`\s*(?:=|:|is)?\s*(\d+(?:\.\d+)?%?(?:\s*/\s*\d+(?:\.\d+)?%?)*)", text):
            said = _numbers(hit.group(1))
            if [round(v, 9) for v in said] != [round(float(v), 9) for v in flat]:
                wrong.append(f"{hit.group(0)!r}: the policy has {shown(value, p.unit, name)}")
    assert wrong == []


@pytest.mark.parametrize("city", CITIES)
def test_every_clause_a_page_cites_is_in_the_notice(city):
    text = page(city)
    tokens = [t for t in re.findall(rf"`([{CN}][^`]*)`", text)
              if re.match(rf"{CLAUSE.pattern}(?:$|[（(–\-、,，/ ])", t)]  # `一`, `二（二）1（5）–（7）`, not `一次住院`
    tokens += re.findall(rf"[{CN}]+（[{CN}]+）(?:\d+(?:（\d+）)?)?", text)
    clauses = {CLAUSE.match(t).group(0) for t in tokens}
    assert clauses and sorted(c for c in clauses if c not in notice(city)) == []


@pytest.mark.parametrize("city", CITIES)
def test_the_open_readings_are_the_policys(city):
    body = section(page(city), "Open readings 待定理解")
    listed = sorted(re.findall(r"^- `([^`]+)`", body, flags=re.M))
    assert listed == sorted(r.clause for r in policy(city).readings if r.status == "open")


@pytest.mark.parametrize("city", CITIES)
def test_every_assumed_rule_table_and_check_is_named(city):
    text = page(city)
    unnamed = [where for where, _ in policy(city).assumptions
               if not where.startswith("parameters.") and f"`{where}`" not in text]
    assert unnamed == []


@pytest.mark.parametrize("city", CITIES)
def test_every_check_is_named(city):
    text = page(city)
    assert [c.name for c in policy(city).checks if f"`{c.name}`" not in text] == []


def test_the_panzhihua_per_diem_rates_are_the_tables():
    rows = {r[0]: r[1:] for r in table_rows(section(page("panzhihua"), "8. Per-diem"))}
    csv = (POLICIES / "tables" / "panzhihua_per_diem.csv").read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(csv) if line.startswith("category,"))
    for line in csv[header + 1:]:
        category, level, *rates = line.split(",")
        assert rows[category][int(level) - 1] == "/".join(rates), (category, level)


# ------------------------------------------------------------------ docs/cities.md


def test_the_index_names_each_city_its_notice_and_page():
    text = (DOCS / "cities.md").read_text(encoding="utf-8")
    for city in CITIES:
        assert f"(cities/{city}.md)" in text
        assert f"cities/notices/{city}.txt" in text
    for city in ("hangzhou", "jingdezhen", "zibo", "panzhihua"):
        assert policy(city).meta.notice in text


def test_the_patient_share_formulas_quoted_are_the_policies():
    """cities.md quotes each city's cost base, deductible and coinsurance as the policy writes them;
    the patient's share has one shape in every city."""
    rows = table_rows(section((DOCS / "cities.md").read_text(encoding="utf-8"), "Patient share by city"))
    quoted = {(r[0].strip("`"), r[1].strip("`")): r[2].strip("`") for r in rows}
    for city in CITIES:
        claim = policy(city).model.entities["claim"].variables
        for name in ("cost_base", "deductible_due", "coinsurance"):
            assert quoted[(city, name)] == " ".join(claim[name].formula.split()), (city, name)
        shape = " ".join(claim["patient_paid"].formula.split())
        assert shape == "self_pay_paid + deductible_due + (cost_base - deductible_due) * coinsurance"
    assert {" ".join(policy(c).model.entities["claim"].variables["deductible_due"].formula.split())
            for c in CITIES}.__len__() == 5  # five different deductible formulas, none shared


def test_the_edges_quoted_are_the_policies():
    """Each edge cities.md quotes (which side of 以上/以下/不满… the number falls) is in the formula named."""
    rows = table_rows(section((DOCS / "cities.md").read_text(encoding="utf-8"), "Edges by city"))
    assert len(rows) >= 15
    for city, where, _, fragment in rows:
        p = policy(city.strip("`"))
        entity, _, name = where.strip("`").partition(".")
        formula = next(c.formula for c in p.checks if c.name == name) if entity == "check" else \
            p.model.entities[entity].variables[name].formula
        assert fragment.strip("`") in " ".join(formula.split()), (city, where)


# ------------------------------------------------------------------ validate and the API


@pytest.mark.parametrize("city", CITIES)
def test_validate_lists_assumed_values_and_open_readings_in_both_languages(city, capsys):
    assert main(["validate", str(POLICIES / f"{city}.yaml")]) == 0
    out = capsys.readouterr().out
    p = policy(city)
    assert f"assumed values / 假设值 ({len(p.assumptions)}):" in out
    for where, why in p.assumptions:
        assert f"    - {where}: {why.en} / {why.zh}" in out
    opened = [r for r in p.readings if r.status == "open"]
    assert opened and f"open readings / 待定理解 ({len(opened)}):" in out
    for r in opened:
        assert f"    - {r.clause}: {r.text.en} / {r.text.zh}" in out


def test_the_api_describes_notes_and_reasons_in_both_languages(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "hangzhou.yaml").write_text((POLICIES / "hangzhou.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    for table in POLICIES.glob("tables/hangzhou_*.csv"):
        (tmp_path / "tables" / table.name).write_text(table.read_text(encoding="utf-8"), encoding="utf-8")
    client = TestClient(create_app(tmp_path, watch=False), base_url="http://localhost")
    body = client.get("/v1/cities/hangzhou").json()
    reason = body["parameters"]["base_points"]["assumed"]
    assert set(reason) == {"zh", "en"} and "基准点数" in reason["zh"] and "no number" in reason["en"]
    point_value = next(v for v in body["variables"] if v["entity"] == "fund" and v["name"] == "point_value")
    assert "全费用口径" in point_value["note"]["zh"] and "full-cost basis" in point_value["note"]["en"]
    assert {a["name"] for a in body["assumptions"]} == {w for w, _ in policy("hangzhou").assumptions}
    assert all(set(a["reason"]) == {"zh", "en"} for a in body["assumptions"])
