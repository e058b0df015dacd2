"""Policy files as hostile input: table paths, YAML aliases and tags, nesting, numbers, counts, CPU.

Each attack gets a clear bilingual diagnostic at its file position and changes nothing. The
full-size versions (2 MB texts, full billion laughs, 100,000-deep nesting) run only when
MEDPAY_FUZZ_EXAMPLES > 1; a small version of each always runs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine import settings
from engine.api.app import create_app, validation
from engine.compile.build import load_policy_file, load_policy_text
from engine.errors import PolicyError
from engine.policy.loader import served_table_reader
from engine.policy.yaml_source import SourceText, load_yaml
from engine.settings import Limits

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "policies" / "_template.yaml"
FULL = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "1")) > 1
TOKEN = {"Authorization": "Bearer attack-token"}

BASE = """policy:
  id: attack
  name: {zh: 测试市, en: Testville}
  notice: 测医保〔2024〕1号
  issuer: 测试市医疗保障局
  effective: {from: 2024-01-01}
tables:
  drg:
    file: tables/drg.csv
    key: [drg_group]
    label: {zh: 权重, en: weights}
    source: 附件1
parameters:
  base_points:
    label: {zh: 基准点数, en: base points}
    value: 100
    source: 一（一）
variables:
  claim:
    drg_group:
      type: string
      label: {zh: 分组, en: group}
    points:
      label: {zh: 点数, en: points}
      formula: lookup(drg.weight, drg_group, default=0) * base_points
      source: 一（二）
"""
DRG = "drg_group,weight\nA01,1.2\nB02,0.8\n"


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A policy folder with tables/drg.csv, and a secret file beside the folder."""
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "drg.csv").write_text(DRG, encoding="utf-8")
    (tmp_path.parent / f"{tmp_path.name}-secret.csv").write_text("drg_group,SECRET_TOKEN_VALUE\nA01,1\n",
                                                                  encoding="utf-8")
    return tmp_path


@pytest.fixture()
def limits(monkeypatch):
    """Replace some limits for one test: limits(table_rows=2)."""
    def apply(**changes):
        monkeypatch.setattr(settings, "LIMITS", Limits(**changes))
    return apply


