// The draft editor (草案编辑): open the served policy as a draft, edit it with line numbers, YAML colouring
// and the diagnostics in place as you type (CodeMirror, vendored), try it on a situation beside the served
// version, and publish it with the admin token.
import { fillCitySelect, fillDemoSelect, resultTables } from "./try.js";
import { addStrings, api, bilingualMessage, cities, cityDetail, clear, demos, el, errorList, fmtValue, state, t } from "./util.js";

addStrings({
  nav_draft: ["草案", "Draft"],
  draft_h: ["草案编辑", "Edit a draft"],
  draft_lead: ["打开现行政策作为草案，边改边检查（行号、语法着色、问题就地标出），用演示或粘贴的情形试算，与现行版本比较，凭令牌发布。",
    "Open the served policy as a draft, edit it with line numbers, colouring and problems marked as you type, try it on a demo or pasted situation, compare it with the served version, and publish it with the token."],
  open_served: ["打开现行政策", "Open the served policy"],
  draft_text: ["草案（YAML）", "Draft (YAML)"],
  draft_checking: ["检查中…", "Checking…"],
  draft_ready: ["未发现错误，可以发布。", "No errors: ready to publish."],
  draft_ready_warn: ["未发现错误，可以发布；另有 {w} 条提示，请核对。", "No errors: ready to publish; {w} warning(s) to look at."],
  draft_errors: ["{e} 个错误，{w} 条提示：修正错误后才能发布。", "{e} error(s), {w} warning(s): fix the errors before publishing."],
  draft_empty: ["草案为空", "The draft is empty"],
  try_draft_h: ["试算与比较", "Try and compare"],
  try_draft: ["用草案试算并与现行版本比较", "Try the draft and compare with the served version"],
  draft_same: ["草案与现行版本在此情形下结果相同。", "The draft gives the same results as the served version on this situation."],
  draft_diff_h: ["与现行版本不同的数值（{n}）", "Values that differ from the served version ({n})"],
  draft_changed: ["草案改动：{names}", "Changed in the draft: {names}"],
  served_col: ["现行 {v}", "served {v}"],
  draft_col: ["草案 {v}", "draft {v}"],
  diff_col: ["差额", "difference"],
  draft_results_h: ["草案计算结果", "The draft's results"],
  served_failed: ["现行版本无法计算此情形：", "The served version cannot evaluate this situation:"],
  draft_failed: ["草案无法计算此情形：", "The draft cannot evaluate this situation:"],
  publish_h: ["发布", "Publish"],
  admin_token: ["管理令牌", "Admin token"],
  publish_file: ["发布为文件", "Publish as file"],
  replace_served: ["替换同名文件所服务的版本", "replace the version this file serves"],
  publish: ["发布", "Publish"],
  publishing: ["发布中…", "Publishing…"],
  published: ["已发布：{file}（{version}）", "Published: {file} ({version})"],
  warnings_h: ["提示（可能有误的取值）", "Warnings (values that can hardly be meant)"],
});

const $ = (id) => document.getElementById(id);
let editor = null, timer = null, checkSeq = 0, lastCheck = null, lastTry = null;

export const draftText = () => (editor ? editor.getValue() : $("draft-text").value);

// CodeMirror annotations from /v1/validate diagnostics (1-based line and column → 0-based positions).
function annotations(text, data) {
  const lines = text.split("\n");
  const all = [...(data.diagnostics || []), ...(data.warnings || [])];
  return all.filter((d) => d.line).map((d) => {
    const line = Math.min(d.line, lines.length) - 1, col = Math.max(0, (d.column || 1) - 1);
    const end = Math.max(col + 1, (lines[line] || "").length);
    const message = state.lang === "en" ? d.message : d.message_zh;
    return { from: window.CodeMirror.Pos(line, col), to: window.CodeMirror.Pos(line, end),
      message: `${d.code}: ${message}`, severity: d.severity === "warning" ? "warning" : "error" };
  });
}

async function validate(text) {
  const seq = ++checkSeq;
  $("draft-check").textContent = t("draft_checking");
  const r = await api("/v1/validate", { method: "POST", body: { text, file: $("draft-file").value || "draft.yaml" } });
  if (seq !== checkSeq) return null; // a later edit has been sent
  lastCheck = r;
  renderCheck();
  return r.ok ? r.data : null;
}

