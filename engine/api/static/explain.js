// The explanation of one computed value (计算过程), asked of POST /v1/cities/{city}/explain for that one
// value: the server computes only what it depends on, at any size. Formula, clause, note and the values
// used — each one that is itself computed (in the same row, in a parent row, or among the child rows an
// aggregation adds up: their count, sum and the largest) opens into its own explanation, asked for when
// it is opened.
import { api, bi, clear, el, entityLabel, errorList, fmtValue, state, t } from "./util.js";

const MAX_DEPTH = 40;
let opener = null;
const say = (zh, en) => (state.lang === "en" ? en : zh);

// "claim.c1.deductible_due" → {entity, id, name}; ids may hold dots or bars ("account.H1|resident.x").
export function parseKey(key) {
  const i = key.indexOf("."), j = key.lastIndexOf(".");
  return { entity: key.slice(0, i), id: key.slice(i + 1, j), name: key.slice(j + 1) };
}

function variableOf(ctx, entity, name) {
  return ctx.detail ? ctx.detail.variables.find((x) => x.entity === entity && x.name === name) : undefined;
}

export function unitOf(ctx, entity, name) {
  const v = variableOf(ctx, entity, name);
  if (v) return v.unit;
  const p = ctx.detail && ctx.detail.parameters[name];
  return p ? p.unit : undefined;
}

// One value's explanation from the server: {ok, node} or {ok: false, response}.
export async function fetchExplanation(ctx, key) {
  const body = { situation: ctx.situation, target: key, depth: 1 };
  if (ctx.version) body.version = ctx.version;
  const r = await api(`/v1/cities/${encodeURIComponent(ctx.city)}/explain`, { method: "POST", body });
  return r.ok ? { ok: true, node: r.data.explanation } : { ok: false, response: r };
}

// A lazily filled <details>: the body is drawn (or fetched) the first time it is opened.
function expandable(head, draw) {
  const details = el("details", { class: "sub" }, el("summary", {}, ...head));
  details.addEventListener("toggle", async () => {
    if (!details.open || details.dataset.drawn) return;
    details.dataset.drawn = "1";
    const loading = el("p", { class: "muted small", text: t("loading") });
    details.append(loading);
    loading.replaceWith(await draw());
  });
  return details;
}

// The explanation of `key`, asked for when its <details> opens.
function fetched(ctx, key, path) {
  return async () => {
    const got = await fetchExplanation(ctx, key);
    return got.ok ? stepBody(ctx, got.node, [...path, key]) : errorList(got.response);
  };
}

function where(item, fromEntity) {
  if (!item.key || item.kind !== "parent") return null;
  const k = parseKey(item.key);
  return k.entity === fromEntity ? null
    : el("span", { class: "tag" }, bi(entityLabel(k.entity)), " ", el("code", { text: k.id }));
}

function inputItem(ctx, node, item, path) {
  const ref = item.key ? parseKey(item.key) : null;
  const param = item.kind === "parameter" ? (ctx.detail && ctx.detail.parameters[item.parameter]) || item : null;
  const variable = ref ? variableOf(ctx, ref.entity, ref.name) : variableOf(ctx, node.entity, item.text);
  const unit = variable ? variable.unit : param ? param.unit : undefined;
  const head = [
    variable || param ? bi((variable || param).label, "in-label") : null,
    el("code", { class: "in-name", text: item.text }),
    el("span", { class: "eq", text: "=" }),
    el("span", { class: "in-value", text: fmtValue(item.value, unit, param && param.kind) }),
    where(item, node.entity),
    param ? el("span", { class: "tag", text: t("param_word") }) : null,
    param && item.source ? el("span", { class: "clause", text: item.source }) : null,
    param && item.assumed ? el("span", { class: "tag warn", title: item.assumed, text: t("assumed") }) : null,
  ];
  if (path.length >= MAX_DEPTH) return el("li", { class: "leaf" }, ...head);
  if (item.explanation && !path.includes(item.key)) {
    return el("li", {}, expandable(head, () => stepBody(ctx, item.explanation, [...path, item.key])));
  }
  if (item.key && !path.includes(item.key) && variable && variable.formula) {
    return el("li", {}, expandable(head, fetched(ctx, item.key, path)));
  }
  if (item.children) {
    return el("li", {}, expandable(head, () => childList(ctx, item.children, path)));
  }
  return el("li", { class: "leaf" }, ...head);
}