def refused(text: str, base_dir: Path | None = None, **kw) -> list:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "attack.yaml", base_dir, **kw)
    return caught.value.diagnostics


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first `needle` in `text`, found by hand."""
    before = text[:text.index(needle)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def with_file(written: str) -> str:
    return BASE.replace("file: tables/drg.csv", f"file: {written}")


def assert_bilingual(d) -> None:
    assert d.en and d.zh and d.en != d.zh and any("\u4e00" <= c <= "\u9fff" for c in d.zh)


# ---- 1. table files: only the policy folder's tables/ ------------------------------------------

def test_the_base_policy_loads_with_its_table(folder):
    policy = load_policy_text(BASE, "attack.yaml", folder)
    assert policy.tables["drg"].columns == {"weight": [1.2, 0.8]}
    assert Path(policy.tables["drg"].path) == (folder / "tables" / "drg.csv").resolve()


@pytest.mark.parametrize("written", ["/etc/passwd", "/proc/self/environ", "../{secret}", "tables/../../{secret}",
                                     "tables/../../../../../../etc/passwd", "drg.csv", "tables\\..\\..\\{secret}",
                                     "tables", "tables/", "."])
def test_a_table_outside_tables_is_refused_at_its_yaml_position(folder, written):
    written = written.format(secret=f"{folder.name}-secret.csv")
    text = with_file(written)
    [d] = refused(text, folder)
    assert d.code == "table_outside"
    line, column = position(text, f"file: {written}\n")
    assert (d.location.line, d.location.column) == (line, column + 6) == (9, 11)
    assert "tables/" in d.en and "tables/" in d.zh and "write file: tables/" in d.en
    assert_bilingual(d)
    assert "SECRET" not in d.render() and "root:" not in d.render()


def test_the_suggestion_names_the_file_inside_tables(folder):
    [d] = refused(with_file("/srv/data/weights.csv"), folder)
    assert d.en.endswith("write file: tables/weights.csv")


def test_a_symlink_leading_out_of_tables_is_refused(folder):
    secret = folder.parent / f"{folder.name}-secret.csv"
    (folder / "tables" / "link.csv").symlink_to(secret)
    (folder / "tables" / "up").symlink_to(folder.parent, target_is_directory=True)
    for written in ("tables/link.csv", f"tables/up/{secret.name}"):
        [d] = refused(with_file(written), folder)
        assert d.code == "table_outside" and "SECRET" not in d.render()


def test_a_symlink_inside_tables_is_followed(folder):
    (folder / "tables" / "alias.csv").symlink_to(folder / "tables" / "drg.csv")
    assert load_policy_text(with_file("tables/alias.csv"), "a.yaml", folder).tables["drg"].index == \
        {("A01",): 0, ("B02",): 1}


@pytest.mark.parametrize("written", ['"tables/a\\0b.csv"', '"tables/' + "x" * 5000 + '.csv"', "tables/sub"])
def test_odd_table_names_get_a_diagnostic_not_a_crash(folder, written):
    (folder / "tables" / "sub").mkdir()
    [d] = refused(with_file(written), folder)
    assert d.code in {"table_outside", "table_missing"} and len(d.en) < 400


def test_a_fifo_in_tables_does_not_block_the_loader(folder):
    os.mkfifo(folder / "tables" / "pipe.csv")
    [d] = refused(with_file("tables/pipe.csv"), folder)
    assert d.code == "table_missing"


def test_key_column_diagnostic_does_not_quote_the_header(folder):
    (folder / "tables" / "drg.csv").write_text("secret_one,secret_two\nA01,1\n", encoding="utf-8")
    [d] = refused(BASE, folder)
    assert d.code == "table_key" and "drg_group" in d.en
    assert "secret" not in d.render()


def test_duplicate_key_is_named_by_its_lines_not_its_values(folder):
    (folder / "tables" / "drg.csv").write_text("# note\ndrg_group,weight\nA01,1\nB02,2\nA01,3\n", encoding="utf-8")
    [d] = refused(BASE, folder)
    assert d.code == "table_duplicate" and "lines 3 and 5" in d.en and "第 3 行与第 5 行" in d.zh
    assert "A01" not in d.render()


@pytest.mark.parametrize("cell", ["nan", "inf", "-Infinity", "1e400"])
def test_a_table_number_that_is_not_finite_is_refused(folder, cell):
    (folder / "tables" / "drg.csv").write_text(f"drg_group,weight\nA01,1\nB02,{cell}\n", encoding="utf-8")
    [d] = refused(BASE, folder)
    assert d.code == "not_finite" and "line 3, column 2" in d.en


def test_a_table_that_is_not_utf8_is_refused(folder):
    (folder / "tables" / "drg.csv").write_bytes("drg_group,weight\nA01,1\n分组,2\n".encode("gbk"))
    [d] = refused(BASE, folder)
    assert d.code == "table_encoding" and "UTF-8" in d.en


def test_table_size_rows_columns_and_cells_are_bounded(folder, limits):
    table = folder / "tables" / "drg.csv"
    limits(table_bytes=100)
    table.write_text("drg_group,weight\n" + "".join(f"G{i},1\n" for i in range(20)), encoding="utf-8")
    assert [d.code for d in refused(BASE, folder)] == ["table_too_large"]
    limits(table_rows=19)
    assert "more than 19 rows" in refused(BASE, folder)[0].en
    limits(table_rows=20)
    assert load_policy_text(BASE, "a.yaml", folder).tables["drg"].index[("G19",)] == 19
    limits(table_columns=3)
    table.write_text("drg_group,weight,a,b\nA01,1,2,3\n", encoding="utf-8")
    assert "line 1 has more than 3 columns" in refused(BASE, folder)[0].en
    limits(table_cell_chars=9)
    table.write_text("drg_group,weight\nA01,1234567890\n", encoding="utf-8")
    assert "line 2 has a cell longer than 9 characters" in refused(BASE, folder)[0].en


def test_the_tables_of_a_policy_are_bounded_together(folder, limits):
    """Fifty tables naming the same big file would parse it fifty times: the limits count every read."""
    (folder / "tables" / "drg.csv").write_text("drg_group,weight\n" + "".join(f"G{i},1\n" for i in range(30)),
                                               encoding="utf-8")
    names = "".join(f"  t{i}:\n    file: tables/drg.csv\n    key: [drg_group]\n    label: {{zh: 表, en: t}}\n"
                    "    source: x\n" for i in range(3))
    text = BASE.replace("tables:\n", "tables:\n" + names)
    limits(table_rows=100)  # 4 reads of 30 rows
    [d] = refused(text, folder)
    assert d.code == "table_too_large" and "together have more than 100 rows" in d.en
    assert d.location.path == "tables.drg.file"  # the fourth read, in the file's order
    limits(table_rows=120)
    assert len(load_policy_text(text, "a.yaml", folder).tables) == 4
    size = len((folder / "tables" / "drg.csv").read_bytes())
    limits(table_bytes=4 * size - 1)
    [d] = refused(text, folder)
    assert d.code == "table_too_large" and f"together are larger than {4 * size - 1} bytes" in d.en


def test_a_giant_cell_or_row_at_default_limits_is_refused(folder):
    table = folder / "tables" / "drg.csv"
    table.write_text("drg_group,weight\nA01," + "9" * 200_000 + "\n", encoding="utf-8")
    assert "cell longer than 1000" in refused(BASE, folder)[0].en
    table.write_text("drg_group,weight\nA01,\"" + "x" * 200_000 + "\"\n", encoding="utf-8")
    assert "cell longer than 1000" in refused(BASE, folder)[0].en
    table.write_text("drg_group,weight" + ",c" * 5000 + "\nA01,1\n", encoding="utf-8")
    assert "more than 100 columns" in refused(BASE, folder)[0].en


def test_settings_document_every_limit():
    doc = settings.__doc__
    for name in ("MEDPAY_MAX_TABLE_BYTES", "MEDPAY_MAX_TABLE_ROWS", "MEDPAY_MAX_TABLE_COLUMNS",
                 "MEDPAY_MAX_TABLE_CELL_CHARS", "MEDPAY_MAX_POLICY_DEPTH", "MEDPAY_MAX_POLICY_NODES",
                 "MEDPAY_MAX_POLICY_PARAMETERS", "MEDPAY_MAX_POLICY_VARIABLES", "MEDPAY_MAX_POLICY_TABLES",
                 "MEDPAY_MAX_POLICY_FORMULA_CHARS"):
        assert name in doc


# ---- 1b. the API: /v1/validate reads no file --------------------------------------------------

@pytest.fixture()
def served(folder: Path, monkeypatch) -> Path:
    """The folder above, serving the base policy (so tables/drg.csv is a served table)."""
    monkeypatch.setenv("MEDPAY_ADMIN_TOKEN", "attack-token")
    monkeypatch.setenv("MEDPAY_SECRET_FOR_TEST", "leak-me-not")
    monkeypatch.delenv("MEDPAY_ARCHIVE", raising=False)
    (folder / "attack.yaml").write_text(BASE, encoding="utf-8")
    return folder


@pytest.fixture()
def client(served: Path) -> TestClient:
    return TestClient(create_app(served, watch=False), base_url="http://localhost")


def validate(client: TestClient, text: str) -> dict:
    r = client.post("/v1/validate", json={"text": text, "file": "draft.yaml"})
    assert r.status_code == 200
    return r.json()


@pytest.mark.parametrize("written", ["/proc/self/environ", "../../../../../../proc/self/environ", "/etc/passwd"])
def test_validate_cannot_read_files_outside(client, written):
    body = validate(client, with_file(written))
    assert body["valid"] is False
    [d] = body["diagnostics"]
    assert d["code"] == "table_outside" and (d["line"], d["column"]) == (9, 11) and d["path"] == "tables.drg.file"
    dumped = json.dumps(body)
    assert "attack-token" not in dumped and "leak-me-not" not in dumped and "root:" not in dumped


def test_validate_uses_the_served_tables_and_reads_no_file(client, served, monkeypatch):
    """A draft may use a served table; no file at all is opened while it is checked (the check the
    endpoint runs in its worker process, called here in this process so that the patches hold)."""
    tables = served_table_reader(client.app.state.store.registry.cities)

    def no_reading(*args, **kwargs):
        raise AssertionError("a file was read")
    monkeypatch.setattr(Path, "open", no_reading)
    monkeypatch.setattr(Path, "read_text", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    monkeypatch.setattr("builtins.open", no_reading)
    monkeypatch.setattr(os, "open", no_reading)
    body = validation(BASE.replace("value: 100", "value: 120"), "draft.yaml", served, tables)
    assert body["valid"] is True and body["policy"]["id"] == "attack"


def test_validate_refuses_a_table_file_the_served_policies_do_not_use(client, served):
    (served / "tables" / "private.csv").write_text("drg_group,weight\nA01,SECRET\n", encoding="utf-8")
    for written in ("tables/private.csv", "tables/never_written.csv"):  # same answer: no existence oracle
        [d] = validate(client, with_file(written))["diagnostics"]
        assert d["code"] == "table_not_served" and (d["line"], d["column"]) == (9, 11)
        assert "SECRET" not in json.dumps(d) and d["message_zh"]


def test_validate_with_a_served_table_keeps_its_checks(client):
    text = BASE.replace("key: [drg_group]", "key: [group_code]")
    [d] = validate(client, text)["diagnostics"]
    assert d["code"] == "table_key" and "weight" not in d["message"]


def test_cli_and_store_still_read_tables_from_disk(served):
    assert load_policy_file(served / "attack.yaml").tables["drg"].columns["weight"] == [1.2, 0.8]


# ---- 2. YAML anchors, aliases, tags ------------------------------------------------------------

def laughs(levels: int) -> str:
    """The "billion laughs": each level lists the previous one ten times."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_before_it_expands():
    text = laughs(9 if FULL else 6)
    start = time.process_time()
    [d] = refused(text)
    assert time.process_time() - start < 0.5
    assert d.code == "yaml_alias" and (d.location.line, d.location.column) == (1, 5)
    assert d.render().startswith("attack.yaml:1:5: error[yaml_alias]")
    assert_bilingual(d)


