// Inline SVG charts for the Reportes page (no library): Pareto (bars + cumulative % line on a
// secondary 0-100 % axis + the 80 % reference), horizontal bars, and grouped vertical bars.
// Every chart returns a DOM node; an empty series returns a "Sin datos" box instead of an
// empty or broken drawing.

import { el } from "./common.js";

const NS = "http://www.w3.org/2000/svg";
const INT = new Intl.NumberFormat("es-CO", { maximumFractionDigits: 0 });
const ONE = new Intl.NumberFormat("es-CO", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Half-up rounding to one decimal (the API sends two; 0.05 steps must not fall to binary noise).
export function round1(x) {
  return Math.sign(x) * Math.round(Math.abs(x) * 10 + 1e-7) / 10;
}

export function fmtInt(x) {
  return x === null || x === undefined ? "–" : INT.format(x);
}

// A percentage already expressed in 0-100 (as the reports API sends it), one decimal, es-CO.
export function fmtPct(x) {
  return x === null || x === undefined || Number.isNaN(x) ? "–" : `${ONE.format(round1(x))} %`;
}

export function emptyChart(title) {
  return el("div", { class: "chart-empty", role: "img", "aria-label": `${title}: sin datos` }, el("strong", {}, title), el("span", {}, "Sin datos en el periodo"));
}

// A round upper bound for a count axis, and its integer step (at most 5 ticks).
function niceAxis(max) {
  const top = Math.max(1, max);
  for (const step of [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000]) {
    if (top <= step * 5) return { max: Math.ceil(top / step) * step, step };
  }
  const step = 10 ** Math.ceil(Math.log10(top / 5));
  return { max: Math.ceil(top / step) * step, step };
}

// Splits a label into at most `lines` lines of about `width` characters (last one ellipsised).
function wrap(text, width, lines = 2) {
  const out = [];
  let current = "";
  for (const word of String(text).split(/\s+/)) {
    if (current && current.length + 1 + word.length > width) {
      out.push(current);
      current = word;
    } else {
      current = current ? `${current} ${word}` : word;
    }
  }
  if (current) out.push(current);
  if (out.length > lines) {
    out.length = lines;
    out[lines - 1] = `${out[lines - 1].slice(0, Math.max(1, width - 1))}…`;
  }
  return out.map((line) => (line.length > width + 2 ? `${line.slice(0, width)}…` : line));
}

// Axis labels (each a list of lines) that stay distinct when shortened: labels that wrap to
// the same text ("No interesad…" three times) keep their first line and show where they
// differ ("…por precio"), numbered only if the whole labels are the same.
export function distinctLabels(labels, width, lines = 2) {
  const out = labels.map((l) => wrap(l, width, lines));
  const key = (ls) => ls.join("\n");
  const clip = (text, w) => (text.length > w ? `${text.slice(0, Math.max(1, w - 1))}…` : text);
  const groupsOf = (ids) => {
    const groups = new Map();
    for (const i of ids) groups.set(key(out[i]), [...(groups.get(key(out[i])) || []), i]);
    return [...groups.values()].filter((g) => g.length > 1);
  };
  for (const idx of groupsOf(labels.map((_, i) => i))) {
    const words = idx.map((i) => String(labels[i]).split(/\s+/));
    let common = 0;
    while (words.every((w) => w.length > common + 1 && w[common] === words[0][common])) common++;
    if (common) {
      idx.forEach((i, j) => {
        out[i] = [clip(words[j].slice(0, common).join(" "), width), `…${clip(words[j].slice(common).join(" "), width - 1)}`];
      });
    }
    for (const same of groupsOf(idx)) {
      same.forEach((i, n) => {
        out[i] = [...out[i].slice(0, -1), `${out[i][out[i].length - 1]} (${n + 1})`];
      });
    }
  }
  return out;
}

// Pareto rows from {code,label,count} sorted by count desc: cumulative % and the vital few
// (the smallest prefix whose cumulative share reaches `threshold` %).
export function paretoRows(items, threshold = 80) {
  const rows = items.filter((x) => x.count > 0).sort((a, b) => b.count - a.count);
  const total = rows.reduce((s, x) => s + x.count, 0);
  let running = 0;
  let reached = false;
  return rows.map((x) => {
    running += x.count;
    const vital = !reached;
    const cumulative = (running * 100) / total;
    if (cumulative >= threshold - 1e-9) reached = true;
    return { code: x.code, label: x.label, count: x.count, pct: (x.count * 100) / total, cumulative, vital };
  });
}

// rows: [{label, count, cumulative (0-100), vital}], largest first.
export function paretoChart(title, rows, { width = 620, height = 300, threshold = 80, id } = {}) {
  if (!rows.length) return emptyChart(title);
  const pad = { left: 38, right: 44, top: 46, bottom: 62 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const y0 = pad.top + h;
  const axis = niceAxis(Math.max(...rows.map((r) => r.count)));
  const slot = w / rows.length;
  const barW = Math.min(70, slot * 0.62);
  const yCount = (v) => y0 - (v / axis.max) * h;
  const yPct = (p) => y0 - (Math.min(100, p) / 100) * h;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart pareto", role: "img", "aria-label": title, id });
  root.append(svg("title", {}, title));
  root.append(svg("text", { x: 0, y: 16, class: "chart-title" }, title));
  for (let v = 0; v <= axis.max; v += axis.step) {
    root.append(svg("line", { x1: pad.left, x2: pad.left + w, y1: yCount(v), y2: yCount(v), class: "grid" }));
    root.append(svg("text", { x: pad.left - 6, y: yCount(v) + 4, class: "axis", "text-anchor": "end" }, fmtInt(v)));
  }
  for (let p = 0; p <= 100; p += 20) {
    root.append(svg("text", { x: pad.left + w + 6, y: yPct(p) + 4, class: "axis axis-pct" }, `${p} %`));
  }
  root.append(svg("line", { x1: pad.left, x2: pad.left + w, y1: yPct(threshold), y2: yPct(threshold), class: "threshold" }));
  root.append(svg("text", { x: pad.left + w - 4, y: yPct(threshold) - 5, class: "axis threshold-label", "text-anchor": "end" }, `${threshold} %`));
  const points = [];
  const chars = Math.max(6, Math.floor(slot / 6.4));
  const labels = distinctLabels(rows.map((r) => r.label), chars);
  const tops = [];
  rows.forEach((r, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const top = yCount(r.count);
    const tip = `${r.label}: ${fmtInt(r.count)} (${fmtPct(r.pct)}; acumulado ${fmtPct(r.cumulative)})`;
    root.append(
      svg("rect", { x, y: top, width: barW, height: Math.max(0, y0 - top), class: r.vital ? "pbar vital" : "pbar", "data-count": r.count, "data-label": r.label }, svg("title", {}, tip)),
    );
    root.append(svg("text", { x: x + barW / 2, y: top - 4, class: "value", "text-anchor": "middle" }, fmtInt(r.count)));
    tops.push(top);
    labels[i].forEach((line, j) => {
      root.append(svg("text", { x: x + barW / 2, y: y0 + 14 + 12 * j, class: "axis label", "text-anchor": "middle" }, line));
    });
    points.push([x + barW / 2, yPct(r.cumulative), r.cumulative]);
  });
  root.append(svg("polyline", { points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), class: "cum-line" }));
  points.forEach(([x, y, c], i) => {
    root.append(svg("circle", { cx: x, cy: y, r: 3.5, class: "cum-dot" }));
    // Above the dot and above its bar (and the bar's count), never on a bar.
    root.append(svg("text", { x, y: Math.min(y - 7, tops[i] - 18), class: "cum-label", "text-anchor": "middle" }, fmtPct(c)));
  });
  const ly = height - 10;
  const legend = svg("g", { class: "legend" });
  legend.append(
    svg("rect", { x: pad.left, y: ly - 9, width: 10, height: 10, class: "pbar-key vital" }),
    svg("text", { x: pad.left + 14, y: ly }, "Vitales (hasta el 80 %)"),
    svg("rect", { x: pad.left + 150, y: ly - 9, width: 10, height: 10, class: "pbar-key" }),
    svg("text", { x: pad.left + 164, y: ly }, "Resto"),
    svg("line", { x1: pad.left + 215, x2: pad.left + 235, y1: ly - 4, y2: ly - 4, class: "cum-line" }),
    svg("text", { x: pad.left + 240, y: ly }, "% acumulado"),
  );
  root.append(legend);
  return root;
}

// items: [{label, value, kind?}] drawn top to bottom as given.
export function hbarChart(title, items, { width = 560, format = fmtInt, id } = {}) {
  if (!items.length || !items.some((x) => x.value)) return emptyChart(title);
  const labelW = 150;
  const barH = 20;
  const gap = 8;
  const top = 28;
  const height = top + items.length * (barH + gap) + 4;
  const span = width - labelW - 60;
  const max = Math.max(...items.map((x) => x.value)) || 1;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart hbars", role: "img", "aria-label": title, id });
  root.append(svg("title", {}, title));
  root.append(svg("text", { x: 0, y: 16, class: "chart-title" }, title));
  items.forEach((x, i) => {
    const y = top + i * (barH + gap);
    const bw = x.value ? Math.max(2, (span * x.value) / max) : 0;
    root.append(svg("text", { x: labelW - 8, y: y + 14, class: "axis label", "text-anchor": "end" }, wrap(x.label, 24, 1)[0]));
    root.append(svg("rect", { x: labelW, y, width: bw, height: barH, rx: 2, class: `hbar ${x.kind || ""}`.trim(), "data-value": x.value }, svg("title", {}, `${x.label}: ${format(x.value)}`)));
    root.append(svg("text", { x: labelW + bw + 6, y: y + 14, class: "value" }, format(x.value)));
  });
  return root;
}

// groups: [{label, values: [n, ...]}]; series: [{name, kind}] (one colour class per series).
export function groupedBars(title, groups, series, { width = 560, height = 240, id } = {}) {
  if (!groups.length || !groups.some((g) => g.values.some((v) => v))) return emptyChart(title);
  const pad = { left: 34, right: 8, top: 30, bottom: 44 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const y0 = pad.top + h;
  const axis = niceAxis(Math.max(...groups.flatMap((g) => g.values)));
  const y = (v) => y0 - (v / axis.max) * h;
  const slot = w / groups.length;
  const barW = Math.min(28, (slot * 0.75) / series.length);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart grouped", role: "img", "aria-label": title, id });
  root.append(svg("title", {}, title));
  root.append(svg("text", { x: 0, y: 16, class: "chart-title" }, title));
  for (let v = 0; v <= axis.max; v += axis.step) {
    root.append(svg("line", { x1: pad.left, x2: pad.left + w, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: pad.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, fmtInt(v)));
  }
  groups.forEach((g, i) => {
    const start = pad.left + i * slot + (slot - barW * series.length) / 2;
    g.values.forEach((v, k) => {
      const x = start + k * barW;
      root.append(svg("rect", { x: x + 1, y: y(v), width: barW - 2, height: y0 - y(v), class: `gbar ${series[k].kind}` }, svg("title", {}, `${g.label} · ${series[k].name}: ${fmtInt(v)}`)));
      if (v) root.append(svg("text", { x: x + barW / 2, y: y(v) - 3, class: "value", "text-anchor": "middle" }, fmtInt(v)));
    });
    root.append(svg("text", { x: pad.left + (i + 0.5) * slot, y: y0 + 15, class: "axis label", "text-anchor": "middle" }, g.label));
  });
  const legend = svg("g", { class: "legend" });
  let lx = pad.left;
  for (const s of series) {
    legend.append(svg("rect", { x: lx, y: height - 19, width: 10, height: 10, class: `gbar ${s.kind}` }), svg("text", { x: lx + 14, y: height - 10 }, s.name));
    lx += 24 + s.name.length * 6.5;
  }
  root.append(legend);
  return root;
}

const SERIES = ["s1", "s2", "s3", "s4", "s5", "s6"];

// One line per series over `labels` (gaps where a value is null), plus a dashed cap line.
// series: [{name, values: [number|null, ...]}]; values and cap in percent (0-100).
export function lineChart(title, labels, series, { cap = null, width = 620, height = 250, id } = {}) {
  const values = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  if (!labels.length || !values.length) return emptyChart(title);
  const pad = { left: 46, right: 10, top: 30, bottom: 46 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const y0 = pad.top + h;
  const top = Math.max(...values, cap || 0);
  const axis = top <= 10 ? { max: Math.max(1, Math.ceil(top)), step: top <= 5 ? 1 : 2 } : niceAxis(top);
  const x = (i) => pad.left + (labels.length === 1 ? w / 2 : (i * w) / (labels.length - 1));
  const y = (v) => y0 - (Math.min(v, axis.max) / axis.max) * h;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart lines", role: "img", "aria-label": title, id });
  root.append(svg("title", {}, title));
  root.append(svg("text", { x: 0, y: 16, class: "chart-title" }, title));
  for (let v = 0; v <= axis.max; v += axis.step) {
    root.append(svg("line", { x1: pad.left, x2: pad.left + w, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: pad.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, `${fmtInt(v)} %`));
  }
  const every = Math.max(1, Math.ceil(labels.length / 16));
  labels.forEach((label, i) => {
    if (i % every === 0 || i === labels.length - 1) root.append(svg("text", { x: x(i), y: y0 + 14, class: "axis", "text-anchor": "middle" }, label));
  });
  if (cap !== null) {
    root.append(svg("line", { x1: pad.left, x2: pad.left + w, y1: y(cap), y2: y(cap), class: "cap" }));
  }
  series.forEach((s, n) => {
    const kind = SERIES[n % SERIES.length];
    let segment = [];
    const flush = () => {
      if (segment.length > 1) root.append(svg("polyline", { points: segment.join(" "), class: `sline ${kind}` }));
      segment = [];
    };
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        flush();
        return;
      }
      segment.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      root.append(svg("circle", { cx: x(i), cy: y(v), r: 2.6, class: `sdot ${kind}` }, svg("title", {}, `${s.name} · ${labels[i]}: ${fmtPct(v)}`)));
    });
    flush();
  });
  const legend = svg("g", { class: "legend" });
  let lx = pad.left;
  series.forEach((s, n) => {
    const kind = SERIES[n % SERIES.length];
    legend.append(svg("rect", { x: lx, y: height - 19, width: 10, height: 10, class: `sdot ${kind}` }), svg("text", { x: lx + 14, y: height - 10 }, s.name));
    lx += 26 + s.name.length * 6;
  });
  if (cap !== null) {
    legend.append(svg("line", { x1: lx, x2: lx + 20, y1: height - 14, y2: height - 14, class: "cap" }), svg("text", { x: lx + 25, y: height - 10 }, `Tope ${fmtPct(cap)}`));
  }
  root.append(legend);
  return root;
}
