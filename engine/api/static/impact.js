// Impact of a draft (草案影响测算): the server's city-year settled under the served policy and under the
// draft in the editor (or parameter overrides); per institution and fund: before, after, difference and the
// variables that moved, as a sortable table, a chart, and an .xlsx.
import { draftText } from "./draft.js";
import { fillCitySelect } from "./try.js";
import { addStrings, api, cities, clear, el, errorList, fmtMoney, svg, t } from "./util.js";

addStrings({
  nav_impact: ["影响测算", "Impact"],
  impact_h: ["草案影响测算", "Impact of a draft"],
  impact_lead: ["按现行政策和草案（或改动的参数）分别结算服务器上的全市年度数据，逐个医疗机构和基金列出结算金额的变化和变动的变量。",
    "The server's city-year settled under the served policy and under the draft (or changed parameters): for each institution and fund, the amount before and after, the difference, and which variables moved."],
  impact_source: ["草案来源", "Draft"],
  impact_use_editor: ["使用“草案”页中的草案", "the draft in the Draft view"],
  impact_use_params: ["只改参数（每行 名称: 取值）", "parameters only (one per line, name: value)"],
  impact_params: ["参数改动", "Changed parameters"],
  impact_params_help: ["例如 risk_fund_rate: 4%", "e.g. risk_fund_rate: 4%"],
  impact_variable: ["比较的金额（可选）", "Amount compared (optional)"],
  impact_run: ["测算", "Compute the impact"],
  impact_running: ["结算中（两次）…", "Settling (twice)…"],
  impact_xlsx: ["下载 Excel", "Download .xlsx"],
  impact_summary: ["{policy} {period}：{entity}.{variable}，现行 {served} → 草案 {draft}",
    "{policy} {period}: {entity}.{variable}, served {served} → draft {draft}"],
  impact_totals: ["合计：现行 {before}，草案 {after}，差额 {diff}；{moved}/{rows} 行有变动",
    "Total: served {before}, draft {after}, difference {diff}; {moved} of {rows} rows moved"],
  impact_chart: ["差额最大的机构-基金", "Largest differences by institution and fund"],
  impact_changed: ["草案改动：{names}", "Changed in the draft: {names}"],
  impact_no_draft: ["“草案”页中还没有草案：请先打开或粘贴一个草案，或改用参数", "There is no draft in the Draft view yet: open or paste one, or change parameters instead"],
  impact_bad_line: ["第 {n} 行应写作“名称: 取值”", "Line {n} should read \"name: value\""],
  col_institution: ["医疗机构", "Institution"],
  col_fund: ["基金", "Fund"],
  col_before: ["现行", "Served"],
  col_after: ["草案", "Draft"],
  col_diff: ["差额", "Difference"],
  col_moved: ["变动的变量", "Variables that moved"],
});

const $ = (id) => document.getElementById(id);
let last = null, sortKey = "difference", sortDown = true;
const COLUMNS = [["institution", "col_institution"], ["fund", "col_fund"], ["before", "col_before"],
  ["after", "col_after"], ["difference", "col_diff"], ["moved", "col_moved"]];

// "name: value" lines → {name: value}; values read as JSON when they can be, else kept as text (5% stays "5%").
export function parseOverrides(text) {
  const out = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([A-Za-z_][A-Za-z0-9_]*)\s*[:=]\s*(.+)$/);
    if (!m) throw new Error(t("impact_bad_line", { n: i + 1 }));
    let value = m[2].trim();
    try { value = JSON.parse(value); } catch { /* a text such as 5% */ }
    out[m[1]] = value;
  }
  return out;
}

function body() {
  const useEditor = $("impact-use-editor").checked;
  const out = { parameters: parseOverrides($("impact-params").value) };
  if (useEditor) {
    const text = draftText();
    if (!text.trim()) throw new Error(t("impact_no_draft"));
    out.text = text;
    out.file = $("draft-file").value || "draft.yaml";
  }
  const variable = $("impact-variable").value.trim();
  if (variable) out.variable = variable;
  return out;
}

function sortedRows() {
  const rows = [...last.rows];
  const key = (r) => (sortKey === "moved" ? r.moved.length : sortKey === "difference" ? Math.abs(r.difference) : r[sortKey]);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
    return sortDown ? -c : c;
  });
  return rows;
}

