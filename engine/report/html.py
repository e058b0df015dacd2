"""Statements as one self-contained, printable HTML page (清算单网页版): no script, no file fetched.

Chinese first with English beside; each amount in a cell with `data-variable` naming its source,
print CSS for A4 with signature lines at the foot.
"""

from __future__ import annotations

from html import escape

from engine.report.statement import Line, Statement, shown_value

STYLE = """
:root { --ink: #1d2733; --muted: #5b6775; --line: #d5dce4; --band: #eef3f8; --accent: #1f5f99; }
* { box-sizing: border-box; }
body { font-family: "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", system-ui, sans-serif;
       color: var(--ink); margin: 2rem auto; max-width: 60rem; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.45rem; margin: 0; } h1 .en { display: block; font-size: 1rem; color: var(--muted); font-weight: 500; }
.meta { display: grid; grid-template-columns: repeat(2, 1fr); gap: .25rem 2rem; margin: 1rem 0 1.25rem;
        font-size: .92rem; border-top: 2px solid var(--accent); padding-top: .75rem; }
.meta b { font-weight: 600; } .en { color: var(--muted); }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th, td { padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; text-align: left; }
th { font-weight: 600; border-bottom: 2px solid var(--ink); }
tr.section td { background: var(--band); font-weight: 600; border-top: 1px solid var(--ink); }
td.amount { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.sum td.amount { font-weight: 700; } tr.detail td.item { padding-left: 1.6rem; }
tr.net td { border-top: 2px solid var(--ink); font-weight: 700; }
td.clause { white-space: nowrap; color: var(--muted); } .note { font-size: .8rem; color: var(--muted); }
.sign { display: grid; grid-template-columns: repeat(3, 1fr); gap: 2rem; margin-top: 3rem; font-size: .9rem; }
.sign div { border-top: 1px solid var(--ink); padding-top: .3rem; }
.actions { margin: 1rem 0; } .actions button { font: inherit; padding: .3rem .8rem; }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  .actions { display: none; }
  tr { page-break-inside: avoid; } thead { display: table-header-group; }
}
"""


def statement_html(statement: Statement) -> str:
    """The statement as one HTML document."""
    p = statement.policy
    parents = "；".join(f"{escape(k)} {escape(v)}" for k, v in statement.parents.items())
    rows = []
    for section in statement.sections:
        rows.append(f'<tr class="section"><td colspan="4">{escape(section.zh)} <span class="en">'
                    f'{escape(section.en)}</span></td></tr>')
        rows += [_row(line, section.kind == "net" and k == len(section.lines) - 1)
                 for k, line in enumerate(section.lines)]
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(p['name']['zh'])} {escape(statement.title.zh)} {escape(statement.row_id)}</title>
<style>{STYLE}</style></head>
<body>
<header>
<h1>{escape(p['name']['zh'])} {escape(statement.title.zh)}<span class="en">{escape(p['name']['en'])} —
{escape(statement.title.en)}</span></h1>
<div class="meta">
<div><b>{escape(statement.entity_label.zh)}</b> <span class="en">{escape(statement.entity_label.en)}</span>：
<span id="row-id">{escape(statement.row_id)}</span>{f' <span class="en">({parents})</span>' if parents else ''}</div>
<div><b>清算期间</b> <span class="en">period</span>：{escape(statement.period)}</div>
<div><b>政策依据</b> <span class="en">policy</span>：{escape(p['notice'])} {escape(p['title'])}</div>
<div><b>政策版本</b> <span class="en">version</span>：{escape(p['version'])}</div>
</div></header>
<div class="actions"><button type="button" onclick="window.print()">打印 Print</button></div>
<table>
<thead><tr><th>项目 <span class="en">item</span></th><th style="text-align:right">金额/数值 <span class="en">value</span></th>
<th>条款 <span class="en">clause</span></th><th>说明 <span class="en">note</span></th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<div class="sign"><div>经办人 <span class="en">prepared by</span></div><div>复核人 <span class="en">checked by</span></div>
<div>机构确认（签章） <span class="en">institution (signature, seal)</span></div></div>
</body></html>
"""


def _row(line: Line, last_of_net: bool) -> str:
    """One line; the last line of the net section is the statement's bottom line."""
    classes = [c for c, on in (("detail", line.level), ("sum", line.formula), ("net", last_of_net)) if on]
    note = escape(line.formula) or ("清算单按分段计算 <span class='en'>computed by the statement</span>"
                                    if line.derived else "")
    unit = {"yuan": " 元", "points": " 点", "days": " 天", "yuan_per_point": " 元/点"}.get(line.unit, "")
    return (f'<tr class="{" ".join(classes)}"><td class="item">{escape(line.zh)} <span class="en">{escape(line.en)}'
            f'</span></td><td class="amount" data-variable="{escape(line.variable)}">'
            f'{escape(shown_value(line.value, line.unit))}{unit}</td><td class="clause">{escape(line.clause)}</td>'
            f'<td class="note">{note}</td></tr>')