@pytest.mark.parametrize("text,where", [
    ("a: &x [*x]\n", (1, 4)),                                      # a recursive alias
    ("a: &x {b: *x}\n", (1, 4)),
    ("base: &b {x: 1}\nother:\n  <<: *b\n", (1, 7)),               # merge keys need an anchor too
    ("policy:\n  id: x\n  name: *n\n", (3, 9)),                    # an alias to nothing
    ("parameters:\n  p: !!python/object:os.system echo\n", (2, 6)),
    ("parameters:\n  p: !!binary aGVsbG8=\n", (2, 6)),
    ("parameters:\n  p: !custom 1\n", (2, 6)),
    ("parameters:\n  p: !!set {a, b}\n", (2, 6)),
])
def test_anchors_aliases_and_tags_are_refused_at_their_position(text, where):
    [d] = refused(text)
    assert d.code in {"yaml_alias", "yaml_tag"}
    assert (d.location.line, d.location.column) == where
    assert_bilingual(d)


def test_api_answers_an_alias_bomb_in_milliseconds(client, served):
    text = BASE + "\n" + laughs(9)
    start = time.perf_counter()
    body = validate(client, text)
    assert time.perf_counter() - start < 1.0
    assert body["valid"] is False and body["diagnostics"][0]["code"] == "yaml_alias"
    r = client.put("/v1/admin/policies/attack.yaml", json={"text": text}, headers=TOKEN)
    assert r.status_code == 422 and r.json()["error"] == "policy_refused"
    assert r.json()["detail"][0]["line"] == BASE.count("\n") + 2
    assert (served / "attack.yaml").read_text(encoding="utf-8") == BASE  # nothing written
    recursive = validate(client, "a: &x [*x]\n")
    assert recursive["diagnostics"][0]["code"] == "yaml_alias"