function table() {
  const head = el("tr", {}, ...COLUMNS.map(([key, label]) => {
    const sorted = key === sortKey;
    return el("th", { scope: "col", class: ["before", "after", "difference"].includes(key) ? "num" : "",
      "aria-sort": sorted ? (sortDown ? "descending" : "ascending") : "none" },
    el("button", { type: "button", class: "sort", "data-sort": key, onclick: () => {
      sortDown = sortKey === key ? !sortDown : true;
      sortKey = key;
      render();
    } }, t(label), sorted ? (sortDown ? " ▼" : " ▲") : ""));
  }));
  const rows = sortedRows().map((r) => el("tr", { "data-row": `${r.institution}|${r.fund}`,
    class: r.difference > 0 ? "up" : r.difference < 0 ? "down" : "" },
  el("th", { scope: "row" }, el("code", { text: r.institution })), el("td", { text: r.fund }),
  el("td", { class: "num", text: fmtMoney(r.before) }), el("td", { class: "num", text: fmtMoney(r.after) }),
  el("td", { class: "num diff", text: (r.difference > 0 ? "+" : "") + fmtMoney(r.difference) }),
  el("td", { class: "moved", title: r.moved.join(", ") }, ...r.moved.slice(0, 3).map((m) => el("code", { class: "ident", text: m })),
    r.moved.length > 3 ? el("span", { class: "muted", text: `+${r.moved.length - 3}` }) : null)));
  return el("div", { class: "table-wrap" }, el("table", { class: "impact-table", id: "impact-table" },
    el("thead", {}, head), el("tbody", {}, ...rows)));
}

// Horizontal bars of the largest differences, right of the axis for more money, left for less.
function chart() {
  const top = [...last.rows].filter((r) => r.difference).sort((a, b) => Math.abs(b.difference) - Math.abs(a.difference)).slice(0, 15);
  if (!top.length) return null;
  const most = Math.max(...top.map((r) => Math.abs(r.difference)));
  const W = 640, label = 150, bar = 18, gap = 6, mid = label + (W - label) / 2, half = (W - label) / 2 - 70;
  const H = top.length * (bar + gap) + 10;
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", class: "impact-chart", "aria-label": t("impact_chart") });
  g.append(svg("line", { x1: mid, x2: mid, y1: 0, y2: H, class: "axis" }));
  top.forEach((r, i) => {
    const y = 5 + i * (bar + gap), w = Math.max(1, (Math.abs(r.difference) / most) * half);
    const x = r.difference < 0 ? mid - w : mid;
    g.append(svg("text", { x: 4, y: y + bar - 5, class: "bar-label" }, `${r.institution} · ${r.fund}`),
      svg("rect", { x, y, width: w, height: bar, class: r.difference < 0 ? "bar down" : "bar up" }),
      svg("text", { x: r.difference < 0 ? x - 4 : x + w + 4, y: y + bar - 5, "text-anchor": r.difference < 0 ? "end" : "start",
        class: "bar-value" }, (r.difference > 0 ? "+" : "") + fmtMoney(r.difference)));
  });
  return el("figure", { class: "chart" }, el("figcaption", { text: t("impact_chart") }), g);
}

function render() {
  const out = clear($("impact-result"));
  if (!last) return;
  const tot = last.totals;
  out.append(el("h2", { id: "impact-result-h", text: t("impact_summary", { policy: last.policy, period: last.period,
    entity: last.entity, variable: last.variable, served: last.served_version, draft: last.draft_version }) }),
  last.changed.length ? el("p", { class: "changed", text: t("impact_changed", { names: last.changed.join(", ") }) }) : null,
  el("p", { class: "totals", id: "impact-totals", text: t("impact_totals", { before: fmtMoney(tot.before), after: fmtMoney(tot.after),
    diff: (tot.difference > 0 ? "+" : "") + fmtMoney(tot.difference), moved: tot.rows_moved, rows: last.rows.length }) }),
  el("div", { class: "actions" }, el("button", { type: "button", id: "impact-xlsx", onclick: download }, t("impact_xlsx"))),
  chart(), table());
}

async function download() {
  const city = $("impact-city").value;
  const response = await fetch(`/v1/cities/${encodeURIComponent(city)}/impact?format=xlsx`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(last.request) });
  if (!response.ok) return;
  const url = URL.createObjectURL(await response.blob());
  const a = el("a", { href: url, download: `impact-${city}-${last.period}.xlsx` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function run(e) {
  e.preventDefault();
  const status = $("impact-status");
  let request;
  try {
    request = body();
  } catch (err) {
    status.textContent = err.message;
    return;
  }
  status.textContent = t("impact_running");
  $("impact-run").disabled = true;
  const r = await api(`/v1/cities/${encodeURIComponent($("impact-city").value)}/impact`, { method: "POST", body: request });
  $("impact-run").disabled = false;
  if (!r.ok) {
    last = null;
    status.textContent = t("request_failed", { status: r.status });
    clear($("impact-result")).append(errorList(r));
    return;
  }
  status.textContent = t("done");
  last = { ...r.data, request };
  render();
}

export function redrawImpact() { render(); }

export async function refreshImpactLists() {
  const c = await cities();
  if (c.ok) fillCitySelect($("impact-city"), c.data.filter((x) => !x.id.startsWith("_")));
}

export function setupImpact() {
  $("impact-form").addEventListener("submit", run);
}
