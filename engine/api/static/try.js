// Try it (试算): a demo or a pasted/uploaded situation, evaluated; results as tables per entity.
import { entityFromFileName, rowsFromCSV } from "./csv.js";
import { openExplain } from "./explain.js";
import { statementsBox } from "./statement.js";
import {
  api, bi, bilingualMessage, cities, cityDetail, clear, demos, el, entityLabel, errorList, fmtValue, pick,
  readFile, state, t, unitName,
} from "./util.js";

const $ = (id) => document.getElementById(id);
let last = null; // {result, detail, city} — kept so that a language switch can redraw

export function fillCitySelect(select, list, chosen) {
  const keep = chosen || select.value;
  clear(select);
  for (const c of list) select.append(el("option", { value: c.id, text: `${pick(c.name)} (${c.id})` }));
  if (keep && list.some((c) => c.id === keep)) select.value = keep;
}

export function fillDemoSelect(select, list, chosen) {
  const keep = chosen ?? select.value;
  clear(select).append(el("option", { value: "", text: t("demo_none") }));
  for (const d of list) select.append(el("option", { value: d.name, "data-city": d.city, text: `${d.name} — ${d.title}` }));
  if (keep && list.some((d) => d.name === keep)) select.value = keep;
}

async function entityNames(city) {
  const r = await cityDetail(city);
  if (!r.ok) return [];
  return [...new Set(r.data.variables.map((v) => v.entity))];
}

async function typesOf(city, entity) {
  const r = await cityDetail(city);
  const types = {};
  if (r.ok) for (const v of r.data.variables) if (v.entity === entity) types[v.name] = v.type;
  return types;
}

async function fillEntitySelect() {
  const select = $("try-csv-entity"), keep = select.value;
  const names = await entityNames($("try-city").value);
  clear(select);
  for (const n of names) select.append(el("option", { value: n }, `${pick(entityLabel(n))} (${n})`));
  if (names.includes(keep)) select.value = keep;
}

function currentSituation() {
  const text = $("try-json").value.trim();
  if (!text) return { period: $("try-period").value.trim() || undefined, entities: {} };
  return JSON.parse(text);
}

async function addCSV(entity, text) {
  const status = $("try-csv-status");
  const rows = rowsFromCSV(text, await typesOf($("try-city").value, entity));
  if (!rows.length) { status.textContent = t("csv_empty"); return 0; }
  let situation;
  try {
    situation = currentSituation();
  } catch (err) {
    status.textContent = t("bad_json", { msg: err.message });
    return 0;
  }
  situation.entities = situation.entities || {};
  situation.entities[entity] = rows;
  const period = $("try-period").value.trim();
  if (period) situation.period = period;
  $("try-json").value = JSON.stringify(situation, null, 2);
  status.textContent = t("csv_added", { n: rows.length, entity });
  return rows.length; // the rows added, for the status line of several files
}

export async function loadDemo(name) {
  if (!name) return;
  const r = await api(`/v1/demo/${encodeURIComponent(name)}`);
  if (!r.ok) { clear($("try-result")).append(errorList(r)); return; }
  $("try-json").value = JSON.stringify(r.data, null, 2);
  if (typeof r.data.period === "string") $("try-period").value = r.data.period;
  const d = (await demos()).data.find((x) => x.name === name);
  if (d) { $("try-city").value = d.city; await fillEntitySelect(); }
}

// The results: one table per entity; each value a button that opens its explanation.
export function resultTables(result, detail, onValue) {
  const wrap = el("div", { class: "entity-results" });
  for (const [entity, rows] of Object.entries(result.entities)) {
    if (!rows.length) continue;
    const names = [];
    for (const row of rows) for (const k of Object.keys(row)) if (k !== "id" && !names.includes(k)) names.push(k);
    const vars = Object.fromEntries(detail.variables.filter((v) => v.entity === entity).map((v) => [v.name, v]));
    const caption = el("caption", {}, bi(entityLabel(entity)), el("code", { class: "ident", text: entity }),
      el("span", { class: "muted", text: ` · ${t("rows", { n: rows.length })}` }));
    const cell = (row, name) => {
      const v = vars[name], value = row[name];
      const text = fmtValue(value, v && v.unit);
      const td = el("td", { class: typeof value === "number" ? "num val-cell" : "val-cell" });
      if (onValue) {
        td.append(el("button", { type: "button", class: "val", "data-key": `${entity}.${row.id}.${name}`,
          "data-raw": JSON.stringify(value), "aria-haspopup": "dialog",
          "aria-label": `${pick(v ? v.label : name)} ${row.id}: ${text} — ${t("explain_h")}`,
          onclick: (e) => onValue(entity, row.id, name, e.currentTarget) }, text));
      } else td.append(text);
      return td;
    };
    let table;
    if (rows.length <= 6) { // few rows: one line per variable, one column per row
      table = el("table", { class: "results transposed", "data-entity": entity }, caption,
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: t("item") }),
          el("th", { scope: "col", text: t("unit") }),
          ...rows.map((r) => el("th", { scope: "col", class: "num" }, el("code", { text: r.id }))))),
        el("tbody", {}, ...names.map((n) => el("tr", { "data-name": n },
          el("th", { scope: "row" }, vars[n] ? bi(vars[n].label) : null, el("code", { class: "ident", text: n }),
            vars[n] && vars[n].source ? el("span", { class: "clause small", text: vars[n].source }) : null),
          el("td", { class: "unit", text: vars[n] ? unitNameOf(vars[n]) : "" }),
          ...rows.map((r) => cell(r, n))))));
    } else {
      table = el("table", { class: "results", "data-entity": entity }, caption,
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "id" }),
          ...names.map((n) => el("th", { scope: "col", class: "num" }, vars[n] ? bi(vars[n].label) : null,
            el("code", { class: "ident", text: n }))))),
        el("tbody", {}, ...rows.map((r) => el("tr", {}, el("th", { scope: "row" }, el("code", { text: r.id })),
          ...names.map((n) => cell(r, n))))));
    }
    wrap.append(el("div", { class: "table-wrap" }, table));
  }
  return wrap;
}

