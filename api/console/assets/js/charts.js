// Small SVG charts (no library): lines over time and stacked bars per period.

import { svg, when } from "./util.js";

export const PALETTE = ["#4c9aff", "#f5a623", "#36b37e", "#ff5630", "#998dd9", "#00b8d9", "#ffab00", "#e774bb", "#79e2f2", "#8993a4"];

/** An axis from 0 with round steps: {top, step}, about four to five gridlines. */
function axis(value, integer = false) {
  if (!(value > 0)) return { top: 1, step: integer ? 1 : 0.25 };
  const raw = value / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  if (integer) step = Math.max(1, Math.round(step));
  return { top: Math.ceil(value / step) * step, step };
}

function timeLabel(t) {
  return when(new Date(t).toISOString(), { seconds: false });
}

/**
 * Lines: series = [{name, points: [[x, y], ...], color?, dashed?}]; x in ms when ``time``; y from 0 (or ``yMax``).
 * ``format`` labels the y axis (e.g. percent).
 */
export function lineChart(series, { width = 560, height = 220, time = false, yMax = null, format = (v) => String(v), xTicks = null } = {}) {
  const pad = { l: 44, r: 12, t: 12, b: 26 };
  const all = series.flatMap((s) => s.points);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  if (!all.length) return root;
  let x0 = Math.min(...all.map((p) => p[0]));
  let x1 = Math.max(...all.map((p) => p[0]));
  if (x0 === x1) (x0 -= 1), (x1 += 1);
  const { top, step } = yMax ? { top: yMax, step: yMax / 4 } : axis(Math.max(...all.map((p) => p[1])));
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - (y / top) * (height - pad.t - pad.b);
  for (let v = 0; v <= top + 1e-9; v += step) {
    root.append(
      svg("line", { x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v), class: "grid" }),
      svg("text", { x: pad.l - 6, y: Y(v) + 4, class: "axis", "text-anchor": "end" }, format(v)),
    );
  }
  const ticks = xTicks || [0, 1, 2, 3, 4, 5].map((i) => x0 + ((x1 - x0) * i) / 5).map((x) => [x, time ? timeLabel(x) : String(Math.round(x))]);
  const every = Math.ceil(ticks.length / 8);
  ticks.forEach(([x, label], i) => {
    if (i % every === 0) root.append(svg("text", { x: X(x), y: height - 8, class: "axis", "text-anchor": "middle" }, label));
  });
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    const dash = s.dashed ? "6 4" : null;
    root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2, "stroke-dasharray": dash }, svg("title", null, s.name)));
    for (const p of s.points.length < 40 && !s.dashed ? s.points : []) {
      root.append(svg("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: color }, svg("title", null, `${s.name}: ${format(p[1])}`)));
    }
  });
  return root;
}

/** Stacked bars: periods = ["2026-11-01", ...]; stacks = [{name, values: [n per period]}]. */
export function barChart(periods, stacks, { width = 560, height = 220, label = (p) => p } = {}) {
  const pad = { l: 36, r: 8, t: 12, b: 40 };
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  if (!periods.length) return root;
  const totals = periods.map((_, i) => stacks.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const { top, step } = axis(Math.max(...totals), true);
  const band = (width - pad.l - pad.r) / periods.length;
  const Y = (y) => height - pad.b - (y / top) * (height - pad.t - pad.b);
  for (let v = 0; v <= top; v += step) {
    root.append(
      svg("line", { x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v), class: "grid" }),
      svg("text", { x: pad.l - 6, y: Y(v) + 4, class: "axis", "text-anchor": "end" }, v),
    );
  }
  const every = Math.ceil(periods.length / 12);
  periods.forEach((p, i) => {
    let base = 0;
    const x = pad.l + i * band + band * 0.15;
    stacks.forEach((s, k) => {
      const v = s.values[i] || 0;
      if (!v) return;
      root.append(
        svg(
          "rect",
          { x, width: band * 0.7, y: Y(base + v), height: Y(base) - Y(base + v), fill: s.color || PALETTE[k % PALETTE.length] },
          svg("title", null, `${label(p)} · ${s.name}: ${v}`),
        ),
      );
      base += v;
    });
    if (i % every === 0) {
      root.append(svg("text", { x: x + band * 0.35, y: height - pad.b + 14, class: "axis", "text-anchor": "middle" }, label(p)));
    }
  });
  return root;
}

/** A legend for series or stacks. */
export function legend(items) {
  const box = document.createElement("div");
  box.className = "legend";
  items.forEach((item, i) => {
    const entry = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = item.color || PALETTE[i % PALETTE.length];
    entry.append(swatch, document.createTextNode(item.name));
    box.append(entry);
  });
  return box;
}
