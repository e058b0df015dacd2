// The explanation tree of one computed value (计算过程), from the evaluate trace.
import { bi, clear, el, entityLabel, fmtValue, t } from "./util.js";

const MAX_DEPTH = 40;
let opener = null;

// ctx: {trace, detail (GET /v1/cities/{city}), entity, id}
export function unitOf(ctx, entity, name) {
  const v = ctx.detail && ctx.detail.variables.find((x) => x.entity === entity && x.name === name);
  if (v) return v.unit;
  const p = ctx.detail && ctx.detail.parameters[name];
  return p ? p.unit : undefined;
}

function inputItem(ctx, entity, id, text, value, path) {
  const key = `${entity}.${id}.${text}`;
  const step = ctx.trace[key];
  const param = ctx.detail && ctx.detail.parameters[text];
  const variable = ctx.detail && ctx.detail.variables.find((x) => x.entity === entity && x.name === text);
  const unit = variable ? variable.unit : param ? param.unit : undefined;
  const shown = fmtValue(value, unit, param && param.kind);
  const head = [
    variable || param ? bi((variable || param).label, "in-label") : null,
    el("code", { class: "in-name", text }),
    el("span", { class: "eq", text: "=" }),
    el("span", { class: "in-value", text: shown }),
    param ? el("span", { class: "tag", text: t("param_word") }) : null,
    param && param.source ? el("span", { class: "clause", text: param.source }) : null,
    param && param.assumed ? el("span", { class: "tag warn", text: t("assumed") }) : null,
  ];
  if (step && !path.includes(key) && path.length < MAX_DEPTH) {
    const details = el("details", { class: "sub" }, el("summary", {}, ...head));
    details.addEventListener("toggle", () => {
      if (details.open && details.childElementCount === 1) details.append(stepBody(ctx, entity, id, text, [...path, key]));
    }, { once: false });
    return el("li", {}, details);
  }
  return el("li", { class: "leaf" }, ...head);
}

export function stepBody(ctx, entity, id, name, path = []) {
  const step = ctx.trace[`${entity}.${id}.${name}`];
  const box = el("div", { class: "step" });
  if (!step) return box;
  const dl = el("dl", { class: "facts" });
  const add = (term, ...dd) => dl.append(el("dt", { text: term }), el("dd", {}, ...dd));
  if (step.formula) add(t("formula"), el("code", { class: "formula", text: step.formula }));
  else add(t("formula"), el("span", { class: "muted", text: t("supplied") }));
  if (step.source) add(t("clause"), el("span", { class: "clause", text: step.source }));
  if (step.assumed) add(t("assumed"), el("span", { class: "assumed-text", text: step.assumed }));
  if (step.note) add(t("note"), el("span", { class: "note", text: step.note }));
  box.append(dl);
  const inputs = Object.entries(step.inputs || {});
  if (inputs.length) {
    box.append(el("p", { class: "inputs-h", text: t("inputs_used") }),
      el("ul", { class: "inputs" }, ...inputs.map(([text, value]) => inputItem(ctx, entity, id, text, value, path))));
  }
  return box;
}

export function openExplain(ctx, entity, id, name, from) {
  const panel = document.getElementById("explain");
  const body = clear(document.getElementById("explain-body"));
  const key = `${entity}.${id}.${name}`;
  const step = ctx.trace[key];
  opener = from || null;
  const unit = unitOf(ctx, entity, name);
  body.append(
    el("p", { class: "explain-where" }, bi(entityLabel(entity)), " ", el("code", { text: id })),
    el("p", { class: "explain-what" }, step ? bi(step.label) : null, " ", el("code", { text: name })),
    el("p", { class: "explain-value", text: step ? fmtValue(step.value, unit) : "—" }),
    stepBody(ctx, entity, id, name, [key]));
  panel.hidden = false;
  panel.dataset.key = key;
  document.getElementById("explain-h").focus();
}

export function closeExplain() {
  const panel = document.getElementById("explain");
  if (panel.hidden) return;
  panel.hidden = true;
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
