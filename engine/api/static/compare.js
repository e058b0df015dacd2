// Compare (比较): two cities or two versions side by side — parameters that differ, rules whose formula
// differs, and the effect on the same situation (evaluated with each side's policy version).
import { effectiveText } from "./policy.js";
import { fillCitySelect, fillDemoSelect, warningsBox } from "./try.js";
import {
  addStrings, api, bandsText, bi, cities, cityDetail, clear, demos, el, entityLabel, errorList, fmtValue, pick, t,
} from "./util.js";

addStrings({
  left_out: ["{side} 的政策不读取以下字段，计算时已略去：{fields}", "{side}'s policy does not read these fields; they were left out for it: {fields}"],
});

const $ = (id) => document.getElementById(id);
let last = null;

function fillVersions(citySelect, versionSelect, list, chosen) {
  const c = list.find((x) => x.id === citySelect.value);
  clear(versionSelect);
  if (!c) return;
  for (const v of [...c.versions].reverse()) {
    versionSelect.append(el("option", { value: v.version, text: `${v.version}（${effectiveText(v.effective)}）` }));
  }
  if (chosen && c.versions.some((v) => v.version === chosen)) versionSelect.value = chosen;
}

// Two cities read different inputs: a field that one side's policy declares and the other's does not is
// left out of the other side's copy of the situation (and listed), instead of failing the whole comparison.
export function fitted(situation, mine, theirs) {
  const known = new Set(mine.variables.map((v) => `${v.entity}.${v.name}`));
  const foreign = new Set(theirs.variables.map((v) => `${v.entity}.${v.name}`));
  const left = new Set();
  const entities = {};
  for (const [entity, rows] of Object.entries(situation.entities || {})) {
    entities[entity] = !Array.isArray(rows) ? rows : rows.map((row) => {
      if (!row || typeof row !== "object") return row;
      const kept = {};
      for (const [k, v] of Object.entries(row)) {
        const key = `${entity}.${k}`;
        if (k !== "id" && !known.has(key) && foreign.has(key)) left.add(key);
        else kept[k] = v;
      }
      return kept;
    });
  }
  const fittedSituation = { ...situation, entities };
  if (Array.isArray(situation.outputs)) {  // outputs only the other side's policy computes are left out too
    fittedSituation.outputs = situation.outputs.filter((name) => {
      if (known.has(name) || !foreign.has(name)) return true;
      left.add(name);
      return false;
    });
  }
  return { situation: fittedSituation, left: [...left] };
}

const sameJSON = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function paramText(p) {
  if (!p) return "—";
  return p.values.map((v) => `${p.values.length > 1 ? `${t("from_date", { d: v.from })}: ` : ""}${p.kind === "bands" ? bandsText(v.value, p.unit) : fmtValue(v.value, p.unit, p.kind)}`).join("\n");
}

// Dates of a parameter's values, the policy's own start left out: that one differs between any two versions.
const laterDates = (p, detail) => p.values.map((v, i) => (i === 0 && v.from === detail.policy.effective.from ? "start" : v.from));

export function paramDiff(a, b) {
  const names = [...new Set([...Object.keys(a.parameters), ...Object.keys(b.parameters)])].sort();
  return names.map((name) => {
    const pa = a.parameters[name], pb = b.parameters[name];
    let status = "same";
    if (!pa) status = "only_b";
    else if (!pb) status = "only_a";
    else if (!sameJSON(pa.values.map((v) => v.value), pb.values.map((v) => v.value))) status = "differs";
    else if (!sameJSON(laterDates(pa, a), laterDates(pb, b))) status = "dates";
    return { name, a: pa, b: pb, status };
  });
}

export function ruleDiff(a, b) {
  const key = (v) => `${v.entity}.${v.name}`;
  const ma = new Map(a.variables.filter((v) => !v.input).map((v) => [key(v), v]));
  const mb = new Map(b.variables.filter((v) => !v.input).map((v) => [key(v), v]));
  const out = [];
  for (const k of [...new Set([...ma.keys(), ...mb.keys()])].sort()) {
    const va = ma.get(k), vb = mb.get(k);
    if (!va || !vb || va.formula !== vb.formula) out.push({ key: k, a: va, b: vb });
  }
  return out;
}

function statusText(s, sideA, sideB) {
  if (s === "only_a") return t("only_in", { side: sideA });
  if (s === "only_b") return t("only_in", { side: sideB });
  if (s === "dates") return t("dates_differ");
  return t(s);
}

function sideName(detail) {
  return `${pick(detail.policy.name)} ${detail.policy.version}`;
}

function diffValue(a, b, unit) {
  if (typeof a === "number" && typeof b === "number") {
    const d = b - a;
    if (Math.abs(d) < 1e-9) return { text: "0", same: true };
    const text = fmtValue(Math.abs(d), unit);
    return { text: `${d > 0 ? "+" : "−"}${text}`, same: false, sign: d > 0 ? "up" : "down" };
  }
  const same = sameJSON(a, b);
  return { text: same ? t("same") : t("differs"), same };
}

