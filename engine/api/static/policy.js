// City list and policy page (城市列表与政策说明): every rule and parameter by the notice's clauses.
import { bandFigure, bandUsage } from "./bands.js";
import {
  bandsText, bi, cities, cityDetail, clauseHead, clauseOrNone, clear, compareClauses, el, entityLabel, errorList,
  fmtValue, pick, state, t, textPara, unitName,
} from "./util.js";

export const effectiveText = (eff) => (eff.to ? t("eff_range", { from: eff.from, to: eff.to }) : t("eff_from", { from: eff.from }));

export async function renderCityList(root) {
  clear(root).append(el("p", { class: "muted", text: t("loading") }));
  const r = await cities();
  clear(root);
  if (!r.ok) return root.append(errorList(r));
  const list = [...r.data].sort((a, b) => (a.id.startsWith("_") - b.id.startsWith("_")) || a.id.localeCompare(b.id));
  const ul = el("ul", { class: "cards", role: "list" });
  for (const c of list) {
    const href = `#/policy/${encodeURIComponent(c.id)}`;
    ul.append(el("li", { class: "card" },
      el("h2", {}, el("a", { href, class: "card-link", "data-city": c.id }, bi(c.name)),
        c.id.startsWith("_") ? el("span", { class: "tag", text: t("template") }) : null),
      el("dl", { class: "meta" },
        el("dt", { text: t("notice") }), el("dd", { lang: "zh-CN", text: c.notice }),
        el("dt", { text: t("issuer") }), el("dd", { lang: "zh-CN", text: c.issuer }),
        el("dt", { text: t("effective") }), el("dd", { text: effectiveText(c.versions[c.versions.length - 1].effective) }),
        el("dt", { text: t("versions") }),
        el("dd", {}, el("ul", { class: "plain" }, ...c.versions.map((v) => el("li", {},
          el("a", { href: `${href}/${encodeURIComponent(v.version)}`, text: v.version }),
          c.versions.length > 1 ? el("span", { class: "muted", text: ` · ${effectiveText(v.effective)}` }) : null))))),
    ));
  }
  root.append(ul);
  return root;
}

function valuesCell(p, ratioEdges) {
  const cell = el("td", { class: "values" });
  const many = p.values.length > 1;
  for (const v of p.values) {
    const text = p.kind === "bands" ? bandsText(v.value, p.unit, ratioEdges) : fmtValue(v.value, p.unit, p.kind);
    cell.append(el("div", { class: "value-line" },
      el("span", { class: many ? "date" : "date muted", text: t("from_date", { d: v.from }) }), " ",
      el("strong", { class: "value", text }),
      v.source ? el("span", { class: "clause small", text: v.source }) : null));
  }
  return cell;
}

function nameCell(label, name, extra) {
  return el("th", { scope: "row", class: "name" }, bi(label), el("code", { class: "ident", text: name }), extra || null);
}

// The note and, in the assumed group, the reason: each in the reader's language.
function noteCell(item, showAssumed) {
  return el("td", { class: "note" },
    showAssumed && item.assumed ? textPara(item.assumed, "assumed-text",
      el("span", { class: "tag warn", text: t("assumed") }), " ", t("assumed_why")) : null,
    showAssumed && item.assumed && item.source ? el("p", { class: "muted" }, t("cited_clause"), item.source) : null,
    item.note ? textPara(item.note, "note-text") : null);
}

function table(caption, headers, kind, rows) {
  return el("div", { class: "table-wrap" }, el("table", { class: `policy-table ${kind}` },
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows)));
}