const unitNameOf = (v) => (v.unit === "ratio" ? "%" : unitName(v.unit));

export function warningsBox(result, title) {
  if (!result.warnings || !result.warnings.length) return null;
  return el("div", { class: "warnings", role: "note" }, el("h3", { text: title ? `${t("warnings")} · ${title}` : t("warnings") }),
    el("ul", {}, ...result.warnings.map((w) => el("li", {}, el("code", { class: "path", text: w.path }),
      bilingualMessage(w.message_zh || "", w.message), w.check ? checkRows(w, w.rows) : null))));
}

// A failing policy check: its clause and the first failing rows (政策校验未通过的行).
const inLang = (zh, en) => (state.lang === "en" ? en : zh);

function checkRows(f, count) {
  const clause = f.source || `${inLang("假设", "assumed")}: ${f.assumed}`;
  return el("p", { class: "muted check-rows" },
    el("span", { class: "clause", text: clause }), " · ",
    inLang(`${count} 行未通过：`, `${count} row(s) fail: `), el("code", { text: (f.ids || []).join(", ") }));
}

// The answer when an `error` check failed: nothing was computed; each check with its rows.
export function failedChecksBox(r) {
  const detail = (r.data && r.data.detail) || [];
  return el("div", { class: "errors failed-checks", role: "alert" },
    el("h3", { text: inLang("政策校验未通过，未作计算", "A policy check failed; nothing was computed") }),
    el("ul", {}, ...detail.map((f) => el("li", { "data-check": `${f.entity}.${f.check}` },
      el("code", { class: "path", text: `${f.entity}.${f.check}` }),
      bilingualMessage(f.message_zh || "", f.message || ""), checkRows(f, f.count)))));
}

function renderResult() {
  const out = clear($("try-result"));
  if (!last) return;
  const { result, detail } = last;
  const ctx = { city: last.city, situation: last.situation, version: result.policy.version, detail };
  out.append(el("h2", { id: "results-h", text: t("results") }),
    el("p", { class: "policy-used", text: t("result_policy", { city: pick(result.policy.name), notice: result.policy.notice,
      version: result.policy.version, period: result.period }) }),
    el("p", { class: "muted", text: t("click_hint") }),
    warningsBox(result),
    statementsBox(ctx, result),
    resultTables(result, detail, (entity, id, name, button) => openExplain(ctx, entity, id, name, button)));
}

export function redrawTry() { renderResult(); }

export async function setupTry() {
  const form = $("try-form");
  $("try-city").addEventListener("change", fillEntitySelect);
  $("try-demo").addEventListener("change", (e) => loadDemo(e.target.value));
  $("try-upload").addEventListener("change", async (e) => {
    const f = await readFile(e.target);
    if (f) $("try-json").value = f.text;
  });
  $("try-csv-files").addEventListener("change", async (e) => {
    const known = await entityNames($("try-city").value);
    const added = [];
    let total = 0;
    for (const file of e.target.files) {
      const entity = entityFromFileName(file.name, known);
      if (!entity) { $("try-csv-status").textContent = t("csv_unknown_entity", { file: file.name }); return; }
      const n = await addCSV(entity, await file.text());
      if (n) { added.push(entity); total += n; }
    }
    if (added.length) $("try-csv-status").textContent = t("csv_added", { n: total, entity: added.join(", ") });
  });
  $("try-csv-add").addEventListener("click", () => addCSV($("try-csv-entity").value, $("try-csv-text").value));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = $("try-status"), city = $("try-city").value;
    let situation;
    try {
      situation = currentSituation();
    } catch (err) {
      status.textContent = t("bad_json", { msg: err.message });
      $("try-json").setAttribute("aria-invalid", "true");
      $("try-json").focus();
      return;
    }
    $("try-json").removeAttribute("aria-invalid");
    status.textContent = t("evaluating");
    $("try-run").disabled = true;
    const [r, detail] = await Promise.all([
      api(`/v1/cities/${encodeURIComponent(city)}/evaluate`, { method: "POST", body: situation }),
      cityDetail(city)]);
    $("try-run").disabled = false;
    if (!r.ok) {
      last = null;
      status.textContent = t("request_failed", { status: r.status });
      const checkFailed = r.data && r.data.error === "policy_check_failed";
      clear($("try-result")).append(checkFailed ? failedChecksBox(r) : errorList(r));
      return;
    }
    // the version actually used may not be the latest
    const used = await cityDetail(city, r.data.policy.version);
    last = { result: r.data, detail: (used.ok ? used : detail).data, city, situation };
    status.textContent = t("done");
    renderResult();
    $("results-h").setAttribute("tabindex", "-1");
    $("results-h").focus();
  });
}

export async function refreshTryLists(route) {
  const [c, d] = await Promise.all([cities(), demos()]);
  if (c.ok) fillCitySelect($("try-city"), c.data);
  if (d.ok) fillDemoSelect($("try-demo"), d.data);
  if (route && route.demo) {
    $("try-demo").value = route.demo;
    await loadDemo(route.demo);
  }
  await fillEntitySelect();
}
