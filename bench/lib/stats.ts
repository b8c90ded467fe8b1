// Small statistics helpers: percentiles over recorded samples, a bounded
// sample store, and a least-squares slope (memory per session, growth per minute).

export interface Summary {
  n: number;
  min: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

/** The median of xs, what is not a number left out (NaN when none is). */
export const medianOf = (xs: readonly number[]): number => summarize(xs.filter(Number.isFinite)).p50;

/** The middle one of xs by `key` (the lower of the two middle ones for an even count). */
export const middle = <T>(xs: readonly T[], key: (x: T) => number): T | undefined => [...xs].sort((a, b) => key(a) - key(b))[Math.floor((xs.length - 1) / 2)];

export function summarize(values: readonly number[]): Summary {
  const sorted = Float64Array.from(values).sort();
  const arr = Array.from(sorted);
  let sum = 0;
  for (const v of arr) sum += v;
  return {
    n: arr.length,
    min: arr.length ? (arr[0] as number) : Number.NaN,
    mean: arr.length ? sum / arr.length : Number.NaN,
    p50: percentile(arr, 0.5),
    p95: percentile(arr, 0.95),
    p99: percentile(arr, 0.99),
    max: arr.length ? (arr[arr.length - 1] as number) : Number.NaN,
  };
}

/**
 * Keeps at most `cap` samples with uniform reservoir sampling, so a long run
 * at a high rate cannot exhaust memory or the IPC channel; `count` is exact.
 */
export class Samples {
  readonly values: number[] = [];
  count = 0;
  constructor(private readonly cap = 100_000) {}

  add(v: number): void {
    this.count++;
    if (this.values.length < this.cap) this.values.push(v);
    else {
      const i = Math.floor(Math.random() * this.count);
      if (i < this.cap) this.values[i] = v;
    }
  }
}

/** Merge sample sets from several workers, weighting each by its exact count. */
export function mergeSamples(parts: readonly { values: number[]; count: number }[], cap = 200_000): number[] {
  const total = parts.reduce((n, p) => n + p.count, 0);
  if (total === 0) return [];
  const out: number[] = [];
  for (const p of parts) {
    if (p.values.length === 0) continue;
    // Each part contributes in proportion to how many samples it stood for.
    const want = Math.max(1, Math.round((p.count / total) * Math.min(cap, total)));
    if (want >= p.values.length) out.push(...p.values);
    else {
      const step = p.values.length / want;
      for (let i = 0; i < want; i++) out.push(p.values[Math.floor(i * step)] as number);
    }
  }
  return out;
}

/** Least-squares slope and intercept of y over x. */
export function linearFit(xs: readonly number[], ys: readonly number[]): { slope: number; intercept: number } {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return { slope: Number.NaN, intercept: Number.NaN };
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < n; i++) {
    sx += xs[i] as number;
    sy += ys[i] as number;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    const dx = (xs[i] as number) - mx;
    num += dx * ((ys[i] as number) - my);
    den += dx * dx;
  }
  const slope = den === 0 ? Number.NaN : num / den;
  return { slope, intercept: my - slope * mx };
}

/** Empirical CDF points (value, fraction ≤ value), thinned to about `points` entries. */
export function cdf(values: readonly number[], points = 200): { x: number; y: number }[] {
  const sorted = Array.from(Float64Array.from(values).sort());
  if (sorted.length === 0) return [];
  const out: { x: number; y: number }[] = [];
  const step = Math.max(1, Math.floor(sorted.length / points));
  for (let i = 0; i < sorted.length; i += step) out.push({ x: sorted[i] as number, y: (i + 1) / sorted.length });
  out.push({ x: sorted[sorted.length - 1] as number, y: 1 });
  return out;
}
