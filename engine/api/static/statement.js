// Clearing statements (清算单) of the evaluated situation: one statement as a printable page or an
// .xlsx file, or every statement and the fund summary in one zip (POST /v1/cities/{city}/statement).
import { bi, el, entityLabel, state } from "./util.js";

const inLang = (zh, en) => (state.lang === "en" ? en : zh);

async function fetchStatement(ctx, query) {
  const response = await fetch(`/v1/cities/${encodeURIComponent(ctx.city)}/statement?${query}`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(ctx.situation) });
  if (response.ok) return { ok: true, blob: await response.blob() };
  let detail = [];
  try { detail = (await response.json()).detail || []; } catch { detail = []; }
  const first = detail[0] || {};
  return { ok: false, message: `${response.status} ${first.path || ""}: ${inLang(first.message_zh || "", first.message || "")}` };
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function run(ctx, status, query, then) {
  status.textContent = inLang("正在生成…", "Preparing…");
  const r = await fetchStatement(ctx, query);
  status.textContent = r.ok ? inLang("已生成", "Ready") : r.message;
  if (r.ok) then(r.blob);
}

// One line per entity with statements: pick a row, open its statement (HTML) or download it (.xlsx).
export function statementsBox(ctx, result) {
  const kinds = (ctx.detail.statements || []).filter((e) => e !== "fund" && (result.entities[e] || []).length);
  if (!kinds.length) return null;
  const status = el("span", { class: "status", role: "status", "aria-live": "polite" });
  const box = el("div", { class: "panel statements", "data-statements": "" },
    el("h3", { text: inLang("清算单", "Clearing statements") }));
  for (const entity of kinds) {
    const select = el("select", { "aria-label": inLang("选择机构", "choose a row"), "data-entity": entity },
      ...result.entities[entity].map((r) => el("option", { value: r.id, text: r.id })));
    const query = (fmt) => `entity=${encodeURIComponent(entity)}&id=${encodeURIComponent(select.value)}&format=${fmt}`;
    box.append(el("div", { class: "actions" }, el("span", {}, bi(entityLabel(entity))), select,
      el("button", { type: "button", "data-statement": "html",
        onclick: () => {
          const page = window.open("about:blank", "_blank"); // opened on the click, so that it is not blocked
          run(ctx, status, query("html"), (blob) => {
            if (page) page.location.href = URL.createObjectURL(blob);
            else save(blob, `${entity}-${select.value}.html`);
          }).then(() => { if (page && page.location.href === "about:blank" && status.textContent !== inLang("已生成", "Ready")) page.close(); });
        } },
        inLang("打开清算单", "Open statement")),
      el("button", { type: "button", "data-statement": "xlsx",
        onclick: () => run(ctx, status, query("xlsx"), (blob) => save(blob, `${entity}-${select.value}.xlsx`)) },
        inLang("下载 .xlsx", "Download .xlsx"))));
  }
  box.append(el("div", { class: "actions" },
    el("button", { type: "button", "data-statement": "zip",
      onclick: () => run(ctx, status, "format=zip", (blob) => save(blob, `${ctx.city}-statements.zip`)) },
      inLang("全部清算单与基金汇总（zip）", "All statements and the fund summary (zip)")), status));
  return box;
}
