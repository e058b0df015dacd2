// Band tables (分段累计) as inline SVG charts drawn from the policy's own parameter values.
import { el, fmtNumber, fmtPct, pick, svg, t } from "./util.js";

// The engine's rule: each band's rate applies to the part of the amount inside it.
export function cumulative(x, edges, rates) {
  let total = 0, low = 0;
  rates.forEach((rate, i) => {
    const high = i < edges.length ? edges[i] : Infinity;
    if (x > low) total += (Math.min(x, high) - low) * rate;
    low = high;
  });
  return total;
}

export function segments(edges, rates) {
  return rates.map((rate, i) => ({ lo: i === 0 ? 0 : edges[i - 1], hi: i < edges.length ? edges[i] : null, rate }));
}

function niceStep(span, count) {
  const raw = span / count, pow = 10 ** Math.floor(Math.log10(raw));
  const m = raw / pow;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * pow;
}

function ticks(max, count = 5) {
  const step = niceStep(max, count), out = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

// How the parameter is used: bands(amount, name, base=…) in the policy's formulas.
export function bandUsage(name, variables) {
  const re = new RegExp(`bands\\(\\s*([\\w.]+)\\s*,\\s*${name}\\s*(?:,\\s*base\\s*=\\s*([\\w.]+)\\s*)?\\)`);
  for (const v of variables || []) {
    const m = v.formula && v.formula.match(re);
    if (m) {
      const find = (n) => variables.find((x) => x.entity === v.entity && x.name === n);
      return { variable: v, amount: find(m[1]) || { name: m[1] }, base: m[2] ? (find(m[2]) || { name: m[2] }) : null };
    }
  }
  return null;
}

const W = 520, H = 310, M = { l: 52, r: 18, t: 34, b: 50 };

function frame(xmax, ymax, xLabel, yLabel, fmtX, fmtY, xTicks, yTicks) {
  const iw = W - M.l - M.r, ih = H - M.t - M.b;
  const X = (v) => M.l + (v / xmax) * iw, Y = (v) => M.t + ih - (v / ymax) * ih;
  const g = svg("g", { class: "axes" });
  for (const v of yTicks) {
    g.append(svg("line", { x1: M.l, x2: M.l + iw, y1: Y(v), y2: Y(v), class: "grid" }));
    g.append(svg("text", { x: M.l - 8, y: Y(v) + 4, "text-anchor": "end", class: "tick" }, fmtY(v)));
  }
  for (const v of xTicks) {
    g.append(svg("line", { x1: X(v), x2: X(v), y1: M.t + ih, y2: M.t + ih + 5, class: "axis" }));
    g.append(svg("text", { x: X(v), y: M.t + ih + 19, "text-anchor": "middle", class: "tick" }, fmtX(v)));
  }
  g.append(svg("line", { x1: M.l, x2: M.l + iw, y1: M.t + ih, y2: M.t + ih, class: "axis" }));
  g.append(svg("line", { x1: M.l, x2: M.l, y1: M.t, y2: M.t + ih, class: "axis" }));
  g.append(svg("text", { x: M.l + iw / 2, y: H - 8, "text-anchor": "middle", class: "axis-label" }, xLabel));
  g.append(svg("text", { x: 8, y: 16, "text-anchor": "start", class: "axis-label" }, `↑ ${yLabel}`));
  return { g, X, Y, iw, ih };
}

let chartCount = 0;
function chartSvg(titleText, descText) {
  const id = `chart-${++chartCount}`;
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-t ${id}-d`, class: "chart",
    preserveAspectRatio: "xMidYMid meet" },
  svg("title", { id: `${id}-t` }, titleText), svg("desc", { id: `${id}-d` }, descText));
}

// One band table (one dated value of a `bands` parameter): two charts and a table.
export function bandFigure(param, value, usage, ratio) {
  const { edges, rates } = value;
  const last = edges.length ? edges[edges.length - 1] : 1;
  const xmax = ticks(last * 1.5, 5).find((v) => v >= last * 1.5) || last * 1.5;
  const xt = ticks(xmax, 5);
  const fmtX = ratio ? (v) => fmtPct(v, 2) : (v) => fmtNumber(v);
  const amount = usage ? pick(usage.amount.label) || usage.amount.name : t("amount_plain");
  const base = usage && usage.base ? pick(usage.base.label) || usage.base.name : null;
  const xLabel = ratio && base ? t("amount_ratio", { a: amount, b: base }) : amount;
  const share = usage ? pick(usage.variable.label) || usage.variable.name : null;
  const yLabel = ratio && base && share ? t("chart_cum_of", { a: share, b: base }) : t("chart_cum");
  const label = pick(param.label);
  const segs = segments(edges, rates);
  const desc = segs.map((s) => `${s.hi === null ? t("above", { a: fmtX(s.lo) }) : `${fmtX(s.lo)}–${fmtX(s.hi)}`}: ${fmtPct(s.rate)}`).join("; ");

  // 1. cumulative share S(x), with the whole amount (y = x) for reference.
  const ymax = xmax;
  const c1 = chartSvg(`${label} — ${t("chart_cum")}`, desc);
  const f1 = frame(xmax, ymax, xLabel, yLabel, fmtX, fmtX, xt, ticks(ymax, 5));
  c1.append(f1.g);
  c1.append(svg("line", { x1: f1.X(0), y1: f1.Y(0), x2: f1.X(xmax), y2: f1.Y(xmax), class: "ref" }));
  const pts = [0, ...edges.filter((e) => e < xmax), xmax];
  c1.append(svg("polyline", { class: "curve", points: pts.map((x) => `${f1.X(x).toFixed(1)},${f1.Y(cumulative(x, edges, rates)).toFixed(1)}`).join(" ") }));
  for (const e of edges) {
    const y = cumulative(e, edges, rates);
    c1.append(svg("line", { x1: f1.X(e), x2: f1.X(e), y1: f1.Y(0), y2: f1.Y(y), class: "edge" }));
    c1.append(svg("circle", { cx: f1.X(e), cy: f1.Y(y), r: 4, class: "dot" },
      svg("title", {}, `${fmtX(e)} → ${fmtX(y)}`)));
    c1.append(svg("text", { x: f1.X(e) + 6, y: f1.Y(y) - 8, class: "point-label" }, fmtX(y)));
  }

  // 2. marginal rate per band (bars) and the overall average S(x)/x (dashed).
  const c2 = chartSvg(`${label} — ${t("chart_marginal")}`, desc);
  const f2 = frame(xmax, 1, xLabel, t("rate"), fmtX, (v) => fmtPct(v, 0), xt, [0, 0.2, 0.4, 0.6, 0.8, 1]);
  c2.append(f2.g);
  segs.forEach((s, i) => {
    const hi = s.hi === null ? xmax : Math.min(s.hi, xmax);
    if (hi <= s.lo) return;
    c2.append(svg("rect", { x: f2.X(s.lo) + 1, y: f2.Y(s.rate), width: Math.max(0, f2.X(hi) - f2.X(s.lo) - 2),
      height: f2.Y(0) - f2.Y(s.rate), class: `bar bar-${i % 4}` },
    svg("title", {}, `${s.hi === null ? t("above", { a: fmtX(s.lo) }) : `${fmtX(s.lo)}–${fmtX(s.hi)}`}: ${fmtPct(s.rate)}`)));
    const inside = f2.Y(0) - f2.Y(s.rate) > 26;
    c2.append(svg("text", { x: (f2.X(s.lo) + f2.X(hi)) / 2, y: inside ? f2.Y(s.rate) + 18 : f2.Y(s.rate) - 6,
      "text-anchor": "middle", class: "bar-label" }, fmtPct(s.rate)));
  });
  const n = 120, avg = [];
  for (let k = 1; k <= n; k += 1) {
    const x = (xmax * k) / n;
    avg.push(`${f2.X(x).toFixed(1)},${f2.Y(cumulative(x, edges, rates) / x).toFixed(1)}`);
  }
  avg.unshift(`${f2.X(0).toFixed(1)},${f2.Y(rates[0]).toFixed(1)}`);
  c2.append(svg("polyline", { class: "avg", points: avg.join(" ") }));

  const legend = el("ul", { class: "legend" },
    el("li", {}, el("span", { class: "key key-curve", "aria-hidden": "true" }), t("chart_cum")),
    el("li", {}, el("span", { class: "key key-ref", "aria-hidden": "true" }), t("chart_full")),
    el("li", {}, el("span", { class: "key key-bar", "aria-hidden": "true" }), t("chart_marginal")),
    el("li", {}, el("span", { class: "key key-avg", "aria-hidden": "true" }), t("chart_avg")));

  const table = el("table", { class: "bands-table" },
    el("caption", { class: "sr-only", text: `${label}: ${desc}` }),
    el("thead", {}, el("tr", {}, ...[t("band"), t("range"), t("rate"), t("cum_at_end")].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...segs.map((s, i) => el("tr", {},
      el("td", { text: String(i + 1) }),
      el("td", { text: s.hi === null ? t("above", { a: fmtX(s.lo) }) : `${fmtX(s.lo)}–${fmtX(s.hi)}` }),
      el("td", { class: "num", text: fmtPct(s.rate) }),
      el("td", { class: "num", text: s.hi === null ? "—" : fmtX(cumulative(s.hi, edges, rates)) })))));

  return el("div", { class: "band-figure" },
    el("div", { class: "charts" }, el("figure", {}, c1, el("figcaption", { text: t("chart_cum") })),
      el("figure", {}, c2, el("figcaption", { text: `${t("chart_marginal")} · ${t("chart_avg")}` }))),
    legend, table);
}
