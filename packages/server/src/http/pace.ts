// Message rates at the edge: a token bucket per session and channel, and one
// per client address over all its sockets in this process. They run on every
// frame, so they are plain fields and arithmetic: no promise, no limiter-store
// lookup, no timer.

/** One second, the window of the flood count. */
const FLOOD_WINDOW_MS = 1_000;

/**
 * The pace of one key (a session on one channel, or a client address): a token
 * bucket of `burst` tokens refilled at `ratePerSec`, and the number of frames
 * in the current one-second window.
 */
export class Pace {
  /** Tokens left; a frame takes one. */
  tokens: number;
  /** When `tokens` was last brought up to date (ms, monotonic). */
  at: number;
  windowStart: number;
  inWindow = 0;
  /** Sockets of this key open in this process. */
  sockets = 0;

  constructor(burst: number, now: number) {
    this.tokens = burst;
    this.at = now;
    this.windowStart = now;
  }
}

/**
 * The paces of one kind of key. An entry lives while a socket of its key is
 * open and, after the last one closed, for as long as its bucket needs to
 * fill up and its window to pass: then it is the same as a new entry, so it
 * is dropped (closing and reopening a socket wins nothing, and memory stays
 * bounded by the sockets open, or closed within that time). Expired entries
 * are dropped when a socket opens or closes: no timer per key.
 */
export class PaceBook {
  private readonly paces = new Map<string, Pace>();
  /** Keys without an open socket, by when their last one closed (oldest first: a Map keeps insertion order). */
  private readonly idle = new Map<string, number>();
  private readonly forgetAfterMs: number;

  constructor(
    readonly ratePerSec: number,
    readonly burst: number,
  ) {
    if (!(ratePerSec > 0) || !(burst >= 1)) throw new TypeError('ratePerSec must be above 0 and burst at least 1');
    this.forgetAfterMs = Math.max(FLOOD_WINDOW_MS, Math.ceil((burst * 1_000) / ratePerSec));
  }

  /** Entries held (for tests and metrics). */
  get size(): number {
    return this.paces.size;
  }

  /** A socket of `key` opened: its pace, shared with every other socket of the key, past and present. */
  open(key: string, now: number): Pace {
    this.prune(now);
    let pace = this.paces.get(key);
    if (!pace) this.paces.set(key, (pace = new Pace(this.burst, now)));
    this.idle.delete(key);
    pace.sockets += 1;
    return pace;
  }

  /** A socket of `key` closed. */
  close(key: string, pace: Pace, now: number): void {
    pace.sockets -= 1;
    if (pace.sockets <= 0 && this.paces.get(key) === pace) {
      this.idle.delete(key);
      this.idle.set(key, now);
    }
    this.prune(now);
  }

  /** Take a token for one frame; false when the bucket is empty (the frame is refused). */
  take(pace: Pace, now: number): boolean {
    this.refill(pace, now);
    if (pace.tokens < 1) return false;
    pace.tokens -= 1;
    return true;
  }

  /** Whether `key` has a token now, taking none (a key never seen has a full bucket). */
  ready(key: string, now: number): boolean {
    const pace = this.paces.get(key);
    if (!pace) return true;
    this.refill(pace, now);
    return pace.tokens >= 1;
  }

  /** Take a token for `key` with no socket of its own (a request): false when its bucket is empty. */
  takeOnce(key: string, now: number): boolean {
    const pace = this.open(key, now);
    const taken = this.take(pace, now);
    this.close(key, pace, now);
    return taken;
  }

  /** Count one frame in the current one-second window; returns the count so far. */
  count(pace: Pace, now: number): number {
    if (now - pace.windowStart >= FLOOD_WINDOW_MS) {
      pace.windowStart = now;
      pace.inWindow = 0;
    }
    pace.inWindow += 1;
    return pace.inWindow;
  }

  /** Bring `pace`'s tokens up to `now`. */
  private refill(pace: Pace, now: number): void {
    if (now <= pace.at) return;
    pace.tokens = Math.min(this.burst, pace.tokens + ((now - pace.at) * this.ratePerSec) / 1_000);
    pace.at = now;
  }

  private prune(now: number): void {
    for (const [key, since] of this.idle) {
      if (now - since < this.forgetAfterMs) break;
      this.idle.delete(key);
      this.paces.delete(key);
    }
  }
}
