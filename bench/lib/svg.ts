// Dependency-free SVG charts for the report: lines (CDFs, throughput vs
// offered load, memory over time) and grouped bars (percentiles, ratios).

export interface Point {
  x: number;
  y: number;
}

export interface LineSeries {
  name: string;
  points: Point[];
  dashed?: boolean;
  /** Draw a dot on every point (sparse series such as load steps). */
  dots?: boolean;
}

export interface Guide {
  /** A horizontal line at y (a target), or vertical at x. */
  y?: number;
  x?: number;
  label: string;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  xLog?: boolean;
  yLog?: boolean;
  /** Force the axis to include these values (e.g. 0). */
  xInclude?: number[];
  yInclude?: number[];
  guides?: Guide[];
  note?: string;
}

export interface BarChart {
  title: string;
  yLabel: string;
  categories: string[];
  series: { name: string; values: number[] }[];
  yLog?: boolean;
  guides?: Guide[];
  note?: string;
  /** Format of the value printed over each bar. */
  format?: (v: number) => string;
}

const W = 760;
const H = 440;
const M = { left: 78, right: 20, top: 44, bottom: 64 };
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf', '#7f7f7f'];
const FONT = 'font-family="DejaVu Sans, Arial, sans-serif"';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Compact number for tick labels: 1500 -> 1.5k, 0.25 -> 0.25. */
export function short(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(2)}k`;
  if (a >= 10 || a === 0) return String(+v.toFixed(1));
  if (a >= 1) return String(+v.toFixed(2));
  return String(+v.toPrecision(2));
}

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n >= 5 ? 10 : n >= 2 ? 5 : n >= 1 ? 2 : 1) * mag;
}

interface Axis {
  min: number;
  max: number;
  ticks: number[];
  log: boolean;
}

function axis(values: number[], log: boolean, include: number[] = []): Axis {
  const vals = [...values, ...include].filter((v) => Number.isFinite(v) && (!log || v > 0));
  let min = vals.length ? Math.min(...vals) : 0;
  let max = vals.length ? Math.max(...vals) : 1;
  if (log) {
    min = 10 ** Math.floor(Math.log10(min));
    max = 10 ** Math.ceil(Math.log10(max));
    if (min === max) max = min * 10;
    const ticks: number[] = [];
    for (let e = Math.log10(min); e <= Math.log10(max) + 1e-9; e++) {
      const d = 10 ** e;
      ticks.push(d);
      if (Math.log10(max) - Math.log10(min) <= 3 && e < Math.log10(max) - 1e-9) ticks.push(2 * d, 5 * d);
    }
    return { min, max, ticks: ticks.filter((t) => t <= max), log };
  }
  if (min === max) {
    max = min === 0 ? 1 : min * 1.1;
    min = min === 0 ? 0 : min * 0.9;
  }
  const step = niceStep(max - min, 6);
  min = Math.floor(min / step) * step;
  max = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = min; t <= max + step / 2; t += step) ticks.push(+t.toPrecision(12));
  return { min, max, ticks, log };
}

function scale(a: Axis, from: number, to: number): (v: number) => number {
  if (a.log) {
    const l0 = Math.log10(a.min);
    const l1 = Math.log10(a.max);
    return (v) => from + ((Math.log10(Math.max(v, a.min)) - l0) / (l1 - l0)) * (to - from);
  }
  return (v) => from + ((v - a.min) / (a.max - a.min)) * (to - from);
}

function frame(title: string, xLabel: string, yLabel: string, note?: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT}>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" font-size="15" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
    `<text x="${M.left + (W - M.left - M.right) / 2}" y="${H - 28}" font-size="12" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${M.top + (H - M.top - M.bottom) / 2}) rotate(-90)" font-size="12" text-anchor="middle">${esc(yLabel)}</text>`,
    note ? `<text x="${W - M.right}" y="${H - 8}" font-size="10" fill="#666" text-anchor="end">${esc(note)}</text>` : '',
  ];
}

function legend(names: string[], kinds: ('line' | 'dashed' | 'bar')[]): string {
  const out: string[] = [];
  let x = M.left + 8;
  let y = M.top + 8;
  for (let i = 0; i < names.length; i++) {
    const color = PALETTE[i % PALETTE.length];
    const w = 34 + (names[i] ?? '').length * 6.6;
    if (x + w > W - M.right) {
      x = M.left + 8;
      y += 16;
    }
    out.push(
      kinds[i] === 'bar'
        ? `<rect x="${x}" y="${y - 8}" width="14" height="10" fill="${color}"/>`
        : `<line x1="${x}" y1="${y - 3}" x2="${x + 16}" y2="${y - 3}" stroke="${color}" stroke-width="2.5"${kinds[i] === 'dashed' ? ' stroke-dasharray="5 3"' : ''}/>`,
      `<text x="${x + 20}" y="${y + 1}" font-size="11">${esc(names[i] ?? '')}</text>`,
    );
    x += w;
  }
  return `<g>${out.join('')}</g>`;
}

