// Reads the server's `GET /metrics` (Prometheus text format): plain samples,
// and histograms as cumulative buckets that can be diffed between two
// scrapes, summed across processes and turned into quantiles.

export type Scrape = Map<string, number>;

/** `name{labels}` -> value, labels kept verbatim (the key is the series). */
export function parseMetrics(text: string): Scrape {
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp <= 0) continue;
    const value = Number(line.slice(sp + 1));
    if (!Number.isNaN(value)) out.set(line.slice(0, sp), value);
  }
  return out;
}

export async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return parseMetrics(await res.text());
}

/** Sum of every series of `name` (all label values). */
export function total(s: Scrape, name: string): number {
  let sum = 0;
  for (const [key, v] of s) if (key === name || key.startsWith(`${name}{`)) sum += v;
  return sum;
}

export interface Histogram {
  /** Upper bounds (seconds) ascending, the last one Infinity. */
  le: number[];
  /** Cumulative counts per bound. */
  counts: number[];
  sum: number;
  count: number;
}

export function histogram(s: Scrape, name: string): Histogram {
  const byLe = new Map<number, number>();
  for (const [key, v] of s) {
    if (!key.startsWith(`${name}_bucket{`)) continue;
    const m = /le="([^"]+)"/.exec(key);
    if (!m?.[1]) continue;
    const le = m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]);
    byLe.set(le, (byLe.get(le) ?? 0) + v);
  }
  const le = [...byLe.keys()].sort((a, b) => a - b);
  return { le, counts: le.map((b) => byLe.get(b) ?? 0), sum: total(s, `${name}_sum`), count: total(s, `${name}_count`) };
}

/** after − before (the observations made between two scrapes). */
export function diffHistogram(after: Histogram, before: Histogram): Histogram {
  return {
    le: after.le,
    counts: after.counts.map((c, i) => c - (before.counts[i] ?? 0)),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

export function sumHistograms(hs: readonly Histogram[]): Histogram {
  const first = hs[0];
  if (!first) return { le: [], counts: [], sum: 0, count: 0 };
  return {
    le: first.le,
    counts: first.le.map((_, i) => hs.reduce((n, h) => n + (h.counts[i] ?? 0), 0)),
    sum: hs.reduce((n, h) => n + h.sum, 0),
    count: hs.reduce((n, h) => n + h.count, 0),
  };
}

/** Quantile by linear interpolation inside the bucket (as PromQL's histogram_quantile). */
export function histogramQuantile(h: Histogram, q: number): number {
  const n = h.counts[h.counts.length - 1] ?? 0;
  if (n === 0) return Number.NaN;
  const rank = q * n;
  for (let i = 0; i < h.le.length; i++) {
    const c = h.counts[i] as number;
    if (c >= rank) {
      const upper = h.le[i] as number;
      const lower = i === 0 ? 0 : (h.le[i - 1] as number);
      const below = i === 0 ? 0 : (h.counts[i - 1] as number);
      if (!Number.isFinite(upper)) return lower;
      return lower + (upper - lower) * ((rank - below) / Math.max(1, c - below));
    }
  }
  return h.le[h.le.length - 2] ?? Number.NaN;
}

/** Fraction of observations ≤ `bound` (exact when `bound` is a bucket edge). */
export function fractionWithin(h: Histogram, bound: number): number {
  const n = h.counts[h.counts.length - 1] ?? 0;
  const i = h.le.findIndex((b) => Math.abs(b - bound) < 1e-12);
  if (n === 0 || i < 0) return Number.NaN;
  return (h.counts[i] as number) / n;
}