def test_a_complex_key_gets_a_diagnostic():
    [d] = refused("? [a, b]\n: 1\npolicy: 2\n")
    assert d.code == "complex_key" and (d.location.line, d.location.column) == (1, 3)


# ---- 3. nesting, numbers, counts ---------------------------------------------------------------

@pytest.mark.parametrize("make,small,full", [
    (lambda n: "[" * n + "]" * n, 2_000, 500_000),
    (lambda n: "{a: " * n + "1" + "}" * n, 2_000, 300_000),
    (lambda n: "".join(" " * i + "a:\n" for i in range(n)) + " " * n + "b: 1\n", 500, 1_500),  # by indentation
])
def test_deep_nesting_is_refused_not_a_recursion_error(make, small, full):
    [d] = refused(make(full if FULL else small))
    assert d.code == "too_deep" and "20 levels" in d.en and "MEDPAY_MAX_POLICY_DEPTH" in d.en
    assert d.location.line is not None


def test_nesting_up_to_the_limit_is_read(limits):
    limits(policy_depth=3)
    assert refused("a: {b: {c: [1]}}\n")[0].code == "too_deep"
    assert refused("a: {b: [1]}\n")[0].code != "too_deep"  # 3 levels: read, then the schema speaks


@pytest.mark.parametrize("value,code", [
    ("1e400", "bad_value"), (".nan", "not_finite"), (".inf", "not_finite"), ("-.Inf", "not_finite"),
    ("'1e400'", "bad_value"), ("'nan'", "bad_value"), ("'inf'", "bad_value"),
    ("'" + "9" * 400 + "%'", "bad_value"), ("1" + "0" * 400, "bad_value"), ("1" + "0" * 5000, "bad_value"),
    ("100000000000000", "bad_value"),
    ("{edges: [1, .inf], rates: [0.1, 0.2, 0.3]}", "not_finite"),
    ("{edges: [1, 2], rates: [0.1, .nan, 0.3]}", "not_finite"),
    ("{edges: ['1e999'], rates: [0.1, 0.2]}", "bad_value"),
    ("{\"1\": 300, \"2\": .inf}", "not_finite"),
    ("{\"1\": 300, \"2\": '" + "9" * 400 + "%'}", "bad_value"),
])
def test_numbers_that_are_not_finite_or_too_large_are_refused(value, code):
    """YAML reads .nan and .inf as numbers (refused where they stand: not_finite); 1e400 without a
    dot is a text, refused when it is read as the parameter's number (bad_value)."""
    text = _without_table(BASE.replace("value: 100\n", f"value: {value}\n"))
    [d] = refused(text)
    assert d.code == code, d.render()
    assert "finite" in d.en or "larger than 1e+13" in d.en or "cannot be read" in d.en
    line, _ = position(text, "value: ")
    assert d.location.line == line
    assert len(d.en) < 300  # a long number is not echoed in full