// An aggregation's child rows: how many, their sum, then the largest, each explained when opened.
function childList(ctx, summary, path) {
  const v = summary.variable ? variableOf(ctx, summary.entity, summary.variable) : undefined;
  const unit = v && v.unit;
  const more = summary.count > summary.shown;
  const text = say(`下级记录 ${summary.count} 条，合计 ${fmtValue(summary.sum, unit)}` +
      (more ? `；列出绝对值最大的 ${summary.shown} 条` : ""),
    `${summary.count} child rows, sum ${fmtValue(summary.sum, unit)}` + (more ? `; the ${summary.shown} largest listed` : ""));
  return el("ul", { class: "inputs children" }, el("li", { class: "leaf muted small", text }),
    ...summary.top.map((child) => childItem(ctx, summary, child, path)));
}

function childItem(ctx, summary, child, path) {
  const v = summary.variable ? variableOf(ctx, summary.entity, summary.variable) : undefined;
  const head = [bi(entityLabel(summary.entity), "in-label"), el("code", { class: "rowid", text: child.id }), " ",
    v ? bi(v.label) : el("code", { class: "in-name", text: summary.expression || summary.entity }),
    el("span", { class: "eq", text: "=" }), el("span", { class: "in-value", text: fmtValue(child.value, v && v.unit) })];
  const key = child.key;
  if (!key || path.includes(key) || path.length >= MAX_DEPTH || !(v && v.formula)) {
    return el("li", { class: "leaf" }, ...head);
  }
  return el("li", {}, expandable(head, fetched(ctx, key, path)));
}

// node: one explanation (engine/explain/cone.py)
export function stepBody(ctx, node, path = []) {
  const box = el("div", { class: "step" });
  if (!node) return box;
  const dl = el("dl", { class: "facts" });
  const add = (term, ...dd) => dl.append(el("dt", { text: term }), el("dd", {}, ...dd));
  if (node.formula) add(t("formula"), el("code", { class: "formula", text: node.formula }));
  else add(t("formula"), el("span", { class: "muted", text: node.supplied ? t("supplied") : node.note || "" }));
  if (node.source) add(t("clause"), el("span", { class: "clause", text: node.source }));
  if (node.assumed) add(t("assumed"), el("span", { class: "assumed-text", text: node.assumed }));
  if (node.note && node.formula) add(t("note"), el("span", { class: "note", text: node.note }));
  box.append(dl);
  const inputs = node.inputs || [];
  if (inputs.length) {
    box.append(el("p", { class: "inputs-h", text: t("inputs_used") }),
      el("ul", { class: "inputs" }, ...inputs.map((item) => inputItem(ctx, node, item, path))));
  }
  return box;
}

// ctx: {city, situation, version, detail (GET /v1/cities/{city})}
export async function openExplain(ctx, entity, id, name, from) {
  const panel = document.getElementById("explain");
  const body = clear(document.getElementById("explain-body"));
  const key = `${entity}.${id}.${name}`;
  if (opener) opener.classList.remove("current");
  opener = from || null;
  if (opener) opener.classList.add("current");
  document.body.classList.add("explaining");
  const unit = unitOf(ctx, entity, name);
  const v = variableOf(ctx, entity, name);
  const value = el("p", { class: "explain-value", text: "…" });
  const rest = el("div", {}, el("p", { class: "muted", text: t("loading") }));
  body.append(
    el("p", { class: "explain-where" }, bi(entityLabel(entity)), " ", el("code", { text: id })),
    el("p", { class: "explain-what" }, v ? bi(v.label) : null, " ", el("code", { text: name })),
    value, rest);
  panel.hidden = false;
  panel.dataset.key = key;
  document.getElementById("explain-h").focus();
  const got = await fetchExplanation(ctx, key);
  if (panel.dataset.key !== key) return; // another value was opened meanwhile
  value.textContent = got.ok ? fmtValue(got.node.value, unit) : "—";
  clear(rest).append(got.ok ? stepBody(ctx, got.node, [key]) : errorList(got.response));
}

export function closeExplain() {
  const panel = document.getElementById("explain");
  if (panel.hidden) return;
  panel.hidden = true;
  document.body.classList.remove("explaining");
  if (opener) opener.classList.remove("current");
  if (opener && document.body.contains(opener)) opener.focus();
  opener = null;
}

export function setupExplain() {
  document.getElementById("explain-close").addEventListener("click", closeExplain);
  document.getElementById("explain-h").setAttribute("tabindex", "-1");
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeExplain();
  });
}