function renderCheck() {
  const status = $("draft-check"), box = clear($("draft-diagnostics"));
  const r = lastCheck;
  if (!r) return;
  if (!r.ok) { status.textContent = t("request_failed", { status: r.status }); box.append(errorList(r)); return; }
  const errors = r.data.diagnostics.filter((d) => d.severity !== "warning");
  const warnings = [...r.data.warnings, ...r.data.diagnostics.filter((d) => d.severity === "warning")];
  status.dataset.state = errors.length ? "errors" : warnings.length ? "warnings" : "ready";
  status.textContent = errors.length ? t("draft_errors", { e: errors.length, w: warnings.length })
    : warnings.length ? t("draft_ready_warn", { w: warnings.length }) : t("draft_ready");
  $("draft-publish").disabled = errors.length > 0;
  const item = (d) => el("li", { class: `diag diag-${d.severity}` },
    el("button", { type: "button", class: "link", onclick: () => goTo(d) },
      d.line ? t("line_col", { line: d.line, col: d.column || 1 }) : t("no_line")), " ",
    el("span", { class: `sev sev-${d.severity}`, text: d.severity }), " ",
    el("code", { class: "code-name", text: d.code }), bilingualMessage(d.message_zh, d.message));
  if (errors.length) box.append(el("ol", { class: "diagnostics" }, ...errors.map(item)));
  if (warnings.length) box.append(el("h3", { text: t("warnings_h") }), el("ol", { class: "diagnostics warnings-list" }, ...warnings.map(item)));
}

function goTo(d) {
  if (!editor || !d.line) return;
  editor.focus();
  editor.setCursor({ line: d.line - 1, ch: Math.max(0, (d.column || 1) - 1) });
  editor.scrollIntoView(null, 120);
}

function makeEditor() {
  const area = $("draft-text");
  if (!window.CodeMirror) return; // the plain text area still works
  editor = window.CodeMirror.fromTextArea(area, {
    mode: "yaml", lineNumbers: true, indentUnit: 2, tabSize: 2, lineWrapping: false,
    extraKeys: { Tab: (cm) => cm.replaceSelection("  ") },
    gutters: ["CodeMirror-lint-markers", "CodeMirror-linenumbers"],
    lint: { async: true, delay: 500, getAnnotations: (text, done) => {
      if (!text.trim()) { done([]); return; }
      validate(text).then((data) => { if (data) done(annotations(text, data)); });
    } },
  });
  editor.getWrapperElement().setAttribute("aria-label", t("draft_text"));
  editor.getInputField().setAttribute("aria-label", t("draft_text"));
}

async function openServed() {
  const city = $("draft-city").value;
  const r = await api(`/v1/cities/${encodeURIComponent(city)}/source`);
  if (!r.ok) { clear($("draft-diagnostics")).append(errorList(r)); return; }
  $("draft-file").value = r.data.file;
  setDraft(r.data.text);
}

export function setDraft(text) {
  if (editor) editor.setValue(text); else { $("draft-text").value = text; scheduleCheck(); }
}

function scheduleCheck() {
  clearTimeout(timer);
  timer = setTimeout(() => { const text = draftText(); if (text.trim()) validate(text); }, 500);
}

// Every value of the two results that differs: [entity, id, variable, served, draft].
export function differences(served, draft) {
  const out = [];
  for (const [entity, rows] of Object.entries(draft.entities || {})) {
    const before = new Map(((served.entities || {})[entity] || []).map((r) => [r.id, r]));
    for (const row of rows) {
      const old = before.get(row.id) || {};
      for (const [name, value] of Object.entries(row)) {
        if (name === "id") continue;
        const was = old[name];
        const same = typeof value === "number" && typeof was === "number"
          ? Math.abs(value - was) <= 1e-9 * Math.max(1, Math.abs(value), Math.abs(was)) : value === was;
        if (!same) out.push([entity, row.id, name, was, value]);
      }
    }
  }
  return out;
}

