"""Clearing statements (清算单): every amount of a statement is the value `medpay settle` wrote for the
same data; the lines a statement says add up do add up (fractions.Fraction on the cell values); the
.xlsx opens with openpyxl, the HTML holds the same amounts; the fund summary's totals add up."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from engine.cli import main
from engine.compile.build import load_policy_file, load_policy_text
from engine.errors import PolicyError

ROOT = Path(__file__).resolve().parents[1]
CITIES = ["hangzhou", "zibo", "tianjin", "panzhihua", "jingdezhen"]
FEN = Fraction(1, 100)
HALF_FEN = Fraction(1, 200)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Per city: small synthetic data, the results of `medpay settle`, and `medpay statement`'s folder
    (which settles the data again on its own)."""
    out = {}
    for city in CITIES:
        base = tmp_path_factory.mktemp(city)
        data, results, statements = base / "data", base / "results", base / "statements"
        assert main(["synth", city, "--claims", "600", "--out", str(data), "--seed", "7"]) == 0
        assert main(["settle", city, "--data", str(data), "--out", str(results)]) == 0
        assert main(["statement", city, "--data", str(data), "--out", str(statements)]) == 0
        out[city] = {"data": data, "results": results, "statements": statements}
    return out


def settled(results: Path, entity: str) -> dict[str, dict]:
    """id → values of one entity as `medpay settle` wrote them."""
    table = pq.read_table(results / f"{entity}.parquet").to_pydict()
    ids = table.pop("id")
    return {str(i): {k: v[n] for k, v in table.items()} for n, i in enumerate(ids)}


def run_values(run: dict[str, Path], entity: str) -> dict[str, dict]:
    """id → the run's values of one entity: its inputs (the data file) and what `medpay settle` wrote."""
    given = settled(run["data"], entity) if (run["data"] / f"{entity}.parquet").is_file() else {}
    out = settled(run["results"], entity) if (run["results"] / f"{entity}.parquet").is_file() else {}
    for row_id, values in given.items():
        out[row_id] = {**values, **out.get(row_id, {})}
    return out


def sheet_lines(path: Path) -> dict[str, object]:
    """variable (column G) → value (column C) of a statement workbook, read back with openpyxl."""
    sheet = load_workbook(path).active
    return {row[6]: row[2] for row in sheet.iter_rows(min_row=7, values_only=True) if row[6]}


def as_fraction(value) -> Fraction:
    return Fraction(str(value))


def cell_equals(cell, value) -> bool:
    if isinstance(value, bool):
        return cell == ("是 yes" if value else "否 no")
    if isinstance(value, str):
        return cell == (value or None)
    return cell == value


def statement_entity(city: str) -> str:
    return "institution" if "institution" in load_policy_file(ROOT / "policies" / f"{city}.yaml").statements \
        else "community"


@pytest.mark.parametrize("city", CITIES)
def test_every_amount_is_the_settled_value(city, runs):
    run = runs[city]
    policy = load_policy_file(ROOT / "policies" / f"{city}.yaml")
    for entity in [e for e in ("institution", "community") if e in policy.statements]:
        rows = run_values(run, entity)
        row_id = sorted(rows)[1]
        lines = sheet_lines(run["statements"] / entity / f"{entity}-{row_id}.xlsx")
        plain = [name for name in lines if "." not in name and "[" not in name]
        assert plain == policy.statements[entity].variables()
        assert len(plain) >= 3
        variables = policy.model.entities[entity].variables
        for name in plain:  # an input the data leaves out is its declared default
            value = rows[row_id].get(name)
            value = variables[name].default if value is None else value
            assert value is not None, name
            assert same(lines[name], value, variables[name].unit), f"{city} {entity} {row_id} {name}"
        monthly = [name for name in lines if name.count(".") == 2]
        for name in monthly:
            child, child_id, var = name.split(".")
            assert lines[name] == run_values(run, child)[child_id][var]
        if city == "zibo":  # its prepaid section lists every month of the institution's accounts
            mine = [i for i in settled(run["results"], "account_month") if i.split("|")[0] == row_id]
            assert sorted(n.split(".")[1] for n in monthly) == sorted(mine) and mine


