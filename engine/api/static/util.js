// Shared helpers: elements, language, formatting, API calls, clause numbers (公用函数).

export const state = { lang: "zh" };

// UI strings: [Chinese, English].
const T = {
  skip: ["跳到正文", "Skip to content"],
  nav: ["主要栏目", "Main sections"],
  nav_cities: ["政策", "Policies"],
  nav_try: ["试算", "Try it"],
  nav_check: ["政策校验", "Check a policy"],
  nav_compare: ["比较", "Compare"],
  cities_h: ["城市政策", "City policies"],
  cities_lead: ["各城市医保支付政策：按通知条款列出每条规则和参数，注明取值、生效日期和出处。",
    "Each city's payment policy: every rule and parameter by the notice's clauses, with values, effective dates and sources."],
  back_cities: ["← 全部城市", "← All cities"],
  try_h: ["试算", "Try it"],
  try_lead: ["选择演示数据，或粘贴、上传一个情形（JSON，或每个实体一个 CSV 文件），按政策计算；点击结果中的数值查看计算过程和条款。",
    "Choose a demo, or paste or upload a situation (JSON, or one CSV file per entity) and evaluate it; click a value in the results to see how it was computed and which clause says so."],
  city: ["城市", "City"],
  demo: ["演示数据", "Demo situation"],
  demo_none: ["（不使用演示数据）", "(no demo)"],
  situation_json: ["情形（JSON）", "Situation (JSON)"],
  situation_json_same: ["同一情形（JSON，可选）", "The same situation (JSON, optional)"],
  situation_help: ["格式：{\"period\": \"2024\", \"entities\": {\"community\": [{\"id\": \"C1\", …}]}}",
    "Shape: {\"period\": \"2024\", \"entities\": {\"community\": [{\"id\": \"C1\", …}]}}"],
  csv_legend: ["从 CSV 导入（每个实体一个文件）", "Import CSV (one file per entity)"],
  period: ["期间", "Period"],
  period_help: ["年份“2024”或月份“2024-06”", "a year \"2024\" or a month \"2024-06\""],
  csv_files: ["CSV 文件（文件名即实体名，如 community.csv）", "CSV files (the file name is the entity, e.g. community.csv)"],
  csv_entity: ["实体", "Entity"],
  csv_paste: ["或粘贴 CSV（第一行为字段名）", "or paste CSV (first line: field names)"],
  csv_add: ["加入情形", "Add to the situation"],
  csv_added: ["已加入 {n} 行：{entity}", "Added {n} rows: {entity}"],
  csv_empty: ["CSV 中没有数据行", "The CSV has no data rows"],
  csv_unknown_entity: ["无法从文件名“{file}”判断实体，请选择实体后粘贴", "Cannot tell the entity from \"{file}\"; choose the entity and paste instead"],
  upload_json: ["上传 JSON 文件", "Upload a JSON file"],
  evaluate: ["计算", "Evaluate"],
  evaluating: ["计算中…", "Evaluating…"],
  done: ["完成", "Done"],
  bad_json: ["JSON 格式有误：{msg}", "The JSON is not valid: {msg}"],
  check_h: ["政策校验", "Check a policy"],
  check_lead: ["发布前检查政策文件：粘贴或上传 YAML，逐条列出问题，并在原文中标出所在行。",
    "Check a policy file before publishing it: paste or upload the YAML; each problem is listed and its line is marked in the text."],
  upload_yaml: ["上传 YAML 文件", "Upload a YAML file"],
  file_name: ["文件名", "File name"],
  policy_text: ["政策文本（YAML）", "Policy text (YAML)"],
  check: ["检查", "Check"],
  checking: ["检查中…", "Checking…"],
  valid: ["未发现问题，可以发布。", "No problems found: ready to publish."],
  invalid: ["发现 {n} 个问题", "{n} problem(s) found"],
  listing: ["原文（标出有问题的行）", "The text, problem lines marked"],
  line_col: ["第 {line} 行，第 {col} 列", "line {line}, column {col}"],
  line_only: ["第 {line} 行", "line {line}"],
  no_line: ["（无行号）", "(no line)"],
  show_line: ["在原文中查看", "Show in the text"],
  empty_text: ["请先粘贴或上传政策文本", "Paste or upload a policy first"],
  compare_h: ["比较", "Compare"],
  compare_lead: ["并排比较两个城市或同一城市的两个版本：哪些参数不同，同一情形的计算结果相差多少。",
    "Two cities, or two versions of one city, side by side: which parameters differ, and what that does to the same situation."],
  side_a: ["甲方", "Side A"],
  side_b: ["乙方", "Side B"],
  version: ["版本", "Version"],
  compare: ["比较", "Compare"],
  comparing: ["比较中…", "Comparing…"],
  show_same: ["也显示相同的参数", "also show parameters that are the same"],
  explain_h: ["计算过程", "How it was computed"],
  close: ["关闭", "Close"],
  foot: ["政策即数据：每个数值都可追溯到通知条款。", "Policies are data: every value traces back to a clause of the notice."],
  api_docs: ["接口文档", "API docs"],
  // policy page
  notice: ["文号", "Notice"],
  title: ["文件标题", "Title"],
  issuer: ["发布机关", "Issued by"],
  issued: ["发布日期", "Issued"],
  effective: ["有效期", "In force"],
  open_ended: ["至今", "open-ended"],
  eff_from: ["{from} 起", "from {from}"],
  eff_range: ["{from} 至 {to}", "{from} to {to}"],
  template: ["模板", "template"],
  empty: ["（空）", "(empty)"],
  t_bool: ["是/否", "yes/no"],
  t_string: ["文本", "text"],
  t_date: ["日期", "date"],
  versions: ["版本", "Versions"],
  open_policy: ["查看政策", "Open the policy"],
  n_params: ["{n} 个参数", "{n} parameters"],
  n_rules: ["{n} 条计算规则", "{n} rules"],
  n_inputs: ["{n} 项输入数据", "{n} inputs"],
  n_assumed: ["{n} 项假设", "{n} assumptions"],
  contents: ["按条款浏览", "By clause"],
  clause: ["条款", "Clause"],
  clause_word: ["条款", "Clause"],
  parameters: ["参数", "Parameters"],
  rules: ["计算规则", "Rules"],
  inputs: ["输入数据", "Inputs"],
  tables: ["查找表", "Lookup tables"],
  name: ["名称", "Name"],
  value: ["取值", "Value"],
  from_date: ["自 {d} 起", "from {d}"],
  unit: ["单位", "Unit"],
  formula: ["公式", "Formula"],
  note: ["说明", "Note"],
  entity: ["实体", "Entity"],
  assumed: ["假设", "Assumed"],
  assumed_group: ["假设（通知未明确规定）", "Assumed (the notice does not say)"],
  assumed_lead: ["以下取值或规则并非出自通知原文，而是在通知未作规定时的假设，标明了理由。发布前请核实。",
    "These values and rules are not in the notice: they are assumptions where it is silent, each with its reason. Check them before publishing."],
  assumed_why: ["假设理由：", "Why assumed: "],
  cited_clause: ["相关条款：", "Related clause: "],
  no_clause: ["无", "none"],
  no_clause_title: ["未引用条款", "no clause cited"],
  readings_h: ["条文理解", "Readings of the notice"],
  readings_lead: ["政策对通知未写明之处的理解；“待定”者在主管部门确认前沿用。", "How the policy reads what the notice leaves unsaid; an open reading is used until the bureau decides."],
  reading_status: ["状态", "Status"],
  reading_open: ["待定", "open"],
  reading_settled: ["已定", "settled"],
  affects: ["涉及", "Affects"],
  unsourced_group: ["未注明条款（基础数据）", "No clause cited (basic data)"],
  unsourced_lead: ["结算所需的基础数据字段，通知未对其作专门规定。", "Basic data fields needed for settlement, not specific to the notice."],
  bands_h: ["分段累计表图示", "Band tables, charted"],
  bands_lead: ["每个分段累计参数：左图为累计分担额随比例变化的曲线，右图为各段边际比例与总体平均比例。",
    "Each cumulative band parameter: on the left the cumulative share against the amount ratio, on the right the marginal rate of each band and the overall average."],
  chart_cum: ["累计分担额（占基数比例）", "Cumulative share (ratio of the base)"],
  chart_cum_of: ["{a}占{b}比例", "{a} as a share of {b}"],
  chart_marginal: ["各段边际比例", "Marginal rate per band"],
  chart_avg: ["总体平均比例", "Overall average rate"],
  chart_full: ["全额（100%）参考线", "Whole amount (100%) reference"],
  amount_ratio: ["{a}占{b}比例", "{a} as a share of {b}"],
  amount_plain: ["金额", "amount"],
  band: ["分段", "Band"],
  range: ["区间", "Range"],
  rate: ["比例", "Rate"],
  cum_at_end: ["段末累计", "Cumulative at band end"],
  above: ["{a} 以上", "above {a}"],
  used_by: ["用于：", "Used by: "],
  rows: ["{n} 行", "{n} rows"],
  key: ["键", "Key"],
  columns: ["列", "Columns"],
  file: ["文件", "File"],
  yes: ["是", "yes"],
  no: ["否", "no"],
  loading: ["加载中…", "Loading…"],
  // results
  results: ["计算结果", "Results"],
  result_policy: ["所用政策：{city}（{notice}，版本 {version}），期间 {period}", "Policy used: {city} ({notice}, version {version}), period {period}"],
  warnings: ["提示", "Warnings"],
  click_hint: ["点击数值可查看计算过程。", "Click a value to see how it was computed."],
  item: ["项目", "Item"],
  errors: ["情形有误", "The situation has faults"],
  error_at: ["位置", "Where"],
  request_failed: ["请求失败（{status}）", "The request failed ({status})"],
  // explanation
  inputs_used: ["所用数值", "Values used"],
  supplied: ["由情形直接给出", "given in the situation"],
  expand: ["展开", "expand"],
  param_word: ["参数", "parameter"],
  child_rows: ["下级记录 {n} 条（最多列出 20 条）", "{n} child rows (at most 20 listed)"],
  no_trace: ["没有该数值的计算记录", "No explanation was recorded for this value"],
  // compare
  param_diff: ["不同的参数", "Parameters that differ"],
  param_all: ["参数", "Parameters"],
  rule_diff: ["公式不同的规则", "Rules whose formula differs"],
  no_diff: ["参数全部相同", "Every parameter is the same"],
  no_rule_diff: ["规则公式全部相同", "Every rule's formula is the same"],
  only_in: ["仅{side}有", "only in {side}"],
  differs: ["不同", "differs"],
  dates_differ: ["取值相同，生效日期不同", "same values, different dates"],
  same: ["相同", "same"],
  status: ["比较", "Comparison"],
  effect_h: ["对同一情形的影响", "Effect on the same situation"],
  difference: ["差额（乙−甲）", "Difference (B − A)"],
  no_situation: ["未提供情形，只比较参数。", "No situation given: parameters only."],
  side_failed: ["{side}计算失败", "{side} could not be evaluated"],
  period_hint: ["提示：期间须在所选版本的有效期内；比较两个版本时可用两版本都覆盖的期间，如 {\"start\": …, \"end\": …}。",
    "Hint: the period must fall in the chosen version's effective period; to compare two versions use a period both cover, e.g. {\"start\": …, \"end\": …}."],
};