function groupSection(key, heading, lead, items, detail, assumedGroup) {
  const id = `clause-${key}`;
  const section = el("section", { class: `clause-group${assumedGroup ? " assumed-group" : ""}`, id, "aria-labelledby": `${id}-h` });
  section.append(el("h2", { id: `${id}-h` }, heading,
    el("span", { class: "count", text: ` · ${items.length}` })));
  if (lead) section.append(el("p", { class: "lead", text: lead }));
  const params = items.filter((i) => i.type === "parameter");
  const rules = items.filter((i) => i.type === "rule");
  const inputs = items.filter((i) => i.type === "input");
  const tables = items.filter((i) => i.type === "table");
  const clauseCol = (i) => el("td", { class: "src" }, clauseOrNone(i.source));
  if (params.length) {
    section.append(table(t("parameters"), [t("name"), t("value"), t("clause"), t("note")], "params", params.map((p) => {
      const usage = p.kind === "bands" ? bandUsage(p.name, detail.variables) : null;
      const ratio = p.kind === "bands" ? isRatioBands(p, usage) : false;
      const unit = p.unit ? el("span", { class: "unit", text: unitName(p.unit) }) : null;
      return el("tr", { class: p.assumed ? "is-assumed" : "", "data-name": p.name },
        nameCell(p.label, p.name, unit), valuesCell(p, ratio), clauseCol(p), noteCell(p, assumedGroup));
    })));
    for (const p of params.filter((x) => x.kind === "bands")) {
      const usage = bandUsage(p.name, detail.variables);
      const fig = el("section", { class: "bands", "aria-label": `${pick(p.label)} — ${t("bands_h")}`, id: `bands-${p.name}` },
        el("h3", {}, bi(p.label), el("code", { class: "ident", text: p.name })),
        el("p", { class: "muted", text: t("bands_lead") }),
        usage ? el("p", { class: "muted" }, t("used_by"), bi(usage.variable.label), " ",
          el("code", { text: `${usage.variable.entity}.${usage.variable.name}` })) : null);
      for (const v of p.values) {
        if (p.values.length > 1) fig.append(el("h4", { text: t("from_date", { d: v.from }) }));
        fig.append(bandFigure(p, v.value, usage, isRatioBands(p, usage)));
      }
      section.append(fig);
    }
  }
  if (rules.length) {
    section.append(table(t("rules"), [t("name"), t("formula"), t("clause"), t("note")], "rules", rules.map((v) =>
      el("tr", { class: v.assumed ? "is-assumed" : "", "data-name": `${v.entity}.${v.name}` },
        nameCell(v.label, v.name, el("span", { class: "entity" }, bi(entityLabel(v.entity)))),
        el("td", {}, el("code", { class: "formula", text: v.formula })),
        clauseCol(v), noteCell(v, assumedGroup)))));
  }
  if (inputs.length) {
    section.append(table(t("inputs"), [t("name"), t("unit"), t("clause"), t("note")], "inputs", inputs.map((v) =>
      el("tr", { class: v.assumed ? "is-assumed" : "", "data-name": `${v.entity}.${v.name}` },
        nameCell(v.label, v.name, el("span", { class: "entity" }, bi(entityLabel(v.entity)))),
        el("td", { text: unitName(v.unit) || typeName(v.vtype) }), clauseCol(v), noteCell(v, assumedGroup)))));
  }
  if (tables.length) {
    section.append(table(t("tables"), [t("name"), t("file"), t("clause"), t("note")], "tables", tables.map((x) =>
      el("tr", { class: x.assumed ? "is-assumed" : "" },
        nameCell(x.label, x.name, el("span", { class: "muted small", text: ` ${t("rows", { n: x.rows })} · ${t("key")}: ${x.key.join(", ")}` })),
        el("td", {}, el("code", { text: x.file })), clauseCol(x), noteCell(x, assumedGroup)))));
  }
  return section;
}

const typeName = (type) => ({ bool: t("t_bool"), string: t("t_string"), date: t("t_date") })[type] || type || "";

export function isRatioBands(p, usage) {
  if (usage) return Boolean(usage.base);
  return p.values.every((v) => v.value.edges.every((e) => e <= 1.5));
}

// Items of a policy, grouped: clause head → items; "assumed" and "unsourced" apart.
export function groupItems(detail) {
  const items = [];
  for (const [name, p] of Object.entries(detail.parameters)) items.push({ ...p, name, type: "parameter" });
  for (const [name, x] of Object.entries(detail.tables)) items.push({ ...x, name, type: "table" });
  for (const v of detail.variables) items.push({ ...v, vtype: v.type, type: v.input ? "input" : "rule" });
  const groups = new Map();
  for (const item of items) {
    const key = item.assumed ? "assumed" : item.source ? clauseHead(item.source) : "unsourced";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(item);
  }
  const clauses = [...groups.keys()].filter((k) => k !== "assumed" && k !== "unsourced").sort(compareClauses);
  return { groups, order: [...clauses, ...["assumed", "unsourced"].filter((k) => groups.has(k))] };
}