@pytest.mark.parametrize("city", CITIES)
def test_the_lines_that_add_up_add_up(city, runs):
    """Each line declared as a sum (adds:) equals the sum of its terms' cells to the fen (each cell
    is rounded to the fen on its own, so the sum may differ by half a fen per term)."""
    run = runs[city]
    policy = load_policy_file(ROOT / "policies" / f"{city}.yaml")
    checked = 0
    for entity, spec in policy.statements.items():
        folder = run["statements"] / entity
        files = sorted(folder.glob("*.xlsx")) if folder.is_dir() else []
        for path in files:
            cells = sheet_lines(path)
            for line in [li for s in spec.sections for li in s.lines if li.adds]:
                total = sum(sign * _product(cells, names) for sign, names in line.adds)
                slack = HALF_FEN * (len(line.adds) + 1)
                assert abs(as_fraction(cells[line.variable]) - total) <= slack, f"{path.name} {line.variable}"
                checked += 1
    assert checked >= 5


def _product(cells: dict, names: tuple[str, ...]) -> Fraction:
    """The product of the terms' cells; a `child.variable` term is the sum of that child's lines."""
    out = Fraction(1)
    for name in names:
        if "." in name:
            child, var = name.split(".")
            out *= sum((as_fraction(v) for k, v in cells.items()
                        if k.startswith(child + ".") and k.endswith("." + var)), Fraction(0))
        else:
            out *= as_fraction(cells[name])
    return out


def same(cell, value, unit: str) -> bool:
    """Money equals exactly (to the fen, as settled); a rate or a score to the 15 significant digits
    a spreadsheet keeps."""
    if unit != "yuan" and isinstance(value, float) and isinstance(cell, float):
        return cell == value or abs(cell - value) <= 1e-14 * max(1.0, abs(value))
    return cell_equals(cell, value)


def test_a_sum_that_does_not_add_up_is_caught(runs):
    """The check above can fail: a made-up cell breaks it."""
    cells = sheet_lines(next((runs["hangzhou"]["statements"] / "institution").glob("*.xlsx")))
    cells["balance_payable"] = float(cells["balance_payable"]) + 0.02
    assert abs(as_fraction(cells["balance_payable"]) - (as_fraction(cells["balance_due"])
                                                        - as_fraction(cells["balance_held"]))) > HALF_FEN * 3


@pytest.mark.parametrize("city", CITIES)
def test_the_fund_summary_totals_add_up(city, runs):
    run = runs[city]
    book = load_workbook(run["statements"] / "fund-summary.xlsx")
    entity = statement_entity(city)
    sheet = book[f"{entity} totals"]
    rows = list(sheet.iter_rows(values_only=True))
    names = rows[3][1:]
    body, total = rows[4:-1], rows[-1]
    expected = run_values(run, entity)
    variables = load_policy_file(ROOT / "policies" / f"{city}.yaml").model.entities[entity].variables
    assert sorted(r[0] for r in body) == sorted(expected)
    for row in body:
        given = [expected[row[0]].get(n) for n in names]  # an input left empty in the data is its default
        assert list(row[1:]) == [variables[n].default if g is None else g for n, g in zip(names, given, strict=True)]
    for k in range(1, len(names) + 1):
        assert as_fraction(total[k]) == sum((as_fraction(r[k]) for r in body), Fraction(0)), names[k - 1]
    if (run["results"] / "fund.parquet").is_file() and "fund" in load_policy_file(
            ROOT / "policies" / f"{city}.yaml").statements:
        funds = run_values(run, "fund")
        fund_vars = load_policy_file(ROOT / "policies" / f"{city}.yaml").model.entities["fund"].variables
        fund_id = sorted(funds)[0]
        lines = {r[6]: r[2] for r in book[f"fund {fund_id}"].iter_rows(min_row=7, values_only=True) if r[6]}
        for name, value in lines.items():
            if "." not in name:
                assert same(value, funds[fund_id][name], fund_vars[name].unit), name


def test_hangzhou_allocation_shows_in_the_fund_summary(runs):
    """The accounts' payments by points add up to the fund's points settlement total (allocation to
    the fen): the institutions' column total equals the sum of the funds' totals exactly."""
    run = runs["hangzhou"]
    book = load_workbook(run["statements"] / "fund-summary.xlsx")
    rows = list(book["institution totals"].iter_rows(values_only=True))
    column = list(rows[3]).index("allocated_payment")
    funds = settled(run["results"], "fund")
    assert as_fraction(rows[-1][column]) == sum(as_fraction(f["points_settlement_total"]) for f in funds.values())