function effectTables(ra, rb, da, db, showSame) {
  const wrap = el("div", { class: "effect" });
  const entities = [...new Set([...Object.keys(ra.entities), ...Object.keys(rb.entities)])];
  for (const entity of entities) {
    const rowsA = ra.entities[entity] || [], rowsB = rb.entities[entity] || [];
    const ids = [...new Set([...rowsA.map((r) => r.id), ...rowsB.map((r) => r.id)])];
    const varOf = (name) => da.variables.find((v) => v.entity === entity && v.name === name) ||
      db.variables.find((v) => v.entity === entity && v.name === name);
    const body = el("tbody");
    for (const id of ids) {
      const a = rowsA.find((r) => r.id === id) || {}, b = rowsB.find((r) => r.id === id) || {};
      const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((n) => n !== "id");
      for (const name of names) {
        const v = varOf(name), unit = v && v.unit;
        const d = diffValue(a[name], b[name], unit);
        if (d.same && !showSame) continue;
        body.append(el("tr", { class: d.same ? "same" : "changed", "data-name": name, "data-id": id },
          el("th", { scope: "row" }, el("code", { class: "rowid", text: id }), " ", v ? bi(v.label) : null,
            el("code", { class: "ident", text: name })),
          el("td", { class: "num", text: name in a ? fmtValue(a[name], unit) : "—" }),
          el("td", { class: "num", text: name in b ? fmtValue(b[name], unit) : "—" }),
          el("td", { class: `num diff ${d.sign || ""}`, text: d.text })));
      }
    }
    if (!body.childElementCount) continue;
    wrap.append(el("div", { class: "table-wrap" }, el("table", { class: "compare-table", "data-entity": entity },
      el("caption", {}, bi(entityLabel(entity)), el("code", { class: "ident", text: entity })),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: t("item") }),
        el("th", { scope: "col", class: "num", text: `${t("side_a")} · ${sideName(da)}` }),
        el("th", { scope: "col", class: "num", text: `${t("side_b")} · ${sideName(db)}` }),
        el("th", { scope: "col", class: "num", text: t("difference") }))),
      body)));
  }
  return wrap;
}

function renderCompare() {
  const out = clear($("cmp-result"));
  if (!last) return;
  const { da, db, ra, rb } = last;
  const showSame = $("cmp-all").checked;
  const nameA = `${t("side_a")} · ${sideName(da)}`, nameB = `${t("side_b")} · ${sideName(db)}`;
  const diffs = paramDiff(da, db);
  const shown = diffs.filter((d) => showSame || d.status !== "same");
  out.append(el("h2", { id: "cmp-params-h", text: showSame ? t("param_all") : t("param_diff") }));
  if (!shown.length) out.append(el("p", { class: "ok", text: t("no_diff") }));
  else {
    out.append(el("div", { class: "table-wrap" }, el("table", { class: "compare-table params" },
      el("caption", { class: "sr-only", text: t("param_diff") }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: t("name") }),
        el("th", { scope: "col", text: nameA }), el("th", { scope: "col", text: nameB }),
        el("th", { scope: "col", text: t("status") }))),
      el("tbody", {}, ...shown.map((d) => el("tr", { class: d.status === "same" ? "same" : "changed", "data-name": d.name },
        el("th", { scope: "row" }, bi((d.a || d.b).label), el("code", { class: "ident", text: d.name })),
        el("td", { class: "pre", text: paramText(d.a) }, d.a && d.a.source ? el("span", { class: "clause small", text: d.a.source }) : null),
        el("td", { class: "pre", text: paramText(d.b) }, d.b && d.b.source ? el("span", { class: "clause small", text: d.b.source }) : null),
        el("td", { class: `status-${d.status}`, text: statusText(d.status, t("side_a"), t("side_b")) })))))));
  }
  const rules = ruleDiff(da, db);
  out.append(el("h2", { text: t("rule_diff") }));
  if (!rules.length) out.append(el("p", { class: "ok", text: t("no_rule_diff") }));
  else {
    out.append(el("details", { class: "rules-diff" }, el("summary", { text: `${t("rule_diff")} · ${rules.length}` }),
      el("div", { class: "table-wrap" }, el("table", { class: "compare-table" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: t("name") }),
          el("th", { scope: "col", text: nameA }), el("th", { scope: "col", text: nameB }))),
        el("tbody", {}, ...rules.map((r) => el("tr", {},
          el("th", { scope: "row" }, bi((r.a || r.b).label), el("code", { class: "ident", text: r.key })),
          el("td", {}, r.a ? el("code", { class: "formula", text: r.a.formula }) : "—"),
          el("td", {}, r.b ? el("code", { class: "formula", text: r.b.formula }) : "—"))))))));
  }
  out.append(el("h2", { id: "cmp-effect-h", text: t("effect_h") }));
  if (!ra && !rb) { out.append(el("p", { class: "muted", text: t("no_situation") })); return; }
  const failed = [[ra, t("side_a")], [rb, t("side_b")]].filter(([r]) => !r.ok);
  for (const [fit, side] of [[last.fitA, t("side_a")], [last.fitB, t("side_b")]]) {
    if (fit && fit.left.length) out.append(el("p", { class: "muted left-out", text: t("left_out", { side, fields: fit.left.join(", ") }) }));
  }
  for (const [r, side] of failed) {
    out.append(el("h3", { text: t("side_failed", { side }) }), errorList(r));
    if ((r.data?.detail || []).some((f) => f.path === "period")) out.append(el("p", { class: "muted", text: t("period_hint") }));
  }
  if (failed.length) return;
  const wa = warningsBox(ra.data, nameA), wb = warningsBox(rb.data, nameB);
  const nw = ra.data.warnings.length + rb.data.warnings.length;
  if (nw) out.append(el("details", { class: "warnings-fold" }, el("summary", { text: `${t("warnings")} · ${nw}` }), wa, wb));
  out.append(effectTables(ra.data, rb.data, da, db, showSame));
}

