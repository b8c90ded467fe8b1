// Heartbeats of the chaos soak's processes, watched from Redis. A process
// whose heartbeat stops while it runs is taken for dead by the others: its
// sockets are dropped in Redis and a call from one of them does nothing, so
// its clients wait without a word. The crowd's invariants see that only at
// the end, and only for the sessions still there; this watch sees it while
// it lasts. The processes are known to the bench by name, to Redis by the id
// each one draws at start: each start is matched to the id it added to the
// set of processes. The keys are read as an operator's tool would, by the
// key layout docs/SCALING.md gives (`procs`, `hb:<P>`; unit test
// redis-keys.test.ts holds that table to the store's names): the bench
// reaches the server only from outside.
import { Redis } from 'ioredis';

/** The servers' key prefix and hash tag (REDIS_PREFIX unset). */
const BASE = 'dyad:{dyad}:';
/** How often the heartbeats are read. */
const LOOK_EVERY_MS = 1_000;
/** A running process without a heartbeat for this long is a finding (its heartbeat lives 2 s, and is written every 0.5 s). */
export const HEARTBEAT_MISSING_MS = 6_000;
/** A process just started, just let go of a freeze, or on a Redis just restarted, is given this long to beat again. */
const SETTLING_MS = 5_000;

export class HeartbeatWatch {
  private readonly redis: Redis;
  private readonly ids = new Map<string, string>();
  /** Name -> since when it runs without a heartbeat (while it should have one). */
  private readonly missing = new Map<string, number>();
  /** Name -> until when it is excused (a start, a freeze, a Redis restart). */
  private readonly excused = new Map<string, number>();
  private everyone = 0;
  private timer: NodeJS.Timeout | undefined;
  private reading = false;

  constructor(
    url: string,
    /** The processes that run now, by name (a frozen one included: it is excused). */
    private readonly running: () => string[],
    /** A process ran without a heartbeat for HEARTBEAT_MISSING_MS or more: from `since` (ms, Date.now()), still missing `now`. */
    private readonly found: (name: string, since: number, now: number) => void,
  ) {
    this.redis = new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => 200 });
    this.redis.on('error', () => undefined);
  }

  async start(): Promise<void> {
    await this.redis.connect();
    this.timer = setInterval(() => void this.look(), LOOK_EVERY_MS).unref();
  }

  /**
   * Start process `name` with `launch`, and match it to the id it adds to the
   * set of processes: one start at a time, so that the new id is its own.
   */
  async launch<T>(name: string, launch: () => Promise<T>): Promise<T> {
    const before = new Set(await this.redis.smembers(`${BASE}procs`));
    const p = await launch();
    const added = (await this.redis.smembers(`${BASE}procs`)).filter((id) => !before.has(id));
    if (added.length === 1 && added[0]) this.ids.set(name, added[0]);
    this.excuse(name);
    return p;
  }

  /** Process `name` may be without a heartbeat for the next `forMs` (frozen, or let go of a freeze). */
  excuse(name: string, forMs = SETTLING_MS): void {
    this.excused.set(name, Date.now() + forMs);
  }

  /** Every process may be without a heartbeat for the next `forMs` (Redis restarting, or just back with nothing). */
  excuseAll(forMs = SETTLING_MS): void {
    this.everyone = Date.now() + forMs;
  }

  /** The id Redis knows process `name` by, if known. */
  idOf(name: string): string | undefined {
    return this.ids.get(name);
  }

  stop(): void {
    clearInterval(this.timer);
    this.redis.disconnect();
  }

  private async look(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      const names = this.running().filter((n) => this.ids.has(n));
      const beats = await Promise.all(names.map((n) => this.redis.exists(`${BASE}hb:${this.ids.get(n) ?? ''}`)));
      const now = Date.now();
      names.forEach((name, i) => {
        if (beats[i] === 1) {
          this.missing.delete(name);
          return;
        }
        // An excuse covers a heartbeat gone with it, not one that was missing already.
        const since = this.missing.get(name);
        if (since === undefined && (now < this.everyone || now < (this.excused.get(name) ?? 0))) return;
        if (since === undefined) {
          this.missing.set(name, now);
          return;
        }
        if (now - since >= HEARTBEAT_MISSING_MS) {
          this.found(name, since, now);
          // Told once per lapse: it counts again from here.
          this.missing.set(name, Number.POSITIVE_INFINITY);
        }
      });
    } catch {
      // Redis away (a restart): nothing is judged on this look.
    } finally {
      this.reading = false;
    }
  }
}
