// The page's entry: routes (#/cities, #/policy/<city>[/<version>], #/try[/<demo>], #/check, #/compare,
// #/draft, #/impact),
// the language switch, and the first drawing (入口).
import { redrawCheck, setupCheck } from "./check.js";
import { redrawCompare, refreshCompareLists, setupCompare } from "./compare.js";
import { redrawDraft, refreshDraftLists, setupDraft } from "./draft.js";
import { closeExplain, setupExplain } from "./explain.js";
import { redrawImpact, refreshImpactLists, setupImpact } from "./impact.js";
import { renderCityList, renderPolicy } from "./policy.js";
import { redrawTry, refreshTryLists, setupTry } from "./try.js";
import { langTag, state, t } from "./util.js";

const VIEWS = ["cities", "policy", "try", "check", "compare", "draft", "impact"];

export function parseRoute(hash) {
  const parts = (hash || "").replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const view = VIEWS.includes(parts[0]) ? parts[0] : "cities";
  if (view === "policy") return { view, city: parts[1], version: parts[2] };
  if (view === "try") return { view, demo: parts[1] };
  if (view === "compare") return { view, a: parts[1], b: parts[2] };
  return { view };
}

function translateStatic() {
  document.documentElement.lang = langTag();
  document.querySelectorAll("[data-t]").forEach((n) => { n.textContent = t(n.dataset.t); });
  document.querySelectorAll("[data-t-aria]").forEach((n) => n.setAttribute("aria-label", t(n.dataset.tAria)));
  const toggle = document.getElementById("lang-toggle");
  toggle.textContent = state.lang === "en" ? "中文" : "English";
  toggle.setAttribute("lang", state.lang === "en" ? "zh-CN" : "en");
  toggle.setAttribute("aria-pressed", String(state.lang === "en"));
  toggle.setAttribute("aria-label", state.lang === "en" ? "切换到中文" : "Switch to English");
  document.title = state.lang === "en" ? "Medical-insurance payment rules · medpay" : "医保支付规则 · medpay";
}

let current = null;
async function show(route, redraw = false) {
  const same = current && current.view === route.view && !redraw;
  current = route;
  const nav = route.view === "policy" ? "cities" : route.view;
  for (const v of VIEWS) document.getElementById(`view-${v}`).hidden = v !== route.view;
  document.querySelectorAll("#nav a").forEach((a) => {
    if (a.dataset.view === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  document.body.dataset.view = route.view;
  if (route.view === "cities") await renderCityList(document.getElementById("city-list"));
  else if (route.view === "policy") await renderPolicy(document.getElementById("policy-body"), route.city, route.version);
  else if (route.view === "try") { await refreshTryLists(same ? null : route); if (redraw) redrawTry(); }
  else if (route.view === "check") { if (redraw) redrawCheck(); }
  else if (route.view === "compare") { await refreshCompareLists(same ? null : route); if (redraw) redrawCompare(); }
  else if (route.view === "draft") { await refreshDraftLists(); if (redraw) redrawDraft(); }
  else if (route.view === "impact") { await refreshImpactLists(); if (redraw) redrawImpact(); }
  document.body.dataset.ready = route.view;
}

async function onHash() {
  closeExplain();
  await show(parseRoute(location.hash));
  const main = document.getElementById("main");
  if (document.activeElement === document.body) main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

async function init() {
  state.lang = localStorage.getItem("medpay-lang") === "en" ? "en" : "zh";
  translateStatic();
  setupExplain();
  setupCheck();
  setupDraft();
  setupImpact();
  await Promise.all([setupTry(), setupCompare()]);
  document.getElementById("lang-toggle").addEventListener("click", async () => {
    state.lang = state.lang === "en" ? "zh" : "en";
    localStorage.setItem("medpay-lang", state.lang);
    translateStatic();
    closeExplain();
    await show(parseRoute(location.hash), true);
  });
  // in-page links (clause list) scroll without changing the route
  document.addEventListener("click", (e) => {
    const a = e.target.closest("a[data-anchor]");
    if (!a) return;
    const target = document.getElementById(a.dataset.anchor);
    if (!target) return;
    e.preventDefault();
    target.setAttribute("tabindex", "-1");
    target.scrollIntoView({ block: "start" });
    target.focus({ preventScroll: true });
  });
  window.addEventListener("hashchange", onHash);
  if (!location.hash) history.replaceState(null, "", "#/cities");
  await onHash();
}

init();
