"""The policy officer's workspace in a real headless Chromium: the draft editor (open the served policy,
problems marked as you type, try, compare, publish with the token) and the impact of a draft over a
city-year (sortable table, chart, .xlsx). Screenshots go to tests/artifacts/ (docs/editor.png and
docs/impact.png are copies of editor.png and impact.png)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from decimal import Decimal

import openpyxl
import pytest
from fastapi.testclient import TestClient
from test_web import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DEMO,
    OVERSPEND,
    ROOT,
    _free_port,
    _missing_browser,
    expect,
    goto,
    shot,
    sync_playwright,
)

from engine.api.app import create_app
from engine.batch.synth import synthesize
from engine.compile.build import load_policy_file

TOKEN = "workspace-test-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Uvicorn over a copy of the policies, with a Hangzhou city-year as MEDPAY_IMPACT_DATA and an admin token."""
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    import uvicorn

    tmp = tmp_path_factory.mktemp("workspace")
    folder = tmp / "policies"
    shutil.copytree(ROOT / "policies", folder, ignore=shutil.ignore_patterns(".published"))
    data = tmp / "data"
    synthesize(load_policy_file(folder / "hangzhou.yaml"), 600, data, seed=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDPAY_IMPACT_DATA", str(data))
        mp.setenv("MEDPAY_ADMIN_TOKEN", TOKEN)
        app = create_app(folder, watch=False)
        port = _free_port()
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not srv.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("uvicorn did not start")
            time.sleep(0.05)
        yield {"base": f"http://127.0.0.1:{port}/", "folder": folder, "app": app}
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture()
def page(served, request):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and not any(
            s in m.text for s in ("422", "403")) else None)
        pg.base = served["base"]
        yield pg
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
        browser.close()
        assert not errors, f"errors in the page: {errors}"


def set_editor(pg, text: str) -> None:
    pg.evaluate("t => document.querySelector('#view-draft .CodeMirror').CodeMirror.setValue(t)", text)


def type_at(pg, line: int, old: str, new: str) -> None:
    """Replace `old` on a 1-based line by typing, as a person would: select it, then type."""
    pg.evaluate("""([line, old]) => { const cm = document.querySelector('#view-draft .CodeMirror').CodeMirror;
        const ch = cm.getLine(line - 1).indexOf(old); cm.focus();
        cm.setSelection({line: line - 1, ch}, {line: line - 1, ch: ch + old.length}); }""", [line, old])
    pg.keyboard.type(new, delay=20)


def natural(text: str) -> list:
    """H2 before H10."""
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", text)]


def line_of(text: str, needle: str, after: str = "") -> int:
    start = text.index(after) if after else 0
    return text[:text.index(needle, start)].count("\n") + 1


def test_draft_open_mark_try_compare_publish(page, served):
    served_text = (ROOT / "policies" / "jingdezhen.yaml").read_text(encoding="utf-8")
    goto(page, "#/draft", "draft")
    page.select_option("#draft-city", "jingdezhen")
    page.click("#draft-open")
    expect(page.locator("#draft-file")).to_have_value("jingdezhen.yaml")
    expect(page.locator("#draft-check")).to_have_text("未发现错误，可以发布。")
    numbers = page.locator("#view-draft .CodeMirror-gutter-wrapper .CodeMirror-linenumber")
    expect(numbers.first).to_have_text("1")
    expect(numbers.nth(1)).to_have_text("2")
    assert page.evaluate("document.querySelector('#view-draft .CodeMirror').CodeMirror.getValue()") == served_text
    assert page.locator("#view-draft .cm-atom, #view-draft .cm-string, #view-draft .cm-comment").count() > 0

    # a risk fund rate of 5 (500%): loads, but is flagged in place as a warning
    rate_line = line_of(served_text, "value: 5%", after="  risk_fund_rate:")
    type_at(page, rate_line, "5%", "5")
    expect(page.locator("#draft-check")).to_have_text("未发现错误，可以发布；另有 1 条提示，请核对。")
    marker = page.locator("#view-draft .CodeMirror-lint-marker-warning")
    expect(marker).to_have_count(1)
    gutter_line = marker.locator("xpath=ancestor::div[contains(@class,'CodeMirror-gutter-wrapper')]/div"
                                 "[contains(@class,'CodeMirror-linenumber')]")
    expect(gutter_line).to_have_text(str(rate_line))
    expect(page.locator("#draft-diagnostics")).to_contain_text("ratio_out_of_range")
    # an unknown name: an error at its line, publishing is off
    name_line = line_of(served_text, "city_revenue_growth)")
    type_at(page, name_line, "city_revenue_growth)", "city_revenue_growt)")
    expect(page.locator("#view-draft .CodeMirror-lint-marker-error")).to_have_count(1)
    expect(page.locator("#draft-check")).to_have_text("1 个错误，1 条提示：修正错误后才能发布。")
    page.locator("#draft-diagnostics .warnings-list button.link").click()  # goes to the warning's line
    expect(page.locator("#view-draft .CodeMirror-lint-marker-warning")).to_have_count(1)
    page.locator("#draft-diagnostics ol.diagnostics button.link").first.click()
    expect(page.locator("#draft-publish")).to_be_disabled()
    expect(page.locator("#draft-diagnostics")).to_contain_text(f"第 {name_line} 行")
    shot(page, "editor")

    # fixed, and the rate made 8%: tried on the overspend demo beside the served version
    draft = served_text.replace("value: 5%", "value: 8%", 1)
    assert draft.index("value: 8%") > draft.index("  risk_fund_rate:")
    set_editor(page, draft)
    expect(page.locator("#draft-check")).to_have_text("未发现错误，可以发布。")
    expect(page.locator("#draft-publish")).to_be_enabled()
    page.select_option("#draft-demo", OVERSPEND)
    expect(page.locator("#draft-json")).not_to_have_value("")
    page.click("#draft-try")
    expect(page.locator("#draft-result")).to_contain_text("草案改动：risk_fund_rate")
    demo = json.loads((DEMO / f"{OVERSPEND}.json").read_text(encoding="utf-8"))
    row = page.locator("table.draft-diff tr[data-key='community.C1.risk_fund'] td")
    cells = row.all_text_contents()
    served_fund, draft_fund = (Decimal(c.replace(",", "")) for c in cells[3:5])
    assert draft_fund == served_fund * 8 / 5  # the risk fund is the package × the rate
    assert Decimal(cells[5].replace(",", "")) == draft_fund - served_fund
    assert demo["entities"]["community"][0]["id"] == "C1"

    # publish: a wrong token is refused (403), the right one serves the draft
    page.fill("#draft-token", "wrong")
    page.click("#draft-publish")
    expect(page.locator("#draft-publish-result")).to_contain_text("MEDPAY_ADMIN_TOKEN")
    page.fill("#draft-token", TOKEN)
    page.check("#draft-replace")
    page.click("#draft-publish")
    expect(page.locator("#draft-publish-status")).to_have_text("已发布：jingdezhen.yaml（2024-07-09）")
    client = TestClient(served["app"], base_url="http://localhost")
    rate = client.get("/v1/cities/jingdezhen").json()["parameters"]["risk_fund_rate"]["values"][0]["value"]
    assert rate == pytest.approx(0.08)