export function lineChart(c: LineChart): string {
  const xs = c.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = c.series.flatMap((s) => s.points.map((p) => p.y));
  const guideYs = (c.guides ?? []).flatMap((g) => (g.y === undefined ? [] : [g.y]));
  const xa = axis(xs, !!c.xLog, c.xInclude);
  const ya = axis([...ys, ...guideYs], !!c.yLog, c.yInclude);
  // Leave room at the top for the legend.
  if (!ya.log) ya.max += (ya.max - ya.min) * 0.12;
  const sx = scale(xa, M.left, W - M.right);
  const sy = scale(ya, H - M.bottom, M.top);
  const out = frame(c.title, c.xLabel, c.yLabel, c.note);
  for (const t of ya.ticks) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${sy(t) + 4}" font-size="11" text-anchor="end">${short(t)}</text>`);
  }
  for (const t of xa.ticks) {
    out.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${M.top}" y2="${H - M.bottom}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${sx(t)}" y="${H - M.bottom + 16}" font-size="11" text-anchor="middle">${short(t)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#999"/>`);
  for (const g of c.guides ?? []) {
    if (g.y !== undefined) {
      const y = sy(g.y);
      out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#444" stroke-dasharray="2 4"/>`);
      out.push(`<text x="${W - M.right - 4}" y="${y - 4}" font-size="10" text-anchor="end" fill="#444">${esc(g.label)}</text>`);
    }
    if (g.x !== undefined) {
      const x = sx(g.x);
      out.push(`<line x1="${x}" x2="${x}" y1="${M.top}" y2="${H - M.bottom}" stroke="#444" stroke-dasharray="2 4"/>`);
      out.push(`<text x="${x + 4}" y="${H - M.bottom - 6}" font-size="10" fill="#444">${esc(g.label)}</text>`);
    }
  }
  c.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length] as string;
    const pts = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!c.xLog || p.x > 0) && (!c.yLog || p.y > 0));
    if (pts.length === 0) return;
    const d = pts.map((p, k) => `${k === 0 ? 'M' : 'L'}${sx(p.x).toFixed(1)} ${sy(p.y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    if (s.dots) for (const p of pts) out.push(`<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3.5" fill="${color}"/>`);
  });
  out.push(legend(c.series.map((s) => s.name), c.series.map((s) => (s.dashed ? 'dashed' : 'line'))));
  out.push('</svg>');
  return `${out.filter((l) => l !== '').join('\n')}\n`;
}

export function barChart(c: BarChart): string {
  const all = c.series.flatMap((s) => s.values);
  const guideYs = (c.guides ?? []).flatMap((g) => (g.y === undefined ? [] : [g.y]));
  const ya = axis([...all, ...guideYs], !!c.yLog, c.yLog ? [] : [0]);
  if (!ya.log) ya.max += (ya.max - ya.min) * 0.15;
  const sy = scale(ya, H - M.bottom, M.top);
  const out = frame(c.title, '', c.yLabel, c.note);
  for (const t of ya.ticks) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${sy(t) + 4}" font-size="11" text-anchor="end">${short(t)}</text>`);
  }
  const plotW = W - M.left - M.right;
  const groupW = plotW / Math.max(1, c.categories.length);
  const barW = Math.min(60, (groupW * 0.8) / Math.max(1, c.series.length));
  const fmt = c.format ?? short;
  c.categories.forEach((cat, gi) => {
    const gx = M.left + gi * groupW + (groupW - barW * c.series.length) / 2;
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === undefined || !Number.isFinite(v)) return;
      const x = gx + si * barW;
      const y0 = sy(ya.log ? ya.min : 0);
      const y = sy(v);
      out.push(`<rect x="${x.toFixed(1)}" y="${Math.min(y, y0).toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${Math.abs(y0 - y).toFixed(1)}" fill="${PALETTE[si % PALETTE.length]}"/>`);
      out.push(`<text x="${(x + (barW - 3) / 2).toFixed(1)}" y="${(Math.min(y, y0) - 4).toFixed(1)}" font-size="10" text-anchor="middle">${esc(fmt(v))}</text>`);
    });
    // Long names go on two lines ("Dyad, Redis, across processes" -> "Dyad, Redis," / "across processes").
    const cx = (M.left + gi * groupW + groupW / 2).toFixed(1);
    const words = cat.split(' ');
    const lines: string[] = [];
    for (const w of words) {
      const last = lines[lines.length - 1];
      if (last !== undefined && (last + ' ' + w).length * 6.2 <= groupW - 6) lines[lines.length - 1] = `${last} ${w}`;
      else lines.push(w);
    }
    const spans = lines.slice(0, 3).map((l, k) => `<tspan x="${cx}" dy="${k === 0 ? 0 : 13}">${esc(l)}</tspan>`).join('');
    out.push(`<text x="${cx}" y="${H - M.bottom + 16}" font-size="11" text-anchor="middle">${spans}</text>`);
  });
  out.push(`<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${H - M.top - M.bottom}" fill="none" stroke="#999"/>`);
  for (const g of c.guides ?? []) {
    if (g.y === undefined) continue;
    const y = sy(g.y);
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#444" stroke-dasharray="2 4"/>`);
    out.push(`<text x="${W - M.right - 4}" y="${y - 4}" font-size="10" text-anchor="end" fill="#444">${esc(g.label)}</text>`);
  }
  if (c.series.length > 1) out.push(legend(c.series.map((s) => s.name), c.series.map(() => 'bar')));
  out.push('</svg>');
  return `${out.filter((l) => l !== '').join('\n')}\n`;
}