def _without_table(text: str) -> str:
    start, end = text.index("tables:\n"), text.index("parameters:\n")
    return text[:start] + text[end:].replace("lookup(drg.weight, drg_group, default=0)", "1")


def test_a_variable_minimum_that_is_not_finite_is_refused():
    text = _without_table(BASE).replace("      type: string\n", "      type: string\n      min: .inf\n")
    [d] = refused(text)
    assert d.code == "not_finite" and d.location.path == "variables.claim.drg_group.min"


@pytest.mark.parametrize("formula", ["total_cost * 1e400", "total_cost * 1" + "0" * 400])
def test_a_formula_number_that_is_not_finite_is_refused_at_its_character(formula):
    text = _without_table(BASE).replace("formula: 1 * base_points", f"formula: {formula}")
    [d] = refused(text)
    line, column = position(text, f"formula: {formula}")
    assert d.code == "not_finite" and (d.location.line, d.location.column) == (line, column + 9 + 13)
    assert_bilingual(d)


def test_parameter_numbers_within_the_limit_are_kept():
    text = _without_table(BASE).replace("value: 100\n", "value: 10_000_000_000_000\n")
    assert load_policy_text(text, "a.yaml").parameters["base_points"].versions[0].value == 1e13


def many(section: str, n: int) -> str:
    """The base policy with n entries more in one section."""
    text = _without_table(BASE)
    if section == "parameters":
        extra = "".join(f"  p{i}:\n    label: {{zh: 参, en: p}}\n    value: {i}\n    source: x\n" for i in range(n))
        return text.replace("parameters:\n", "parameters:\n" + extra)
    if section == "variables":
        extra = "".join(f"    v{i}:\n      label: {{zh: 变, en: v}}\n      formula: {i}\n      source: x\n"
                        for i in range(n))
        return text + extra
    extra = "".join(f"  t{i}:\n    file: tables/t.csv\n    key: [k]\n    label: {{zh: 表, en: t}}\n" for i in range(n))
    return text.replace("parameters:\n", "tables:\n" + extra + "parameters:\n")


@pytest.mark.parametrize("section,setting,limit,added,first_past,column", [
    # the base policy has 1 parameter (after the added ones), 2 variables (before them), no table
    ("parameters", "MEDPAY_MAX_POLICY_PARAMETERS", 500, 500, "base_points:", 3),
    ("variables", "MEDPAY_MAX_POLICY_VARIABLES", 500, 499, "v498:", 5),
    ("tables", "MEDPAY_MAX_POLICY_TABLES", 50, 51, "t50:", 3)])
def test_counts_of_parameters_variables_and_tables_are_bounded(section, setting, limit, added, first_past, column):
    text = many(section, added)
    [d] = refused(text)
    assert d.code == "too_many" and setting in d.en and f"more than {limit} {section}" in d.en
    assert (d.location.line, d.location.column) == (position(text, first_past)[0], column)
    assert_bilingual(d)


def test_the_count_limit_itself_is_accepted(limits):
    limits(policy_variables=5)
    assert refused(many("variables", 4))[0].code == "too_many"
    assert load_policy_text(many("variables", 3), "a.yaml").plan is not None


