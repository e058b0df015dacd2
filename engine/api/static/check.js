// Check a policy (政策校验): /v1/validate, diagnostics listed and their lines marked in the text.
import { addStrings, api, bi, bilingualMessage, clear, el, errorList, langTag, readFile, state, t } from "./util.js";

addStrings({
  valid_warnings: ["未发现错误，可以发布；但有 {n} 条提示，请核对：", "No errors: ready to publish, but {n} warning(s) to look at:"],
});

const $ = (id) => document.getElementById(id);
let last = null; // {text, file, data}

function where(d) {
  if (!d.line) return t("no_line");
  return d.column ? t("line_col", { line: d.line, col: d.column }) : t("line_only", { line: d.line });
}

// What stands before the column, tabs kept, so that the caret sits under it even after wide characters.
const caretPrefix = (line, col) => [...line].slice(0, col - 1).join("") + " ".repeat(Math.max(0, col - 1 - [...line].length));

// The text with line numbers; lines with a diagnostic marked, a caret under the column, the message below.
export function listing(text, diagnostics) {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const byLine = new Map();
  diagnostics.forEach((d, i) => {
    if (!d.line) return;
    if (!byLine.has(d.line)) byLine.set(d.line, []);
    byLine.get(d.line).push({ ...d, index: i });
  });
  const width = String(lines.length).length;
  const box = el("div", { class: "listing", role: "region", "aria-label": t("listing"), tabindex: "0" });
  const ol = el("ol", { class: "lines" });
  lines.forEach((line, i) => {
    const n = i + 1, marks = byLine.get(n);
    const li = el("li", { class: marks ? "line bad" : "line", id: `src-line-${n}`, "data-line": n },
      el("span", { class: "ln", "aria-hidden": "true", text: String(n).padStart(width, " ") }),
      el("span", { class: "src", text: line || " " }));
    if (marks) {
      for (const d of marks) {
        const col = Math.max(1, d.column || 1);
        li.append(el("span", { class: "caret-row", "aria-hidden": "true" },
          el("span", { class: "ln", text: " ".repeat(width) }),
          el("span", { class: "caret" }, el("span", { class: "ghost", text: caretPrefix(line, col) }), "^")),
        el("span", { class: "inline-msg", "data-diag": d.index },
          el("span", { class: `sev sev-${d.severity}`, text: d.severity }), " ",
          el("span", { lang: langTag(), text: state.lang === "en" ? d.message : d.message_zh })));
      }
    }
    ol.append(li);
  });
  box.append(ol);
  return box;
}

function showLine(n) {
  const line = document.getElementById(`src-line-${n}`);
  if (!line) return;
  line.scrollIntoView({ block: "center", behavior: "smooth" });
  line.classList.add("flash");
  setTimeout(() => line.classList.remove("flash"), 1200);
}

function renderCheck() {
  const out = clear($("check-result"));
  if (!last) return;
  const { text, data } = last;
  const warnings = data.warnings || [];
  if (data.valid) {
    out.append(el("div", { class: warnings.length ? "ok has-warnings" : "ok", role: "status" },
      el("h2", { id: "check-result-h", text: warnings.length ? t("valid_warnings", { n: warnings.length }) : t("valid") }),
      data.policy ? el("p", {}, bi(data.policy.name), ` · ${data.policy.notice} · ${t("version")} ${data.policy.version}`) : null),
    data.assumed.length ? el("section", { class: "assumed-list" }, el("h3", { text: t("assumed_group") }),
      el("ul", {}, ...data.assumed.map((a) => el("li", { text: a })))) : null);
    if (warnings.length) {
      out.append(diagnosticList(warnings, "warn"), el("h3", { text: t("listing") }), listing(text, warnings));
    }
    return;
  }
  out.append(el("div", { class: "bad-result", role: "alert" },
    el("h2", { id: "check-result-h", text: t("invalid", { n: data.diagnostics.length }) })),
  diagnosticList(data.diagnostics, "diag"), el("h3", { text: t("listing") }), listing(text, data.diagnostics));
}

function diagnosticList(diagnostics, prefix) {
  const list = el("ol", { class: "diagnostics" });
  diagnostics.forEach((d, i) => {
    list.append(el("li", { class: `diag diag-${d.severity}`, id: `${prefix}-${i}` },
      el("div", { class: "diag-head" },
        el("span", { class: `sev sev-${d.severity}`, text: d.severity }),
        el("code", { class: "code-name", text: d.code }),
        el("span", { class: "loc", text: `${d.file || ""} · ${where(d)}` }),
        d.path ? el("code", { class: "path", text: d.path }) : null),
      bilingualMessage(d.message_zh, d.message),
      d.excerpt ? el("pre", { class: "excerpt" }, el("code", { text: d.excerpt })) : null,
      d.line ? el("button", { type: "button", class: "link", onclick: () => showLine(d.line) }, t("show_line")) : null));
  });
  return list;
}

export function redrawCheck() { renderCheck(); }

export function setupCheck() {
  $("check-upload").addEventListener("change", async (e) => {
    const f = await readFile(e.target);
    if (!f) return;
    $("check-text").value = f.text;
    $("check-file").value = f.name;
  });
  $("check-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("check-text").value, file = $("check-file").value.trim() || "submitted.yaml";
    const status = $("check-status");
    if (!text.trim()) { status.textContent = t("empty_text"); $("check-text").focus(); return; }
    status.textContent = t("checking");
    $("check-run").disabled = true;
    const r = await api("/v1/validate", { method: "POST", body: { text, file } });
    $("check-run").disabled = false;
    if (!r.ok) {
      last = null;
      status.textContent = t("request_failed", { status: r.status });
      clear($("check-result")).append(errorList(r));
      return;
    }
    status.textContent = "";
    last = { text, file, data: r.data };
    renderCheck();
    $("check-result-h").setAttribute("tabindex", "-1");
    $("check-result-h").focus();
  });
}
