// Inline SVG charts for the dashboard (no library): bars + line per time bucket, and a rate
// line against a cap.

import { zoneParts } from "./common.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// "HH:MM" in the campaign's time zone (the page's display zone, common.js).
function hhmm(iso) {
  const p = zoneParts(new Date(iso));
  return `${p.hour}:${p.minute}`;
}

// Trim the leading empty buckets (before the first call of the day), keep at least `min`.
export function activeBuckets(buckets, min = 8) {
  const first = buckets.findIndex((b) => b.attempts > 0);
  const start = first < 0 ? Math.max(0, buckets.length - min) : Math.min(first, Math.max(0, buckets.length - min));
  return buckets.slice(start);
}

function frame(width, height, pad) {
  return { x0: pad.left, y0: pad.top, w: width - pad.left - pad.right, h: height - pad.top - pad.bottom };
}

function axisLabels(root, f, items, labelEvery) {
  items.forEach((b, i) => {
    if (i % labelEvery !== 0) return;
    const x = f.x0 + (i + 0.5) * (f.w / items.length);
    root.append(svg("text", { x, y: f.y0 + f.h + 14, class: "axis", "text-anchor": "middle" }, hhmm(b.start)));
  });
}

// Calls per bucket (bars) with connected calls (line) and abandoned (red dots).
export function callsChart(buckets, { width = 560, height = 180, title = "Llamadas por cuarto de hora" } = {}) {
  const items = activeBuckets(buckets);
  const pad = { left: 34, right: 8, top: 22, bottom: 20 };
  const f = frame(width, height, pad);
  const max = Math.max(4, ...items.map((b) => b.attempts));
  const y = (v) => f.y0 + f.h - (v / max) * f.h;
  const bw = f.w / Math.max(1, items.length);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  root.append(svg("title", {}, title));
  root.append(svg("text", { x: pad.left, y: 13, class: "chart-title" }, title));
  for (const t of [0, 0.5, 1]) {
    const v = Math.round(max * t);
    root.append(svg("line", { x1: f.x0, x2: f.x0 + f.w, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: f.x0 - 4, y: y(v) + 4, class: "axis", "text-anchor": "end" }, v));
  }
  items.forEach((b, i) => {
    const x = f.x0 + i * bw + bw * 0.15;
    root.append(svg("rect", { x, y: y(b.attempts), width: bw * 0.7, height: f.y0 + f.h - y(b.attempts), class: "bar" }, svg("title", {}, `${hhmm(b.start)}: ${b.attempts} intentos, ${b.answered} contestadas, ${b.connected} conectadas, ${b.abandoned} abandonadas`)));
    if (b.abandoned) root.append(svg("circle", { cx: x + bw * 0.35, cy: y(b.abandoned), r: 3, class: "dot-bad" }));
  });
  const pts = items.map((b, i) => `${f.x0 + (i + 0.5) * bw},${y(b.connected)}`).join(" ");
  root.append(svg("polyline", { points: pts, class: "line" }));
  axisLabels(root, f, items, Math.max(1, Math.ceil(items.length / 8)));
  const legend = svg("g", { class: "legend" });
  legend.append(svg("rect", { x: width - 230, y: 5, width: 10, height: 10, class: "bar" }), svg("text", { x: width - 216, y: 14 }, "intentos"));
  legend.append(svg("line", { x1: width - 160, x2: width - 146, y1: 10, y2: 10, class: "line" }), svg("text", { x: width - 142, y: 14 }, "conectadas"));
  legend.append(svg("circle", { cx: width - 70, cy: 10, r: 3, class: "dot-bad" }), svg("text", { x: width - 63, y: 14 }, "abandonos"));
  root.append(legend);
  return root;
}

// Cumulative abandon rate over the day against the cap (a red dashed line).
export function abandonChart(buckets, cap, { width = 560, height = 150, title = "Abandono acumulado del día" } = {}) {
  const items = activeBuckets(buckets);
  const pad = { left: 40, right: 8, top: 22, bottom: 20 };
  const f = frame(width, height, pad);
  let ab = 0;
  let live = 0;
  const rates = items.map((b) => {
    ab += b.abandoned;
    live += b.connected + b.abandoned;
    return live ? ab / live : 0;
  });
  const max = Math.max(cap * 1.5, ...rates, 0.01);
  const y = (v) => f.y0 + f.h - (v / max) * f.h;
  const bw = f.w / Math.max(1, items.length);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  root.append(svg("title", {}, title));
  root.append(svg("text", { x: pad.left, y: 13, class: "chart-title" }, title));
  for (const v of [0, cap, max]) {
    root.append(svg("text", { x: f.x0 - 4, y: y(v) + 4, class: "axis", "text-anchor": "end" }, `${(v * 100).toFixed(1).replace(".", ",")}%`));
  }
  root.append(svg("line", { x1: f.x0, x2: f.x0 + f.w, y1: y(0), y2: y(0), class: "grid" }));
  root.append(svg("line", { x1: f.x0, x2: f.x0 + f.w, y1: y(cap), y2: y(cap), class: "cap" }));
  root.append(svg("text", { x: f.x0 + f.w - 4, y: y(cap) - 4, class: "axis cap-label", "text-anchor": "end" }, "tope"));
  const pts = rates.map((r, i) => `${f.x0 + (i + 0.5) * bw},${y(r)}`).join(" ");
  root.append(svg("polyline", { points: pts, class: rates.some((r) => r >= cap * 0.9) ? "line line-bad" : "line" }));
  axisLabels(root, f, items, Math.max(1, Math.ceil(items.length / 8)));
  return root;
}
