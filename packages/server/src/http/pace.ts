// Message rates at the edge: a token bucket per session and channel, and one
// per client address over all its sockets in this process. They run on every
// frame, so they are plain fields and arithmetic: no promise, no limiter-store
// lookup, no timer.

/** One second, the window of the flood count. */
const FLOOD_WINDOW_MS = 1_000;

/** Each idle queue of a PaceBook waits this many times longer than the one before. */
const IDLE_DELAY_STEP = 4;

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
  /** The idle queue (PaceBook) this key waits in without sockets, or -1. */
  queue = -1;

  constructor(burst: number, now: number) {
    this.tokens = burst;
    this.at = now;
    this.windowStart = now;
  }
}

/**
 * The paces of one kind of key. An entry lives while a socket of its key is
 * open and, after the last one closed, until its bucket is full again and its
 * flood window has passed: then it is the same as a new entry, so it is
 * dropped (closing and reopening a socket wins nothing). A key that took one
 * token (a request, say) goes within a second, whatever the bucket's size, so
 * keys made up by the million (one IPv6 subscriber's /64s) hold little memory:
 * what is held is bounded by the keys used within about a second, plus those
 * that took many tokens each, for as long as theirs take to refill.
 *
 * No timer per key: an idle key waits in the first of a few first-in
 * first-out queues whose delay covers its refill (1 s, then four times
 * longer each, up to the refill of an empty bucket), so a key that refills
 * fast never waits behind a slow one. Entries are dropped when a socket
 * opens or closes.
 */
export class PaceBook {
  private readonly paces = new Map<string, Pace>();
  /** Keys without an open socket, by when their last one closed (oldest first: a Map keeps insertion order), one map per delay. */
  private readonly idle: Map<string, number>[];
  /** How long a key waits in each idle queue, shortest first; the last is the refill of an empty bucket. */
  private readonly delays: number[];

  constructor(
    readonly ratePerSec: number,
    readonly burst: number,
  ) {
    if (!(ratePerSec > 0) || !(burst >= 1)) throw new TypeError('ratePerSec must be above 0 and burst at least 1');
    const longest = Math.max(FLOOD_WINDOW_MS, Math.ceil((burst * 1_000) / ratePerSec));
    this.delays = [];
    for (let d = FLOOD_WINDOW_MS; d < longest; d *= IDLE_DELAY_STEP) this.delays.push(d);
    this.delays.push(longest);
    this.idle = this.delays.map(() => new Map<string, number>());
  }

  /** Entries held (for tests and metrics). */
  get size(): number {
    return this.paces.size;
  }

  /** A socket of `key` opened: its pace, shared with every other socket of the key, past and present. */
  open(key: string, now: number): Pace {
    this.sweep(now);
    let pace = this.paces.get(key);
    if (!pace) this.paces.set(key, (pace = new Pace(this.burst, now)));
    if (pace.queue >= 0) {
      this.idle[pace.queue]!.delete(key);
      pace.queue = -1;
    }
    pace.sockets += 1;
    return pace;
  }

  /** A socket of `key` closed. */
  close(key: string, pace: Pace, now: number): void {
    pace.sockets -= 1;
    if (pace.sockets <= 0 && this.paces.get(key) === pace) {
      if (pace.queue >= 0) this.idle[pace.queue]!.delete(key);
      pace.queue = this.queueFor(pace, now);
      this.idle[pace.queue]!.set(key, now);
    }
    this.sweep(now);
  }

  /** Take `n` tokens for one frame (one, or its bytes); false when the bucket has fewer (the frame is refused). */
  take(pace: Pace, now: number, n = 1): boolean {
    this.refill(pace, now);
    if (pace.tokens < n) return false;
    pace.tokens -= n;
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

  /** Milliseconds until `pace` holds `n` tokens again (0: it does now). */
  waitFor(pace: Pace, n: number, now: number): number {
    this.refill(pace, now);
    return pace.tokens >= n ? 0 : Math.ceil(((Math.min(n, this.burst) - pace.tokens) * 1_000) / this.ratePerSec);
  }

  /** Milliseconds until `key` has a token again (0: it has one now). */
  waitMs(key: string, now: number): number {
    const pace = this.paces.get(key);
    return pace ? this.waitFor(pace, 1, now) : 0;
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

  /** The first idle queue whose delay covers the time until `pace` is the same as a new entry. */
  private queueFor(pace: Pace, now: number): number {
    this.refill(pace, now);
    const refillMs = ((this.burst - pace.tokens) * 1_000) / this.ratePerSec;
    const windowMs = pace.inWindow > 0 ? pace.windowStart + FLOOD_WINDOW_MS - now : 0;
    const needMs = Math.max(refillMs, windowMs);
    let i = 0;
    while (i < this.delays.length - 1 && this.delays[i]! < needMs) i++;
    return i;
  }

  /** Let go of the keys idle long enough to be as new: as sockets open and close, and on a timer for a quiet process. */
  sweep(now: number): void {
    for (let i = 0; i < this.idle.length; i++) {
      const queue = this.idle[i]!;
      const delay = this.delays[i]!;
      for (const [key, since] of queue) {
        if (now - since < delay) break;
        queue.delete(key);
        this.paces.delete(key);
      }
    }
  }
}
