// Hand-rolled SVG charts: bars (stacked series of counts) and lines (values
// that may be missing), drawn with createElementNS and text nodes only. Each
// chart is an image with a title and a one-line summary for screen readers,
// and data-total / data-max attributes that tests read.

const NS = "http://www.w3.org/2000/svg";
const W = 600;
const H = 180;
const PAD = { left: 52, right: 8, top: 12, bottom: 24 };

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

function niceMax(max) {
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (max <= m * p) return m * p;
  return 10 * p;
}

function frame(title, summary, max, labels, format) {
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart" });
  svg.append(s("title", {}, title), s("desc", {}, summary));
  const y = (v) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / max);
  for (const v of [0, max / 2, max]) {
    svg.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: PAD.left - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" }, format(v)));
  }
  const n = labels.length;
  const x = (i) => PAD.left + ((W - PAD.left - PAD.right) * i) / Math.max(1, n);
  const shown = n > 2 ? [0, Math.floor(n / 2), n - 1] : labels.map((_, i) => i);
  for (const i of shown) {
    // the first and last labels hang inwards, so neither is cut at the edge
    const anchor = n > 2 && i === 0 ? "start" : n > 2 && i === n - 1 ? "end" : "middle";
    const at = anchor === "start" ? x(i) : anchor === "end" ? x(i + 1) : x(i) + (W - PAD.left - PAD.right) / n / 2;
    svg.append(s("text", { x: at, y: H - 6, "text-anchor": anchor, class: "axis" }, labels[i]));
  }
  return { svg, x, y, step: (W - PAD.left - PAD.right) / Math.max(1, n) };
}

const count = (v) => (v >= 1000 ? `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)}k` : Number.isInteger(v) ? String(v) : v.toFixed(1));

/**
 * Bars: one group per label, series drawn over each other (e.g. calls, then errors in front).
 * @param {{ title: string, labels: string[], series: { name: string, className: string, values: number[] }[], format?: (v: number) => string }} spec
 */
export function barChart({ title, labels, series, format = count }) {
  const all = series.flatMap((x) => x.values);
  const max = niceMax(Math.max(0, ...all));
  const totals = series.map((x) => `${x.name} ${format(x.values.reduce((a, b) => a + b, 0))}`).join(", ");
  const { svg, x, y, step } = frame(title, `${title}: ${totals}`, max, labels, format);
  for (const { className, values, name } of series) {
    values.forEach((v, i) => {
      if (v <= 0) return;
      const width = Math.max(1, Math.min(48, step * 0.8));
      const rect = s("rect", { x: x(i) + (step - width) / 2, width, y: y(v), height: Math.max(0.5, y(0) - y(v)), class: className });
      rect.append(s("title", {}, `${labels[i]}: ${format(v)} ${name}`));
      svg.append(rect);
    });
  }
  svg.dataset.total = String(series[0]?.values.reduce((a, b) => a + b, 0) ?? 0);
  svg.dataset.max = String(Math.max(0, ...all));
  return figure(title, series, svg);
}

/**
 * Lines over the same labels; a null value is a gap.
 * @param {{ title: string, labels: string[], series: { name: string, className: string, values: (number|null)[] }[], format?: (v: number) => string }} spec
 */
export function lineChart({ title, labels, series, format = count }) {
  const all = series.flatMap((x) => x.values.filter((v) => v !== null));
  const max = niceMax(Math.max(0, ...all));
  const summary = series.map((x) => `${x.name} up to ${format(Math.max(0, ...x.values.filter((v) => v !== null)))}`).join(", ");
  const { svg, x, y, step } = frame(title, `${title}: ${summary}`, max, labels, format);
  for (const { className, values } of series) {
    let d = "";
    let pen = false;
    values.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${(x(i) + step / 2).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
      svg.append(s("circle", { cx: x(i) + step / 2, cy: y(v), r: 2.5, class: className }));
    });
    if (d) svg.append(s("path", { d, class: `line ${className}` }));
  }
  svg.dataset.total = String(all.length);
  svg.dataset.max = String(Math.max(0, ...all));
  return figure(title, series, svg);
}

function figure(title, series, svg) {
  const fig = document.createElement("figure");
  fig.className = "chart-box";
  const cap = document.createElement("figcaption");
  cap.append(document.createTextNode(title));
  for (const x of series) {
    const key = document.createElement("span");
    key.className = `key ${x.className}`;
    key.textContent = x.name;
    cap.append(" ", key);
  }
  fig.append(cap, svg);
  return fig;
}