// More UI strings, from the module that uses them: {key: [Chinese, English]}.
export function addStrings(more) { Object.assign(T, more); }

export function t(key, vars = {}) {
  const pair = T[key];
  let s = pair ? pair[state.lang === "en" ? 1 : 0] : key;
  for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

export const langTag = () => (state.lang === "en" ? "en" : "zh-CN");

// el("div", {class: "x", onclick: fn, "aria-label": "…"}, child, "text", …)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

const SVGNS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// A {zh, en} label: the chosen language first; in English the Chinese term follows, smaller.
export function bi(label, cls = "") {
  if (!label) return el("span", { class: cls });
  if (typeof label === "string") return el("span", { class: cls, text: label });
  const zh = label.zh || label.en || "", en = label.en || label.zh || "";
  if (state.lang === "en") {
    return el("span", { class: `bi ${cls}` }, el("span", { lang: "en", text: en }),
      zh && zh !== en ? el("span", { class: "alt", lang: "zh-CN", text: zh }) : null);
  }
  return el("span", { class: `bi ${cls}`, lang: "zh-CN", text: zh });
}

// A note or a reason, {zh, en} or one plain text, as a paragraph in the reader's language.
export function textPara(text, cls, ...before) {
  const bilingual = text && typeof text === "object" && text.zh !== text.en;
  return el("p", { class: cls, lang: bilingual ? langTag() : null }, ...before, pick(text).trim());
}

// The clause cell: the clause in a badge, or a distinct "none" (not a dash, which reads like 一).
export const clauseOrNone = (source) => (source ? el("span", { class: "clause", lang: "zh-CN", text: source })
  : el("span", { class: "no-clause", title: t("no_clause_title"), text: t("no_clause") }));

export const pick = (label) => (!label ? "" : typeof label === "string" ? label
  : (state.lang === "en" ? label.en || label.zh : label.zh || label.en) || "");

// Both messages, the chosen language first.
export function bilingualMessage(zh, en, cls = "msg") {
  const first = state.lang === "en" ? [en, "en"] : [zh, "zh-CN"];
  const second = state.lang === "en" ? [zh, "zh-CN"] : [en, "en"];
  return el("div", { class: cls },
    first[0] ? el("p", { class: "msg-main", lang: first[1], text: first[0] }) : null,
    second[0] && second[0] !== first[0] ? el("p", { class: "msg-alt", lang: second[1], text: second[0] }) : null);
}

// ---------- numbers and values ----------

const UNITS = {
  yuan: ["元", "yuan"], ratio: ["比例", "ratio"], days: ["天", "days"], months: ["月", "months"],
  points: ["点", "points"], score: ["分", "score"], level: ["级", "level"], persons: ["人", "persons"],
  count: ["个", "count"], yuan_per_person: ["元/人", "yuan/person"], yuan_per_point: ["元/点", "yuan/point"],
};
export const unitName = (u) => (!u ? "" : UNITS[u] ? UNITS[u][state.lang === "en" ? 1 : 0] : u);

const ENTITIES = {
  fund: { zh: "统筹基金", en: "pooled fund" }, community: { zh: "医共体", en: "medical community" },
  institution: { zh: "定点医疗机构", en: "contracted institution" }, episode: { zh: "转诊链", en: "referral chain" },
  account: { zh: "机构-基金结算单元", en: "institution-fund account" }, claim: { zh: "结算记录", en: "settlement record" },
};
export const entityLabel = (name) => ENTITIES[name] || { zh: name, en: name };

export function fmtNumber(v, maxDigits = 6) {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  const digits = abs >= 1000 ? 2 : abs >= 1 ? 4 : maxDigits;
  return v.toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function fmtPct(v, digits = 4) {
  if (!Number.isFinite(v)) return String(v);
  const p = v * 100;
  return `${parseFloat(p.toFixed(digits)).toLocaleString("en-US", { maximumFractionDigits: digits })}%`;
}

export function fmtMoney(v) {
  return v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function fmtValue(v, unit, kind) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? t("yes") : t("no");
  if (typeof v === "number") {
    if (unit === "yuan") return fmtMoney(v);
    if (unit === "ratio") return fmtPct(v);
    return fmtNumber(v);
  }
  if (typeof v === "string") return v === "" ? t("empty") : v;
  if (kind === "bands" || (v && Array.isArray(v.edges) && Array.isArray(v.rates))) return bandsText(v, unit);
  if (typeof v === "object") {
    return Object.entries(v).map(([k, x]) => `${k}: ${fmtValue(x, unit)}`).join(" · ");
  }
  return String(v);
}

export function bandsText(b, unit = "ratio", ratioEdges = true) {
  const fe = (x) => (ratioEdges ? fmtPct(x) : fmtNumber(x));
  const parts = [];
  let lo = 0;
  b.rates.forEach((r, i) => {
    const hi = i < b.edges.length ? b.edges[i] : null;
    const range = hi === null ? t("above", { a: fe(lo) }) : `${fe(lo)}–${fe(hi)}`;
    parts.push(`${range}: ${unit === "ratio" ? fmtPct(r) : fmtNumber(r)}`);
    lo = hi;
  });
  return parts.join("；");
}

// ---------- clauses (条款) ----------

const DIGIT = { 一: 1, 二: 2, 三: 3, 四: 4, 五: 5, 六: 6, 七: 7, 八: 8, 九: 9 };
export function cnNumber(s) {
  if (!s) return 0;
  if (s in DIGIT) return DIGIT[s];
  const m = s.match(/^([一二三四五六七八九])?十([一二三四五六七八九])?$/);
  if (m) return (m[1] ? DIGIT[m[1]] : 1) * 10 + (m[2] ? DIGIT[m[2]] : 0);
  return 999;
}

const HEAD = /^([一二三四五六七八九十]+)(（([一二三四五六七八九十]+)）)?/;
// The leading clause of a source: "四（四）2" → "四（四）", "二（二）1（7）" → "二（二）", "三" → "三".
export function clauseHead(source) {
  if (!source) return null;
  const m = String(source).match(HEAD);
  return m ? m[0] : String(source).split(/[\s,，;；、]/)[0];
}

export function clauseOrder(head) {
  const m = String(head).match(HEAD);
  if (!m) return [1000, 0, head];
  return [cnNumber(m[1]), m[3] ? cnNumber(m[3]) : 0, head];
}

export function compareClauses(a, b) {
  const x = clauseOrder(a), y = clauseOrder(b);
  return x[0] - y[0] || x[1] - y[1] || String(x[2]).localeCompare(String(y[2]));
}

// ---------- API ----------

export async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: { accept: "application/json" } };
  if (options.body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    return { ok: false, status: 0, data: { error: "network", detail: [{ path: "", message: String(err), message_zh: "无法连接服务" }] } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { ok: response.ok, status: response.status, data, headers: response.headers };
}

const cache = new Map();
export function cached(path) {
  if (!cache.has(path)) {
    cache.set(path, api(path).then((r) => {
      if (!r.ok) cache.delete(path);
      return r;
    }));
  }
  return cache.get(path);
}

export const cities = () => cached("/v1/cities");
export const demos = () => cached("/v1/demo");
export const cityDetail = (city, version) =>
  cached(`/v1/cities/${encodeURIComponent(city)}${version ? `?version=${encodeURIComponent(version)}` : ""}`);

// Errors as a list: {error, detail: [{path, message, message_zh}]}
export function errorList(r) {
  const detail = (r.data && Array.isArray(r.data.detail)) ? r.data.detail : [];
  const box = el("div", { class: "errors", role: "alert" },
    el("h3", { text: r.status === 422 ? t("errors") : t("request_failed", { status: r.status }) }));
  const ul = el("ul");
  for (const f of detail) {
    ul.append(el("li", {},
      f.path ? el("code", { class: "path", text: f.path }) : null,
      bilingualMessage(f.message_zh || "", f.message || "")));
  }
  if (!detail.length && r.data && r.data.detail) ul.append(el("li", { text: JSON.stringify(r.data.detail) }));
  box.append(ul);
  return box;
}

export function readFile(input) {
  const file = input.files && input.files[0];
  if (!file) return Promise.resolve(null);
  return file.text().then((text) => ({ name: file.name, text }));
}