def test_the_html_statement_holds_the_same_amounts(runs):
    run = runs["panzhihua"]
    rows = run_values(run, "institution")
    row_id = sorted(rows)[0]
    page = (run["statements"] / "institution" / f"institution-{row_id}.html").read_text(encoding="utf-8")
    for name in ("points_payment", "prepaid", "balance_due"):
        value = rows[row_id][name]
        assert f'data-variable="{name}">{value:,.2f} 元<' in page
    assert "@media print" in page and "<script" not in page and "http" not in page.split("</style>")[0]
    assert page.index("年度清算应付") < page.index("balance due")  # Chinese first, English beside


def test_jingdezhen_band_lines_add_up_to_the_banded_amount(runs):
    """The band lines of the surplus kept: each band's share by hand, their sum is the variable."""
    run = runs["jingdezhen"]
    rows = settled(run["results"], "community")
    for row_id, values in rows.items():
        lines = sheet_lines(run["statements"] / "community" / f"community-{row_id}.xlsx")
        bands = [lines[f"surplus_retention_bands[{k}]"] for k in range(3)]
        surplus, base = as_fraction(values["surplus"]), as_fraction(values["package_total"])
        edges, rates = [Fraction(10, 100) * base, Fraction(15, 100) * base], [Fraction(8, 10), Fraction(6, 10), 0]
        pieces = [min(surplus, edges[0]), max(0, min(surplus, edges[1]) - edges[0]), max(0, surplus - edges[1])]
        for got, piece, rate in zip(bands, pieces, rates, strict=True):
            assert abs(as_fraction(got) - piece * rate) <= HALF_FEN
        assert abs(sum(as_fraction(b) for b in bands) - as_fraction(values["retained_surplus"])) <= FEN
        assert abs(as_fraction(lines["surplus_retention_bands[total]"]) - sum(as_fraction(b) for b in bands)) <= FEN


def test_statement_of_a_policy_without_one_is_refused(runs, tmp_path, capsys):
    assert main(["statement", str(ROOT / "policies" / "_template.yaml"), "--data", str(runs["zibo"]["data"]),
                 "--out", str(tmp_path / "s")]) == 1
    assert "statement" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_a_statement_naming_an_unknown_variable_is_a_located_diagnostic():
    text = (ROOT / "policies" / "panzhihua.yaml").read_text(encoding="utf-8")
    broken = text.replace("      - kind: prepaid\n        lines: [prepaid]", "      - kind: prepaid\n        lines: [prepayed]")
    assert broken != text
    with pytest.raises(PolicyError) as caught:
        load_policy_text(broken, "panzhihua.yaml", ROOT / "policies")
    [diag] = caught.value.diagnostics
    assert diag.code == "unknown_name" and "prepaid" in diag.en and diag.zh and diag.location.line > 900


# ---- the API: the page's button -------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    from engine.api.app import create_app
    return TestClient(create_app(ROOT / "policies", watch=False), base_url="http://localhost")


def demo(name: str) -> dict:
    return json.loads((ROOT / "docs" / "demo" / f"{name}.json").read_text(encoding="utf-8"))


def test_api_statement_html_of_one_institution(client):
    situation = demo("hangzhou-drg-settlement")
    evaluated = client.post("/v1/cities/hangzhou/evaluate", json=situation).json()
    row = next(r for r in evaluated["entities"]["institution"] if r["id"] == "A")
    answer = client.post("/v1/cities/hangzhou/statement?entity=institution&id=A&format=html", json=situation)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert f'data-variable="balance_due">{row["balance_due"]:,.2f} 元<' in answer.text