def test_impact_table_chart_and_spreadsheet(page, served):
    served_text = (served["folder"] / "hangzhou.yaml").read_text(encoding="utf-8")
    start = served_text.index("  withhold_rate:")
    at = served_text.index("value: 5%", start)
    draft = served_text[:at] + "value: 10%" + served_text[at + len("value: 5%"):]
    client = TestClient(served["app"], base_url="http://localhost")
    by_override = client.post("/v1/cities/hangzhou/impact", json={"parameters": {"withhold_rate": "10%"}}).json()

    goto(page, "#/draft", "draft")
    page.select_option("#draft-city", "hangzhou")
    page.click("#draft-open")
    expect(page.locator("#draft-check")).to_have_text("未发现错误，可以发布。")
    set_editor(page, draft)
    goto(page, "#/impact", "impact")
    page.select_option("#impact-city", "hangzhou")
    page.click("#impact-run")
    table = page.locator("#impact-table tbody tr")
    expect(table).to_have_count(len(by_override["rows"]))
    # the draft in the editor and the same change as an override give the same money, row by row
    top = by_override["rows"][0]
    first = table.first
    expect(first).to_have_attribute("data-row", f"{top['institution']}|{top['fund']}")
    diff = Decimal(first.locator("td.diff").text_content().replace(",", "").replace("+", ""))
    before, after = (Decimal(first.locator("td.num").nth(i).text_content().replace(",", "")) for i in (0, 1))
    assert diff == after - before == Decimal(str(top["difference"]))
    expect(page.locator("#impact-result")).to_contain_text("草案改动：withhold_rate")
    expect(page.locator("figure.chart rect.bar")).to_have_count(min(15, sum(1 for r in by_override["rows"]
                                                                            if r["difference"])))
    expect(first.locator("td.moved")).to_contain_text("account.withheld")
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.evaluate("window.scrollTo(0, document.getElementById('impact-result-h').getBoundingClientRect().top"
                  " + window.scrollY - 80)")
    shot(page, "impact")
    page.set_viewport_size({"width": 1280, "height": 900})

    # sort by institution, then back by difference
    page.click("button.sort[data-sort='institution']")
    names = page.locator("#impact-table tbody tr th").all_text_contents()
    assert names == sorted(names, key=natural, reverse=True)
    page.click("button.sort[data-sort='institution']")
    assert page.locator("#impact-table tbody tr th").first.text_content() == min(names, key=natural)

    with page.expect_download() as info:
        page.click("#impact-xlsx")
    assert info.value.suggested_filename.startswith("impact-hangzhou-")
    path = served["folder"].parent / info.value.suggested_filename
    info.value.save_as(path)
    sheet = openpyxl.load_workbook(path).active
    rows = {(r[0], r[1]): r for r in sheet.iter_rows(min_row=3, values_only=True)}
    assert Decimal(str(rows[(top["institution"], top["fund"])][4])) == Decimal(str(top["difference"]))


def test_two_cities_compared_on_one_situation(page):
    """A situation written for one city, compared with another city: the fields only the first city reads
    are left out for the second (and listed), and both sides are evaluated (no 422)."""
    goto(page, "#/compare", "compare")
    page.select_option("#cmp-a-city", "jingdezhen")
    page.select_option("#cmp-b-city", "zibo")
    page.select_option("#cmp-demo", OVERSPEND)
    expect(page.locator("#cmp-json")).to_have_value(re.compile("actual_spending"))
    page.click("#cmp-run")
    expect(page.locator("#cmp-result .left-out")).to_contain_text("community.actual_spending")
    expect(page.locator("#cmp-result .errors")).to_have_count(0)
    expect(page.locator("#cmp-result table.compare-table[data-entity='community']")).to_have_count(1)


def test_csv_import_counts_rows(page):
    goto(page, "#/try", "try")
    page.select_option("#try-city", "tianjin")
    page.locator("#try-csv > summary").click()
    csv = "id,level,kind\nH1,3,01\nH2,2,02\n"
    page.set_input_files("#try-csv-files", files=[{"name": "institution.csv", "mimeType": "text/csv",
                                                    "buffer": csv.encode("utf-8")}])
    expect(page.locator("#try-csv-status")).to_have_text("已加入 2 行：institution")