def test_formula_text_is_bounded_per_policy(limits):
    limits(policy_formula_chars=60)
    text = _without_table(BASE) + "    long:\n      label: {zh: 长, en: long}\n      formula: " + \
        " + ".join(["1"] * 20) + "\n      source: x\n"
    [d] = refused(text)
    assert d.code == "too_many" and "MEDPAY_MAX_POLICY_FORMULA_CHARS" in d.en
    assert d.location.path == "variables.claim.long.formula"


def test_values_in_a_file_are_bounded():
    text = "policy: [" + ", ".join(["1"] * 20_001) + "]\n"
    [d] = refused(text)
    assert d.code == "too_many_values" and "MEDPAY_MAX_POLICY_NODES" in d.en


def test_a_long_line_is_not_quoted_whole_in_every_diagnostic():
    line = "{policy: {id: x, title: '" + "长" * 100_000 + "', bad: 1}}"
    diagnostics = refused(line + "\n")
    assert "unknown_key" in {d.code for d in diagnostics}
    assert all(d.location.excerpt is None or len(d.location.excerpt) <= 250 for d in diagnostics)


# ---- 4. CPU of loading a big policy ------------------------------------------------------------

def big_policy(size: int, broken: bool = False) -> str:
    parts = [_without_table(BASE)]
    i, total = 0, len(parts[0])
    while total < size:
        formula = f"v{i - 1} + base_points * 2" if i else "base_points"
        part = (f"    v{i}:\n      label: {{zh: 变量{i}, en: var {i}}}\n      formula: {formula}"
                f"{' + @' if broken else ''}\n      source: x\n")
        parts.append(part)
        total, i = total + len(part.encode("utf-8")), i + 1
    return "".join(parts)


@pytest.mark.parametrize("broken", [False, True])
def test_a_big_policy_is_refused_quickly(broken):
    text = big_policy(1_990_000 if FULL else 200_000, broken)
    start = time.process_time()
    [d] = refused(text)
    assert time.process_time() - start < 1.5
    assert d.code in {"too_many_values", "too_many"}


def worst_policy(n: int = 300) -> str:
    """n formulas of 99 characters with 48 operators each: at n = 300 (30,000 characters, the
    MEDPAY_MAX_POLICY_FORMULA_CHARS limit) the most parsing a policy may ask for."""
    body = "".join(f"    v{i}:\n      label: {{zh: 变, en: v}}\n      formula: {'+'.join(['1'] * 49)}\n      source: x\n"
                   for i in range(n))
    return _without_table(BASE) + body


def test_the_worst_policy_within_the_limits_loads_in_well_under_two_seconds():
    n = 300 if FULL else 60
    text = worst_policy(n)
    start = time.process_time()
    policy = load_policy_text(text, "a.yaml")
    assert time.process_time() - start < (1.5 if FULL else 0.6)
    assert sum(1 for v in policy.model.entities["claim"].variables.values() if v.formula) == n + 1


def test_locations_are_found_without_resplitting_the_text():
    """Thousands of diagnostics on a big text: each location costs a lookup, not a pass over the text."""
    lines = [f"k{i}: {{a: 1}}\n" for i in range(50_000)]
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line))
    source = SourceText("big.yaml", "".join(lines), None)
    start = time.process_time()
    found = [source._line_col(starts[i] + 4) for i in range(0, 50_000, 10)]
    assert time.process_time() - start < 0.5
    assert found == [(i, 4) for i in range(0, 50_000, 10)]
    source = load_yaml("".join(f"k{i}: 1\n" for i in range(5000)), "big.yaml")
    start = time.process_time()
    locations = [source.location((f"k{i}",)) for i in range(5000)]
    assert time.process_time() - start < 0.5
    assert [(loc.line, loc.column, loc.excerpt) for loc in locations[:2]] == [(1, 5, "k0: 1"), (2, 5, "k1: 1")]


def test_the_template_still_loads_and_its_copy_in_a_temp_folder(tmp_path):
    (tmp_path / "tables").mkdir()
    shutil.copy(ROOT / "policies" / "tables" / "_template_drg.csv", tmp_path / "tables")
    shutil.copy(TEMPLATE, tmp_path / "_template.yaml")
    assert load_policy_file(tmp_path / "_template.yaml").tables["drg"].file == "tables/_template_drg.csv"


def test_a_huge_value_is_not_echoed_whole_in_a_diagnostic():
    text = _without_table(BASE).replace("  id: attack", "  id: " + "X" * 500_000)
    [d] = refused(text)
    assert d.code == "bad_format" and len(d.en) < 300 and len(d.zh) < 300 and "XXX…" in d.en