def test_api_statement_xlsx_and_zip(client):
    situation = demo("hangzhou-drg-settlement")
    names = ("total_points", "points_payment", "withheld", "balance_due", "balance_payable")
    asked = {**situation, "outputs": [f"institution.{n}" for n in names]}
    evaluated = client.post("/v1/cities/hangzhou/evaluate", json=asked).json()
    row = next(r for r in evaluated["entities"]["institution"] if r["id"] == "A")
    one = client.post("/v1/cities/hangzhou/statement?entity=institution&id=A&format=xlsx", json=situation)
    assert one.status_code == 200
    lines = {r[6]: r[2] for r in load_workbook(io.BytesIO(one.content)).active.iter_rows(min_row=7, values_only=True)
             if r[6]}
    for name in names:
        assert lines[name] == row[name], name
    # every statement and the fund summary need the budget's build-up: the fund's budget inputs given as 0
    whole = {**copy.deepcopy(situation), "outputs": None}
    whole["entities"]["fund"][0].update(last_year_spending=0, proposed_growth=0, inpatient_share=0)
    every = client.post("/v1/cities/hangzhou/statement", json=whole)
    assert every.status_code == 200 and every.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(every.content)).namelist()
    assert "fund-summary.xlsx" in names and any(n.startswith("institution/") and n.endswith(".html") for n in names)
    without = client.post("/v1/cities/hangzhou/statement", json=situation)  # the zip needs the budget inputs
    assert without.status_code == 422 and without.json()["detail"][0]["path"].startswith("entities.fund[0].")


@pytest.mark.parametrize(("query", "status", "path"), [
    ("entity=institution&id=NOPE&format=html", 404, "query.id"),
    ("entity=claim&id=c1&format=html", 404, "query.entity"),
    ("entity=institution&id=A&format=pdf", 422, "query.format"),
])
def test_api_statement_faults_name_the_query(client, query, status, path):
    answer = client.post(f"/v1/cities/hangzhou/statement?{query}", json=demo("hangzhou-drg-settlement"))
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"][0]
    assert detail["path"] == path and detail["message"] and detail["message_zh"]


def test_api_statement_of_a_bad_situation_is_a_4xx_with_its_path(client):
    answer = client.post("/v1/cities/hangzhou/statement", json={"period": "2020", "entities": {
        "claim": [{"id": "c1", "total_cost": "lots"}]}})
    assert answer.status_code == 422
    assert any("entities.claim[0].total_cost" in d["path"] for d in answer.json()["detail"])


def with_ids(situation: dict, renamed: dict[str, str]) -> dict:
    """The situation with institutions renamed (in their rows, links and account ids "A|all")."""
    text = json.dumps(situation, ensure_ascii=False)
    for old, new in renamed.items():
        quoted = json.dumps(new, ensure_ascii=False)
        text = text.replace(f'"{old}"', quoted).replace(f'"{old}|', quoted[:-1] + "|")
    return json.loads(text)


def test_ids_that_look_like_formulas_stay_text_and_odd_ids_get_their_own_files(client):
    """A row id from the data is never a spreadsheet formula; ids that clean to the same file name
    (a/b, a_b) still get a file each; a Chinese id is a valid download name."""
    situation = demo("hangzhou-drg-settlement")
    renamed = {"A": "=HYPERLINK(\"http://x\")", "B": "a/b"}
    changed = with_ids(situation, renamed)
    assert any(r["id"] == renamed["A"] for r in changed["entities"]["institution"])
    one = client.post("/v1/cities/hangzhou/statement", params={"entity": "institution", "id": renamed["A"],
                                                                "format": "xlsx"}, json=changed)
    assert one.status_code == 200, one.text
    sheet = load_workbook(io.BytesIO(one.content)).active
    cells = [c for row in sheet.iter_rows() for c in row if isinstance(c.value, str) and c.value.startswith("=")]
    assert cells and all(c.data_type == "s" for c in cells)
    assert f"：{renamed['A']}" in sheet["A3"].value
    page = client.post("/v1/cities/hangzhou/statement", params={"entity": "institution", "id": renamed["A"],
                                                                 "format": "html"}, json=changed)
    assert "=HYPERLINK(&quot;http://x&quot;)" in page.text and "<a " not in page.text
    from engine.report.files import file_stem
    assert file_stem("institution", "a/b") != file_stem("institution", "a_b")
    assert file_stem("institution", "医院甲") == "institution-医院甲"
    assert file_stem("institution", "..") != "institution-.."


def test_a_chinese_id_downloads_with_an_encoded_file_name(client):
    situation = demo("hangzhou-drg-settlement")
    changed = with_ids(situation, {"A": "医院甲"})
    answer = client.post("/v1/cities/hangzhou/statement", params={"entity": "institution", "id": "医院甲",
                                                                   "format": "xlsx"}, json=changed)
    assert answer.status_code == 200, answer.text
    assert "filename*=UTF-8''institution-%E5%8C%BB%E9%99%A2%E7%94%B2.xlsx" in answer.headers["content-disposition"]
