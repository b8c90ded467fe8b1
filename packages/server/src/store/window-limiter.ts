// Per-key points in fixed windows (Limiter), held in this process: the
// embedded store's per-address limits, and the Redis store's stand-in while
// Redis does not answer.
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { RateWindow } from '../core/rules.js';
import type { Limiter } from './store.js';

/**
 * `points` per key in fixed windows that start with a key's first point,
 * counted and answered as rate-limiter-flexible's limiters do: 93 bytes a key
 * and no timer, where RateLimiterMemory holds 412 bytes and a timer per key
 * for its whole window (measured after a full collection, 200,000 keys); with
 * its key's text and the map's table, about 470 bytes for a chat repeat's key.
 *
 * Many addresses can each make a key (one IPv6 subscriber has 65,536 /64s),
 * some for an hour or a day (REPORTS_PER_ADDR, BLOCKS_PER_ADDR), and the
 * chat repeats one per distinct message: at most `maxKeys` are held
 * (LIMITER_KEYS_MAX). Every window of a limiter lasts as long, so the map,
 * where a window begun again moves to the back, holds them in the order they
 * end: ended ones go from the front as new ones come, and at the cap the one
 * that ends first goes (its address starts afresh).
 */
/**
 * Before a new window in `windows` (held in the order they end): drop those
 * that have ended, from the front, then, at `maxKeys`, those that end first.
 */
export function makeRoom(windows: Map<string, RateWindow>, now: number, maxKeys: number): void {
  for (const [k, w] of windows) {
    if (w.until > now && windows.size < maxKeys) break;
    windows.delete(k);
  }
}

/** How often a limiter's ended windows are looked for while it holds any, at most. */
const SWEEP_PERIOD_MAX_MS = 60_000;

export class WindowLimiter implements Limiter {
  private readonly windows = new Map<string, RateWindow>();
  private readonly durationMs: number;
  /**
   * Ended windows also go on a quiet process, not only as new ones come: a
   * burst of 3,000 addresses left 3.5 KB each held a minute after its windows
   * ended (sixth review, S2). Armed while the limiter holds a window.
   */
  private sweep: NodeJS.Timeout | undefined;

  constructor(
    readonly points: number,
    durationSec: number,
    private readonly clock: () => number = Date.now,
    private readonly maxKeys = Number.POSITIVE_INFINITY,
  ) {
    this.durationMs = durationSec * 1_000;
  }

  /** Keys held (ended windows not yet dropped included). */
  get size(): number {
    return this.windows.size;
  }

  async consume(key: string | number, points = 1): Promise<RateLimiterRes> {
    const now = this.clock();
    const k = String(key);
    let w = this.windows.get(k);
    let first = false;
    if (!w || now >= w.until) {
      this.windows.delete(k);
      this.makeRoom(now);
      this.windows.set(k, (w = { n: 0, until: now + this.durationMs }));
      first = true;
      if (!this.sweep) this.armSweep();
    }
    w.n += points;
    const res = this.answer(w, now, first);
    if (w.n > this.points) throw res;
    return res;
  }

  async reward(key: string | number, points = 1): Promise<RateLimiterRes> {
    const now = this.clock();
    const w = this.windows.get(String(key));
    if (!w || now >= w.until) return new RateLimiterRes(this.points, 0, 0, false);
    w.n -= points;
    return this.answer(w, now, false);
  }

  async get(key: string | number): Promise<RateLimiterRes | null> {
    const now = this.clock();
    const w = this.windows.get(String(key));
    return w && now < w.until ? this.answer(w, now, false) : null;
  }

  private makeRoom(now: number): void {
    makeRoom(this.windows, now, this.maxKeys);
  }

  private armSweep(): void {
    this.sweep = setInterval(() => {
      makeRoom(this.windows, this.clock(), Number.POSITIVE_INFINITY);
      if (this.windows.size > 0) return;
      clearInterval(this.sweep);
      this.sweep = undefined;
    }, Math.min(SWEEP_PERIOD_MAX_MS, this.durationMs));
    this.sweep.unref();
  }

  private answer(w: RateWindow, now: number, first: boolean): RateLimiterRes {
    return new RateLimiterRes(Math.max(0, this.points - w.n), w.until - now, w.n, first);
  }
}