function renderTry() {
  const out = clear($("draft-result"));
  if (!lastTry) return;
  const { data } = lastTry;
  out.append(el("h2", { id: "draft-result-h", text: t("try_draft_h") }));
  if (data.changed.length) out.append(el("p", { class: "changed", text: t("draft_changed", { names: data.changed.join(", ") }) }));
  const failed = [[data.served, t("served_failed")], [data.draft, t("draft_failed")]].filter(([s]) => !s.ok);
  for (const [side, title] of failed) out.append(el("h3", { text: title }), errorList({ status: 422, data: side }));
  if (!data.draft.ok) return;
  if (data.served.ok) {
    const diffs = differences(data.served.result, data.draft.result);
    if (!diffs.length) out.append(el("p", { class: "ok", role: "status", text: t("draft_same") }));
    else {
      out.append(el("h3", { text: t("draft_diff_h", { n: diffs.length }) }), el("div", { class: "table-wrap" },
        el("table", { class: "compare-table draft-diff" },
          el("thead", {}, el("tr", {}, ...["entity", "id", "variable"].map((h) => el("th", { scope: "col", text: h })),
            el("th", { scope: "col", class: "num", text: t("served_col", { v: data.versions.served }) }),
            el("th", { scope: "col", class: "num", text: t("draft_col", { v: data.versions.draft }) }),
            el("th", { scope: "col", class: "num", text: t("diff_col") }))),
          el("tbody", {}, ...diffs.map(([e, id, name, a, b]) => el("tr", { "data-key": `${e}.${id}.${name}` },
            el("td", { text: e }), el("td", {}, el("code", { text: id })), el("td", {}, el("code", { text: name })),
            el("td", { class: "num", text: a === undefined ? "—" : fmtValue(a) }),
            el("td", { class: "num", text: fmtValue(b) }),
            el("td", { class: "num", text: typeof a === "number" && typeof b === "number" ? fmtValue(b - a) : "" })))))));
    }
  }
  out.append(el("details", { class: "draft-results" }, el("summary", { text: t("draft_results_h") }),
    resultTables(data.draft.result, lastTry.detail || { variables: [] }, null)));
}

async function tryDraft(e) {
  e.preventDefault();
  const status = $("draft-try-status"), text = draftText();
  if (!text.trim()) { status.textContent = t("draft_empty"); return; }
  let situation;
  try {
    situation = JSON.parse($("draft-json").value);
  } catch (err) {
    status.textContent = t("bad_json", { msg: err.message });
    return;
  }
  status.textContent = t("evaluating");
  const city = $("draft-city").value;
  const r = await api(`/v1/cities/${encodeURIComponent(city)}/draft/evaluate`,
    { method: "POST", body: { text, file: $("draft-file").value || "draft.yaml", situation } });
  if (!r.ok) {
    lastTry = null;
    status.textContent = t("request_failed", { status: r.status });
    clear($("draft-result")).append(errorList(r));
    return;
  }
  status.textContent = t("done");
  const detail = await cityDetail(city);
  lastTry = { data: r.data, detail: detail.ok ? detail.data : null };
  renderTry();
}

async function publishDraft(e) {
  e.preventDefault();
  const status = $("draft-publish-status"), file = $("draft-publish-file").value.trim() || $("draft-file").value;
  status.textContent = t("publishing");
  const replace = $("draft-replace").checked ? "?replace=true" : "";
  let response, data = null;
  try {
    response = await fetch(`/v1/admin/policies/${encodeURIComponent(file)}${replace}`, {
      method: "PUT", headers: { "content-type": "application/json", accept: "application/json",
        authorization: `Bearer ${$("draft-token").value}` },
      body: JSON.stringify({ text: draftText(), file }) });
    data = await response.json();
  } catch (err) {
    status.textContent = String(err);
    return;
  }
  const box = clear($("draft-publish-result"));
  if (!response.ok) {
    status.textContent = t("request_failed", { status: response.status });
    box.append(errorList({ ok: false, status: response.status, data }));
    return;
  }
  status.textContent = t("published", { file, version: data.version || "" });
}

export function redrawDraft() { renderCheck(); renderTry(); }

export async function refreshDraftLists() {
  const [c, d] = await Promise.all([cities(), demos()]);
  if (c.ok) fillCitySelect($("draft-city"), c.data.filter((x) => !x.id.startsWith("_")));
  if (d.ok) fillDemoSelect($("draft-demo"), d.data);
  if (editor) editor.refresh();
}

export function setupDraft() {
  makeEditor();
  if (!editor) $("draft-text").addEventListener("input", scheduleCheck);
  $("draft-open").addEventListener("click", openServed);
  $("draft-demo").addEventListener("change", async (e) => {
    if (!e.target.value) return;
    const r = await api(`/v1/demo/${encodeURIComponent(e.target.value)}`);
    if (r.ok) $("draft-json").value = JSON.stringify(r.data, null, 2);
  });
  $("draft-try-form").addEventListener("submit", tryDraft);
  $("draft-publish-form").addEventListener("submit", publishDraft);
}