export function redrawCompare() { renderCompare(); }

export async function setupCompare() {
  $("cmp-demo").addEventListener("change", async (e) => {
    if (!e.target.value) return;
    const r = await api(`/v1/demo/${encodeURIComponent(e.target.value)}`);
    if (r.ok) $("cmp-json").value = JSON.stringify(r.data, null, 2);
  });
  $("cmp-all").addEventListener("change", renderCompare);
  const list = async () => (await cities()).data || [];
  $("cmp-a-city").addEventListener("change", async () => fillVersions($("cmp-a-city"), $("cmp-a-version"), await list()));
  $("cmp-b-city").addEventListener("change", async () => fillVersions($("cmp-b-city"), $("cmp-b-version"), await list()));
  $("compare-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = $("cmp-status");
    const side = (s) => ({ city: $(`cmp-${s}-city`).value, version: $(`cmp-${s}-version`).value });
    const A = side("a"), B = side("b");
    let situation = null;
    const text = $("cmp-json").value.trim();
    if (text) {
      try {
        situation = JSON.parse(text);
      } catch (err) {
        status.textContent = t("bad_json", { msg: err.message });
        return;
      }
    }
    status.textContent = t("comparing");
    $("cmp-run").disabled = true;
    const evaluate = (s, body) => api(`/v1/cities/${encodeURIComponent(s.city)}/versions/${encodeURIComponent(s.version)}/evaluate`,
      { method: "POST", body });
    const [pa, pb] = await Promise.all([cityDetail(A.city, A.version), cityDetail(B.city, B.version)]);
    if (!pa.ok || !pb.ok) {
      $("cmp-run").disabled = false;
      status.textContent = t("request_failed", { status: (pa.ok ? pb : pa).status });
      clear($("cmp-result")).append(errorList(pa.ok ? pb : pa));
      return;
    }
    const cross = situation && A.city !== B.city && situation.entities && typeof situation.entities === "object";
    const fitA = cross ? fitted(situation, pa.data, pb.data) : null, fitB = cross ? fitted(situation, pb.data, pa.data) : null;
    const [ra, rb] = await Promise.all([situation ? evaluate(A, fitA ? fitA.situation : situation) : null,
      situation ? evaluate(B, fitB ? fitB.situation : situation) : null]);
    $("cmp-run").disabled = false;
    status.textContent = t("done");
    last = { da: pa.data, db: pb.data, ra, rb, fitA, fitB };
    renderCompare();
    $("cmp-params-h").setAttribute("tabindex", "-1");
    $("cmp-params-h").focus();
  });
}

export async function refreshCompareLists(route) {
  const [c, d] = await Promise.all([cities(), demos()]);
  if (c.ok) {
    const real = c.data.filter((x) => !x.id.startsWith("_"));
    const all = [...real, ...c.data.filter((x) => x.id.startsWith("_"))];
    const a = $("cmp-a-city"), b = $("cmp-b-city");
    const firstTime = !a.value;
    fillCitySelect(a, all, route && route.a);
    fillCitySelect(b, all, route && route.b);
    let olderA = null;
    if (firstTime && !(route && (route.a || route.b))) {
      // a city with several versions: compare its two latest; otherwise the first two cities
      const many = all.find((x) => x.versions.length > 1);
      if (many) {
        a.value = many.id; b.value = many.id;
        olderA = many.versions[many.versions.length - 2].version;
      } else if (all.length > 1) b.value = all[1].id;
    }
    fillVersions(a, $("cmp-a-version"), c.data, olderA || $("cmp-a-version").value);
    fillVersions(b, $("cmp-b-version"), c.data, $("cmp-b-version").value);
  }
  if (d.ok) fillDemoSelect($("cmp-demo"), d.data);
}
