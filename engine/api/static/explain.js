// The explanation tree of one computed value (计算过程), from the evaluate trace: formula, clause,
// note, and the values used — each one that is itself computed (in the same row, in a parent row, or
// the child rows an aggregation adds up) opens into its own explanation.
import { bi, clear, el, entityLabel, fmtValue, t } from "./util.js";

const MAX_DEPTH = 40;
let opener = null;

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

// A lazily filled <details>: the body is drawn the first time it is opened.
function expandable(head, draw) {
  const details = el("details", { class: "sub" }, el("summary", {}, ...head));
  details.addEventListener("toggle", () => {
    if (details.open && details.childElementCount === 1) details.append(draw());
  });
  return details;
}

function where(ctx, key, fromEntity) {
  const k = parseKey(key);
  return k.entity === fromEntity ? null
    : el("span", { class: "tag" }, bi(entityLabel(k.entity)), " ", el("code", { text: k.id }));
}

function inputItem(ctx, key, step, text, value, path) {
  const here = parseKey(key);
  const sameRow = `${here.entity}.${here.id}.${text}`;
  const parentKey = step.parents && step.parents[text];
  const childKeys = (step.children && step.children[text]) || [];
  const target = ctx.trace[sameRow] ? sameRow : parentKey && ctx.trace[parentKey] ? parentKey : null;
  const param = ctx.detail && ctx.detail.parameters[text];
  const paramInfo = (step.parameters && step.parameters[text]) || param;
  const ref = target ? parseKey(target) : parentKey ? parseKey(parentKey) : null;
  const variable = ref ? variableOf(ctx, ref.entity, ref.name) : variableOf(ctx, here.entity, text);
  const unit = variable ? variable.unit : param ? param.unit : undefined;
  const head = [
    variable || param ? bi((variable || param).label, "in-label") : null,
    el("code", { class: "in-name", text }),
    el("span", { class: "eq", text: "=" }),
    el("span", { class: "in-value", text: fmtValue(value, unit, param && param.kind) }),
    parentKey ? where(ctx, parentKey, here.entity) : null,
    param ? el("span", { class: "tag", text: t("param_word") }) : null,
    paramInfo && paramInfo.source ? el("span", { class: "clause", text: paramInfo.source }) : null,
    paramInfo && paramInfo.assumed ? el("span", { class: "tag warn", title: paramInfo.assumed, text: t("assumed") }) : null,
  ];
  if (path.length >= MAX_DEPTH) return el("li", { class: "leaf" }, ...head);
  if (target && !path.includes(target)) {
    return el("li", {}, expandable(head, () => stepBody(ctx, target, [...path, target])));
  }
  if (childKeys.length) {
    return el("li", {}, expandable(head, () => el("ul", { class: "inputs children" },
      el("li", { class: "leaf muted small", text: t("child_rows", { n: childKeys.length }) }),
      ...childKeys.map((ck) => childItem(ctx, ck, path)))));
  }
  return el("li", { class: "leaf" }, ...head);
}

function childItem(ctx, key, path) {
  const k = parseKey(key), step = ctx.trace[key];
  const v = variableOf(ctx, k.entity, k.name);
  const head = [bi(entityLabel(k.entity), "in-label"), el("code", { class: "rowid", text: k.id }), " ",
    v ? bi(v.label) : el("code", { class: "in-name", text: k.name }),
    step ? [el("span", { class: "eq", text: "=" }), el("span", { class: "in-value", text: fmtValue(step.value, v && v.unit) })] : null];
  if (!step || path.includes(key) || path.length >= MAX_DEPTH) return el("li", { class: "leaf" }, ...head);
  return el("li", {}, expandable(head, () => stepBody(ctx, key, [...path, key])));
}

export function stepBody(ctx, key, path = []) {
  const step = ctx.trace[key];
  const box = el("div", { class: "step" });
  if (!step) return box;
  const dl = el("dl", { class: "facts" });
  const add = (term, ...dd) => dl.append(el("dt", { text: term }), el("dd", {}, ...dd));
  if (step.formula) add(t("formula"), el("code", { class: "formula", text: step.formula }));
  else add(t("formula"), el("span", { class: "muted", text: t("supplied") }));
  if (step.source) add(t("clause"), el("span", { class: "clause", text: step.source }));
  if (step.assumed) add(t("assumed"), el("span", { class: "assumed-text", text: step.assumed }));
  if (step.note && step.formula) add(t("note"), el("span", { class: "note", text: step.note }));
  box.append(dl);
  const inputs = Object.entries(step.inputs || {});
  if (inputs.length) {
    box.append(el("p", { class: "inputs-h", text: t("inputs_used") }),
      el("ul", { class: "inputs" }, ...inputs.map(([text, value]) => inputItem(ctx, key, step, text, value, path))));
  }
  return box;
}

// ctx: {trace, detail (GET /v1/cities/{city})}
export function openExplain(ctx, entity, id, name, from) {
  const panel = document.getElementById("explain");
  const body = clear(document.getElementById("explain-body"));
  const key = `${entity}.${id}.${name}`;
  const step = ctx.trace[key];
  if (opener) opener.classList.remove("current");
  opener = from || null;
  if (opener) opener.classList.add("current");
  document.body.classList.add("explaining");
  const unit = unitOf(ctx, entity, name);
  body.append(
    el("p", { class: "explain-where" }, bi(entityLabel(entity)), " ", el("code", { text: id })),
    el("p", { class: "explain-what" }, step ? bi(step.label) : null, " ", el("code", { text: name })),
    el("p", { class: "explain-value", text: step ? fmtValue(step.value, unit) : "—" }),
    step ? stepBody(ctx, key, [key]) : el("p", { class: "muted", text: t("no_trace") }));
  panel.hidden = false;
  panel.dataset.key = key;
  document.getElementById("explain-h").focus();
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