export async function renderPolicy(root, city, version) {
  clear(root).append(el("p", { class: "muted", text: t("loading") }));
  const [list, r] = await Promise.all([cities(), cityDetail(city, version)]);
  clear(root);
  if (!r.ok) return root.append(errorList(r));
  const d = r.data, meta = d.policy;
  const summary = list.ok ? list.data.find((c) => c.id === city) : null;
  const head = el("header", { class: "policy-head" },
    el("h1", { id: "policy-h" }, bi(meta.name)),
    el("p", { class: "policy-title", lang: "zh-CN", text: meta.title }));
  const dl = el("dl", { class: "meta wide" },
    el("dt", { text: t("notice") }), el("dd", { lang: "zh-CN", text: meta.notice }),
    el("dt", { text: t("issuer") }), el("dd", { lang: "zh-CN", text: meta.issuer }),
    el("dt", { text: t("issued") }), el("dd", { text: meta.issued || "—" }),
    el("dt", { text: t("effective") }), el("dd", { text: effectiveText(meta.effective) }));
  if (summary && summary.versions.length > 1) {
    const select = el("select", { id: "policy-version" }, ...summary.versions.map((v) =>
      el("option", { value: v.version, selected: v.version === meta.version, text: `${v.version} (${effectiveText(v.effective)})` })));
    select.addEventListener("change", () => { location.hash = `#/policy/${encodeURIComponent(city)}/${encodeURIComponent(select.value)}`; });
    dl.append(el("dt", {}, el("label", { for: "policy-version", text: t("version") })), el("dd", {}, select));
  } else {
    dl.append(el("dt", { text: t("version") }), el("dd", { text: meta.version }));
  }
  head.append(dl);
  const nParams = Object.keys(d.parameters).length;
  const nRules = d.variables.filter((v) => !v.input).length;
  const nInputs = d.variables.filter((v) => v.input).length;
  head.append(el("p", { class: "counts" },
    el("span", { text: t("n_params", { n: nParams }) }), el("span", { text: t("n_rules", { n: nRules }) }),
    el("span", { text: t("n_inputs", { n: nInputs }) }),
    d.assumed.length ? el("a", { href: "#clause-assumed", class: "warn-link", "data-anchor": "clause-assumed", text: t("n_assumed", { n: d.assumed.length }) }) : null));
  root.append(head);

  const { groups, order } = groupItems(d);
  const headingOf = (k) => (k === "assumed" ? t("assumed_group") : k === "unsourced" ? t("unsourced_group")
    : [el("span", { class: "clause-word", text: t("clause_word") }), el("span", { class: "clause-no", lang: "zh-CN", text: k })]);
  root.append(el("nav", { class: "toc", "aria-label": t("contents") },
    el("h2", { class: "toc-h", text: t("contents") }),
    el("ul", {}, ...order.map((k) => el("li", { class: k === "assumed" ? "toc-assumed" : "" },
      el("a", { href: `#clause-${k}`, "data-anchor": `clause-${k}` }, k === "assumed" || k === "unsourced" ? headingOf(k)
        : el("span", { class: "clause-no", lang: "zh-CN", text: k }),
        el("span", { class: "count", text: ` ${groups.get(k).length}` })))))));
  for (const k of order) {
    const lead = k === "assumed" ? t("assumed_lead") : k === "unsourced" ? t("unsourced_lead") : null;
    root.append(groupSection(k, headingOf(k), lead, groups.get(k), d, k === "assumed"));
  }
  if (d.checks && d.checks.length) root.append(checksSection(d.checks));
  if (d.readings && d.readings.length) root.append(readingsSection(d.readings));
  return root;
}

// The policy's checks (政策校验): formula, severity, message and clause of each.
function checksSection(checks) {
  const en = state.lang === "en";
  const severity = (s) => el("span", { class: `tag${s === "error" ? " warn" : ""}`,
    text: s === "error" ? (en ? "error: stops the run" : "错误：终止计算") : (en ? "warning" : "提示") });
  return el("div", { class: "clause-group checks", role: "region", id: "policy-checks", "aria-labelledby": "policy-checks-h" },
    el("h2", { id: "policy-checks-h", text: en ? "Policy checks" : "政策校验" }),
    el("p", { class: "muted", text: en ? "Each must hold on every row of its entity."
      : "每项校验须对该实体的每一行成立。" }),
    table(en ? "Checks" : "校验", [t("name"), t("formula"), en ? "severity" : "级别", t("clause")], "checks",
      checks.map((c) => el("tr", { class: c.assumed ? "is-assumed" : "", "data-name": `${c.entity}.${c.name}` },
        nameCell(c.message, c.name, el("span", { class: "entity" }, bi(entityLabel(c.entity)))),
        el("td", {}, el("code", { class: "formula", text: c.formula })),
        el("td", {}, severity(c.severity)),
        el("td", { class: "src" }, c.source ? clauseOrNone(c.source)
          : c.assumed ? textPara(c.assumed, "assumed-text", `${en ? "assumed" : "假设"}: `) : clauseOrNone(null))))));
}

// The policy's readings of clauses the notice leaves unsaid (条文理解), open ones first.
function readingsSection(readings) {
  const ordered = [...readings].sort((a, b) => (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1));
  return el("div", { class: "clause-group readings", role: "region", id: "policy-readings", "aria-labelledby": "policy-readings-h" },
    el("h2", { id: "policy-readings-h", text: t("readings_h") }),
    el("p", { class: "muted", text: t("readings_lead") }),
    table(t("readings_h"), [t("clause"), t("reading_status"), t("note"), t("affects")], "readings",
      ordered.map((r) => el("tr", { class: r.status === "open" ? "is-open" : "", "data-clause": r.clause },
        el("td", { class: "src" }, clauseOrNone(r.clause)),
        el("td", {}, el("span", { class: `tag${r.status === "open" ? " warn" : ""}`,
          text: t(r.status === "open" ? "reading_open" : "reading_settled") })),
        el("td", { class: "note" }, textPara(r.text, "note-text")),
        el("td", {}, ...r.affects.map((a) => el("code", { class: "ident", text: a })))))));
}
