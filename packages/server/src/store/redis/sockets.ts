// Open sockets per client address (MAX_SOCKETS_PER_ADDR) across processes:
// each process writes in Redis how many sockets from an address it holds
// (lua/socket-counts.ts), and an admission adds up the counts of the live
// ones. While Redis cannot answer within REDIS_CALL_TIMEOUT_MS this process's
// own count decides, as the rate limiters' stand-ins do, and Redis hears of
// it once back.
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { SOCKET_SCRIPTS, type SocketScriptName } from './lua/socket-counts.js';
import { evalCached, scrub, withTimeout } from './calls.js';

/** Addresses written in one socket-count script at most. */
const BATCH = 200;
/**
 * How long a closed socket's count waits before it is written, so that the
 * closes of that moment go to Redis in one script instead of one call each
 * (ms). Meanwhile the other processes count the socket as still open: an
 * address at its limit may be refused a socket that long, never admitted one
 * more.
 */
export const RELEASE_BATCH_MS = 20;

export interface SocketCountsOptions {
  /** The transitions' connection (see run). */
  client: Redis | Cluster;
  /** The key prefix with its hash tag. */
  base: string;
  procId: string;
  /** How long a count outlives its last write (ms). */
  ttlMs: number;
  callTimeoutMs: number;
  log?: Logger;
  /** This process has let go of its counts (shutdown): nothing more is written. */
  released: () => boolean;
}

export class SocketCounts {
  /** Each script's SHA-1, by name. */
  readonly shas: ReadonlyMap<SocketScriptName, string> = new Map(
    Object.entries(SOCKET_SCRIPTS).map(([name, lua]) => [name as SocketScriptName, createHash('sha1').update(lua).digest('hex')]),
  );
  /** Address -> sockets from it open here (admissions in flight included): what this process's count in Redis should be. */
  private readonly held = new Map<string, number>();
  /** Addresses whose count in Redis may differ from held (a write failed, or raced a refusal): written again on the next heartbeat. */
  private readonly unsynced = new Set<string>();
  /** Addresses with a socket closed since the last batch of releases was written, and that batch's write (release). */
  private readonly closing = new Set<string>();
  private batch: Promise<void> | undefined;

  constructor(private readonly o: SocketCountsOptions) {}

  /** The scripts' code, in the order of shas (to load them). */
  scripts(): string[] {
    return [...this.shas.keys()].map((name) => SOCKET_SCRIPTS[name]);
  }

  /** Admit a socket from `addr` when fewer than `max` are open on all live processes together. */
  async admit(addr: string, max: number): Promise<boolean> {
    const mine = this.hold(addr);
    let admitted = mine <= max;
    if (!this.o.released()) {
      try {
        admitted = (await this.run('admit', [addr, max, mine])) === 1;
        if (!admitted) this.giveBack(addr);
        return admitted;
      } catch {
        this.unsynced.add(addr);
      }
    }
    if (!admitted) this.drop(addr);
    return admitted;
  }

  /** One socket more from `addr` here, counted at once so that admissions in flight together see each other; returns this process's count. */
  hold(addr: string): number {
    const mine = (this.held.get(addr) ?? 0) + 1;
    this.held.set(addr, mine);
    return mine;
  }

  /**
   * A socket counted by hold that Redis refused (or may not have written): a
   * write for this address sent meanwhile carried it, so the count is
   * written again without it on the next heartbeat.
   */
  giveBack(addr: string): void {
    this.drop(addr);
    this.unsynced.add(addr);
  }

  /**
   * A socket from `addr` closed. Its count is written with those of the other
   * sockets closed within RELEASE_BATCH_MS, in one script; resolves once written
   * (or, when that failed, once it is left to the next heartbeat).
   */
  release(addr: string): Promise<void> {
    if (!this.held.has(addr)) return Promise.resolve();
    this.drop(addr);
    // After shutdown's release nothing of this process counts: writing would only leave a stale count behind.
    if (this.o.released()) return Promise.resolve();
    this.closing.add(addr);
    this.batch ??= new Promise<void>((done) => {
      setTimeout(() => {
        const addrs = [...this.closing];
        this.closing.clear();
        this.batch = undefined;
        // Each count as it is when the batch is sent (sync): a later write never carries an older one.
        void this.sync(addrs).then(done, done);
      }, RELEASE_BATCH_MS).unref();
    });
    return this.batch;
  }

  /** Write again the counts a failed write may have left wrong in Redis (on each heartbeat); undefined when there are none. */
  resync(): Promise<void> | undefined {
    return this.unsynced.size > 0 ? this.sync([...this.unsynced]) : undefined;
  }

  /** Write every count held here: Redis lost them, or they near the end of their lifetime. */
  syncAll(): Promise<void> {
    return this.sync([...this.held.keys()]);
  }

  /** On shutdown: none of this process's sockets count any more (they are closing). */
  async releaseAll(): Promise<void> {
    try {
      await this.run('release', []);
    } catch (err) {
      // Unreachable: the reaper removes the counts once our heartbeat has lapsed.
      this.o.log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not release socket counts');
    }
  }

  /** One socket fewer from `addr` here (the entry goes at zero). */
  private drop(addr: string): void {
    const n = (this.held.get(addr) ?? 0) - 1;
    if (n > 0) this.held.set(addr, n);
    else this.held.delete(addr);
  }

  /** Write this process's counts of `addrs` as they are now; those that fail are tried again on a later heartbeat. */
  private async sync(addrs: string[]): Promise<void> {
    if (this.o.released()) return;
    for (const a of addrs) this.unsynced.delete(a);
    for (let i = 0; i < addrs.length; i += BATCH) {
      const batch = addrs.slice(i, i + BATCH);
      try {
        await this.run('set', batch.flatMap((a) => [a, this.held.get(a) ?? 0]));
      } catch {
        for (const a of batch) this.unsynced.add(a);
      }
    }
  }

  /**
   * Run a socket-count script. It goes on the connection of the transitions,
   * whose registration of a one-trip start writes the same counts (store.ts
   * Admission): on one connection Redis runs them in the order they were
   * sent, so a count written earlier never lands after a later one. It
   * times out after REDIS_CALL_TIMEOUT_MS, when this process's own count decides.
   */
  private async run(name: SocketScriptName, args: readonly (string | number)[]): Promise<unknown> {
    const { client, base, procId, ttlMs, callTimeoutMs } = this.o;
    const script = { sha: this.shas.get(name) ?? '', lua: SOCKET_SCRIPTS[name] };
    try {
      return await evalCached(client, script, 1, [base, procId, String(ttlMs), ...args.map(String)], (p) => withTimeout(p, callTimeoutMs, name));
    } catch (err) {
      throw scrub(err, name);
    }
  }
}
