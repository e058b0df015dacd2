"""Statements as Excel workbooks (openpyxl): one statement per sheet, and the fund summary (清算单 .xlsx).

Every value is a cell value (a number, not text), formatted by its unit; column G names the
variable it comes from, so that staff (and tests) can trace a cell back to the run.
"""

from __future__ import annotations

from io import BytesIO

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.worksheet.worksheet import Worksheet

from engine.report.results import Results
from engine.report.statement import Line, Statement, build, money_total, rows_of

HEADER = ("项目", "Item", "金额/数值 Value", "单位 Unit", "条款 Clause", "说明 Note", "变量 Variable")
WIDTHS = (44, 52, 20, 12, 18, 40, 34)
FORMATS = {"yuan": "#,##0.00", "ratio": "0.00%", "count": "#,##0", "points": "#,##0.####",
           "yuan_per_point": "0.000000"}
BOLD = Font(bold=True)
FORMULA_START = ("=", "+", "-", "@")
SECTION_FILL = PatternFill("solid", fgColor="E8EEF4")
THIN = Border(bottom=Side(style="thin", color="BBBBBB"))
UNITS_ZH = {"yuan": "元", "ratio": "比例", "count": "个/人次", "points": "点", "days": "天",
            "yuan_per_point": "元/点", "yuan_per_person": "元/人"}


def cell_value(line: Line):
    """The value as a cell holds it: numbers stay numbers, yes/no in both languages, nothing as empty."""
    if isinstance(line.value, bool):
        return "是 yes" if line.value else "否 no"
    return line.value


def as_text(sheet: Worksheet) -> None:
    """Text that looks like a formula (=, +, -, @ first) stays text: a row id or an input from the data
    is never run by the spreadsheet (formula injection)."""
    for row in sheet.iter_rows():
        for cell in row:
            if isinstance(cell.value, str) and cell.value[:1] in FORMULA_START:
                cell.data_type = "s"
                cell.quotePrefix = True


def write_statement(sheet: Worksheet, statement: Statement) -> None:
    """One statement on one sheet: heading, then each section and its lines."""
    policy = statement.policy
    sheet.append([f"{policy['name']['zh']} {statement.title.zh}", statement.title.en])
    sheet.append([f"{policy['notice']} {policy['title']}", f"{policy['name']['en']}, policy version {policy['version']}"])
    who = f"{statement.entity_label.zh}：{statement.row_id}"
    sheet.append([who, f"{statement.entity_label.en}: {statement.row_id}", None, None, None,
                  "；".join(f"{k} {v}" for k, v in statement.parents.items())])
    sheet.append([f"清算期间：{statement.period}", f"period: {statement.period}"])
    for row in range(1, 3):
        sheet.cell(row, 1).font = sheet.cell(row, 2).font = Font(bold=True, size=13 if row == 1 else 11)
    sheet.append([])
    sheet.append(list(HEADER))
    for c in range(1, len(HEADER) + 1):
        sheet.cell(sheet.max_row, c).font = BOLD
    for section in statement.sections:
        sheet.append([section.zh, section.en])
        for c in range(1, len(HEADER) + 1):
            sheet.cell(sheet.max_row, c).fill = SECTION_FILL
            sheet.cell(sheet.max_row, c).font = BOLD
        for line in section.lines:
            _line_row(sheet, line)
    for i, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[chr(64 + i)].width = width
    sheet.freeze_panes = "A7"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth = 1
    sheet.print_title_rows = "6:6"
    as_text(sheet)


def _line_row(sheet: Worksheet, line: Line) -> None:
    note = line.formula or ("由清算单按分段计算 computed by the statement" if line.derived else "")
    indent = "    " if line.level else ""
    sheet.append([indent + line.zh, indent + line.en, cell_value(line), UNITS_ZH.get(line.unit, line.unit),
                  line.clause, note, line.variable])
    row = sheet.max_row
    value = sheet.cell(row, 3)
    value.number_format = FORMATS.get(line.unit, "General")
    value.alignment = Alignment(horizontal="right")
    if line.formula:
        value.font = BOLD
    for c in range(1, len(HEADER) + 1):
        sheet.cell(row, c).border = THIN


def statement_workbook(statement: Statement) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = _sheet_title(statement.entity, statement.row_id)
    write_statement(sheet, statement)
    return _saved(book)


def summary_workbook(results: Results) -> bytes:
    """The whole fund: each fund's statement (budget build-up, reserve, point value …), then per
    entity with statements a table of every row's amounts with exact totals."""
    book = Workbook()
    book.remove(book.active)
    statements = results.policy.statements
    for fund_id in rows_of(results, "fund") if "fund" in statements else []:
        write_statement(book.create_sheet(_sheet_title("fund", fund_id)), build(results, "fund", fund_id))
    for entity in statements:
        if entity != "fund" and rows_of(results, entity):
            _totals_sheet(book.create_sheet(_sheet_title(entity, "totals")), results, entity)
    if not book.sheetnames:
        book.create_sheet("empty")
    return _saved(book)


def _totals_sheet(sheet: Worksheet, results: Results, entity: str) -> None:
    """One row per row of the entity, one column per amount of its statement; last row the totals."""
    spec = results.policy.statements[entity]
    lines = [li for s in spec.sections for li in s.lines if li.variable and li.unit == "yuan"]
    label = results.policy.model.entities[entity].label
    sheet.append([f"{label.zh}汇总", f"{label.en}: totals", f"{results.policy.meta.name.zh} {results.period}"])
    sheet.cell(1, 1).font = sheet.cell(1, 2).font = Font(bold=True, size=13)
    sheet.append(["id", *[li.label.zh for li in lines]])
    sheet.append(["", *[li.label.en for li in lines]])
    sheet.append(["variable", *[li.variable for li in lines]])
    for c in range(1, len(lines) + 2):
        sheet.cell(2, c).font = BOLD
    ids = rows_of(results, entity)
    for row_id in ids:
        sheet.append([row_id, *[results.value(entity, row_id, li.variable) for li in lines]])
    sheet.append(["合计 total", *[money_total([results.value(entity, i, li.variable) for i in ids]) for li in lines]])
    for c in range(1, len(lines) + 2):
        sheet.cell(sheet.max_row, c).font = BOLD
    for row in sheet.iter_rows(min_row=5, min_col=2):
        for cell in row:
            cell.number_format = FORMATS["yuan"]
    sheet.column_dimensions["A"].width = 18
    for c in range(2, len(lines) + 2):
        sheet.column_dimensions[sheet.cell(1, c).column_letter].width = 20
    sheet.freeze_panes = "B5"
    as_text(sheet)


def _sheet_title(entity: str, row_id: str) -> str:
    """A sheet name Excel accepts: at most 31 characters, none of []:*?/\\."""
    text = f"{entity} {row_id}"
    for ch in "[]:*?/\\":
        text = text.replace(ch, "_")
    return text[:31]


def _saved(book: Workbook) -> bytes:
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()
