// The Redis store: the same Store as store/memory.ts, with shared state in
// Redis so that any number of matching and signalling processes can serve one
// pool (issue #4). Each transition is one Lua script (./lua.ts), loaded once
// and called by SHA (this file: the calls, start and stop). Messages reach
// sockets through the inbox stream of the process holding them, in the order
// the transitions happened (./inbox.ts); signals of a room both members have
// joined go without a script (./relay.ts); what a process holds, its
// heartbeat and its heal after a lapse or a restart are in ./recovery.ts.
// docs/SCALING.md describes the key layout, the liveness rules and what
// happens when Redis goes away.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { RedisWindowLimiter } from './limits.js';
import { CloseCode, wellFormed, type SignalType } from '@dyad/protocol';
import {
  REPORT_LOG_PER_ADDR,
  emptyEffects,
  type ActivityMinute,
  type Admission,
  type AttachResult,
  type ChatSeen,
  type BanRecord,
  type Channel,
  type Delivery,
  type Limiter,
  type Effects,
  type NewSession,
  type NextRefused,
  type RegisterResult,
  type ReportResult,
  type ReportSummary,
  type Store,
  type StoreOptions,
  type StoreStats,
} from '../store.js';
import { toEffects, type RawResult } from './codec.js';
import { WriteTurns } from './turns.js';
import { CFG_NAMES, KEY, LIBRARY, SCRIPTS, type ScriptName } from './lua.js';
import { StoreUnavailableError, scrub, sleep, withTimeout, type Connection } from './calls.js';
import { INBOX_MAXLEN, INBOX_TTL_MS, SignalRelay, type RelayHost } from './relay.js';
import { Inbox } from './inbox.js';
import { Recovery, attachArgs, type Pending, type Profile } from './recovery.js';
import { SocketCounts } from './sockets.js';
import * as moderation from './moderation.js';
import { newRoomCode, newSessionId as newId } from '../../core/ids.js';
import { onceEvery } from '../../ops/once-every.js';
import { KEPT_ITEM_OVERHEAD_BYTES } from '../../core/frames.js';

/** A Redis node's address, as REDIS_CLUSTER_NODES lists them. */
export interface NodeAddress {
  host: string;
  port: number;
}

export interface RedisStoreOptions extends StoreOptions {
  /** `redis://` or `rediss://` URL of one Redis (ignored when `cluster` is given). */
  url?: string;
  /** Seed nodes of a Redis Cluster (REDIS_CLUSTER_NODES): the store then talks to the Cluster through these. */
  cluster?: NodeAddress[];
  /** Put before every key, ahead of the `{dyad}` hash tag. @default 'dyad:' */
  prefix?: string;
  /** This process's id among all processes on the Redis. @default random */
  procId?: string;
  /** How often this process refreshes its heartbeat. @default 500 */
  heartbeatMs?: number;
  /** A process whose heartbeat is this old is taken for dead: its sockets get nothing and are never paired. @default 2_000 */
  heartbeatTtlMs?: number;
  /** How long a missing heartbeat must stay missing before its sockets are dropped. @default 2_000 */
  suspectMs?: number;
  /** How often this process offers to reap dead processes and lapsed grace periods; 0: never. @default 1_000 */
  reapIntervalMs?: number;
  /** A store call that takes longer fails (its effects still run when it completes). @default 2_000 */
  callTimeoutMs?: number;
  /** How often the keys of sessions with sockets here are refreshed. @default 300_000 */
  touchIntervalMs?: number;
  /** On a Cluster, relay streams per process, spread over the slot space (REDIS_RELAY_LANES); 0: through the inbox. @default 0 */
  relayLanes?: number;
  /** Bytes of relayed signals sent to Redis and not yet acknowledged, at most (RELAY_BYTES_IN_FLIGHT). @default 4 MiB */
  relayBytesInFlight?: number;
  /** Entries waiting in another process's inbox or lane past which no signal is relayed to it (RELAY_BACKLOG_ENTRIES). @default 2_048 */
  relayBacklogEntries?: number;
  log?: Logger;
}

/** Lifetime of a session's keys without a refresh; the owner refreshes them well before. */
export const SESSION_TTL_MS = 3_600_000;
/** Lifetime of index keys (pool sets, process registry) without a write. */
const INDEX_TTL_MS = 86_400_000;
/** Oldest members read per index set in a pairing attempt (fairness). */
const PAIR_SCAN = 32;
/** Random members sampled per index set in a pairing attempt. */
const PAIR_SAMPLE = 16;
/** A registration's keys outlive its timer by this much (only a dead process's leftovers need it). */
const REGISTRATION_SLACK_MS = 60_000;
/** A grace period whose own timer did not end it is ended by the reaper this long after its deadline. */
const GRACE_SLACK_MS = 5_000;
/** Most sessions or grace periods handled in one reaper run. */
const REAP_BATCH = 500;
const START_TIMEOUT_MS = 20_000;

const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');
const newProcId = (): string => randomBytes(6).toString('base64url');

/** A key prefix is used verbatim in front of the hash tag, so it must not contain one. */
export function checkPrefix(prefix: string): string | undefined {
  if (/[{}\s]/.test(prefix)) return 'must not contain braces or spaces';
  if (prefix.length > 64) return 'at most 64 characters';
  return undefined;
}

/** A periodic task (heartbeat, reaper, touch) still running after this many of its periods, or of call timeouts, is logged. */
const HELD_UP_RUNS = 5;

export class RedisStore implements Store {
  /** Commands and scripts; fails fast while Redis is unreachable. Shared with the rate limiters. */
  readonly client: Connection;
  /** Blocking reads of this process's inbox. */
  private readonly reader: Connection;
  /**
   * The per-address limiters' own connection: its commands time out, so a
   * stalled Redis cannot hold a registration or a `next` forever (the
   * limiter then falls back to this process's own count).
   */
  private readonly limits: Connection;
  /** The writes of a turn to the transitions' and limiters' connections leave together (./turns.ts). */
  private readonly turns = new WriteTurns();
  readonly procId: string;
  private readonly prefix: string;
  private readonly base: string;
  /** This process's inbox stream. */
  private readonly cfg: string;
  private readonly random: () => number;
  private readonly shas = new Map<ScriptName, string>();
  /**
   * Transitions run as functions of LIBRARY (FCALL) once it is loaded on
   * every primary; a Redis without functions (before 7.0) runs the scripts.
   */
  private functions = false;
  /** The load of the library and scripts under way, if any (reload). */
  private loading: Promise<void> | undefined;
  /** Warnings that an outage repeats for every message, written once a minute at most. */
  private readonly warnings = onceEvery(60_000);
  /** Signals relayed without a script, and the relay lanes of a Cluster (./relay.ts). */
  private readonly relay: SignalRelay;
  /** This process's inbox and its reader (./inbox.ts). */
  private readonly inbox: Inbox;
  /** What this process holds, its heartbeat, and its recovery (./recovery.ts). */
  private readonly recovery: Recovery;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Open sockets per address, counted with the other processes (./sockets.ts). */
  private readonly sockets: SocketCounts;
  private handler: ((fx: Effects) => Promise<void>) | undefined;
  private released = false;
  private closed = false;

  private readonly heartbeatMs: number;
  private readonly heartbeatTtlMs: number;
  private readonly suspectMs: number;
  private readonly reapIntervalMs: number;
  private readonly callTimeoutMs: number;
  private readonly touchIntervalMs: number;
  private readonly log: Logger | undefined;

  constructor(private readonly opts: RedisStoreOptions) {
    this.prefix = opts.prefix ?? 'dyad:';
    const bad = checkPrefix(this.prefix);
    if (bad) throw new TypeError(`prefix: ${bad}`);
    // One hash tag for every key a script touches: they share a Cluster slot.
    this.base = `${this.prefix}{dyad}:`;
    this.procId = opts.procId ?? newProcId();
    this.random = opts.random ?? Math.random;
    this.heartbeatMs = opts.heartbeatMs ?? 500;
    this.heartbeatTtlMs = opts.heartbeatTtlMs ?? 2_000;
    this.suspectMs = opts.suspectMs ?? 2_000;
    this.reapIntervalMs = opts.reapIntervalMs ?? 1_000;
    this.callTimeoutMs = opts.callTimeoutMs ?? 2_000;
    this.touchIntervalMs = opts.touchIntervalMs ?? 300_000;
    this.log = opts.log;
    const settings: Record<(typeof CFG_NAMES)[number], number> = {
      grace: opts.graceMs,
      interest: opts.interestTimeoutMs,
      regttl: opts.registrationTtlMs,
      cooldown: opts.repairCooldownMs,
      buffer: opts.signalBuffer,
      fair: opts.fairWaitMs,
      banthr: opts.reportBanThreshold,
      repwin: opts.reportWindowMs,
      bandur: opts.banDurationMs,
      ttl: SESSION_TTL_MS,
      idxttl: INDEX_TTL_MS,
      inboxmax: INBOX_MAXLEN,
      inboxttl: INBOX_TTL_MS,
      scan: PAIR_SCAN,
      sample: PAIR_SAMPLE,
      regslack: REGISTRATION_SLACK_MS,
      minroom: opts.reportMinRoomMs,
      banmax: opts.banMaxMs,
      strikewin: opts.banStrikeWindowMs,
      keptroom: opts.keptBytesPerRoom,
      keptall: opts.keptBytesPerProcess,
      keptres: opts.keptBytesReservedPerRoom,
      keptresall: opts.keptBytesReservedTotal,
      sessmax: opts.maxSessionsPerAddr,
      keptitem: KEPT_ITEM_OVERHEAD_BYTES,
      block: opts.blockMs,
      replog: REPORT_LOG_PER_ADDR,
      nextmax: opts.nextRatePerMin,
      regmax: opts.registerRatePerMin,
      abmax: opts.addressBlocksMax,
      pendmax: opts.pendingRegistrationsMax,
      stmax: opts.banStrikesMax,
    };
    this.cfg = CFG_NAMES.map((n) => String(Math.round(settings[n]))).join(',');
    for (const [name, lua] of Object.entries(SCRIPTS)) this.shas.set(name as ScriptName, createHash('sha1').update(lua).digest('hex'));

    const common: RedisOptions = {
      // Reconnect quickly and forever; the process stays up and /readyz says 503 meanwhile.
      retryStrategy: (times) => Math.min(50 * times, 1_000),
      connectionName: `dyad-${this.procId}`,
      lazyConnect: true,
    };
    const connect = (o: RedisOptions): Connection => {
      if (!opts.cluster) return new Redis(opts.url ?? 'redis://127.0.0.1:6379', o);
      const { enableOfflineQueue, retryStrategy, lazyConnect, ...node } = o;
      return new Cluster(opts.cluster, {
        redisOptions: node,
        enableOfflineQueue,
        lazyConnect,
        clusterRetryStrategy: retryStrategy,
        // A moved slot (a shard restarted, a failover) is followed at once, and the map refreshed.
        retryDelayOnMoved: 0,
        // A command whose node connection closed is sent again 50 ms later only where that is
        // harmless (a read). Elsewhere it may have run, its reply lost with the connection: sent
        // again, a script would run twice, or long after its caller gave up on it. It fails, as
        // on one Redis (autoResendUnfulfilledCommands: false).
        retryDelayOnFailover: o.maxRetriesPerRequest === null ? 50 : 0,
        slotsRefreshTimeout: this.callTimeoutMs,
      });
    };
    this.client = connect({
      ...common,
      // Scripts are not idempotent: a command is never queued or resent, it fails.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    });
    this.reader = connect({ ...common, maxRetriesPerRequest: null });
    const host: RelayHost = {
      client: this.client,
      turns: this.turns,
      prefix: this.prefix,
      base: this.base,
      procId: this.procId,
      log: this.log,
      emit: (fx) => this.emit(fx),
      inboxId: () => this.inbox.lastId,
      inboxCaughtUp: () => this.inbox.caughtUp(),
      holdsSignalling: (id, conn) => this.recovery.holdsSignalling(id, conn),
      closed: () => this.closed,
    };
    const lanes = opts.cluster ? Math.max(0, Math.floor(opts.relayLanes ?? 0)) : 0;
    this.relay = new SignalRelay(host, lanes, () => connect({ ...common, maxRetriesPerRequest: null }), {
      bytesInFlight: opts.relayBytesInFlight ?? 4 * 1024 * 1024,
      backlogEntries: opts.relayBacklogEntries ?? 2_048,
    });
    this.inbox = new Inbox(
      { client: this.client, relay: this.relay, emit: (fx) => this.emit(fx), closed: () => this.closed },
      this.reader,
      `${this.base}${KEY.inbox}${this.procId}`,
      this.callTimeoutMs,
    );
    this.limits = connect({
      ...common,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.callTimeoutMs,
    });
    this.limits.on('error', () => undefined);
    this.turns.watch(this.client);
    this.turns.watch(this.limits);
    this.sockets = new SocketCounts({
      client: this.client,
      base: this.base,
      procId: this.procId,
      ttlMs: SESSION_TTL_MS,
      callTimeoutMs: this.callTimeoutMs,
      log: this.log,
      released: () => this.released,
    });
    this.recovery = new Recovery({
      exec: (name, now, args, o) => this.exec(name, now, args, o),
      emit: (fx) => this.emit(fx),
      inbox: this.inbox,
      relay: this.relay,
      sockets: this.sockets,
      heartbeatTtlMs: this.heartbeatTtlMs,
      log: this.log,
      stopped: () => this.closed || this.released,
    });
    let down = false;
    const onError = (err: Error): void => {
      if (!down) this.log?.warn({ err: err.message }, 'redis unreachable');
      down = true;
    };
    this.client.on('error', onError);
    this.reader.on('error', () => undefined);
    this.client.on('ready', () => {
      if (down) this.log?.info('redis reachable again');
      down = false;
      void this.reload().catch(() => undefined);
      void this.recovery.beat();
    });
  }

  // ------------------------------------------------------------ life

  /** Connect, load the scripts, announce this process, start the background loops. */
  async start(): Promise<void> {
    const ready = (r: Connection): Promise<void> =>
      r.status === 'ready' ? Promise.resolve() : new Promise((resolve) => r.once('ready', () => resolve()));
    // A failed first attempt is retried like any later one; only the overall wait is bounded.
    this.client.connect().catch(() => undefined);
    this.reader.connect().catch(() => undefined);
    this.limits.connect().catch(() => undefined);
    this.relay.connect();
    try {
      await withTimeout(Promise.all([ready(this.client), ready(this.reader)]), START_TIMEOUT_MS, 'connecting to Redis');
    } catch (err) {
      this.disconnectAll();
      throw new StoreUnavailableError(`cannot reach Redis: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    await this.reload();
    // Before the first heartbeat announces this process, so that nothing relayed to it is refused.
    await this.relay.open();
    // This process is alive for the others once its heartbeat is in Redis, and a session
    // of a process that is not alive is never paired: no session is taken before it is.
    // The beat that the connection's 'ready' started may still be under way, or may have
    // failed (on a Cluster, a node's connection may still be opening when the Cluster is
    // ready): it is waited for, and made again, 50 ms apart, until one is written.
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await this.recovery.beat())) {
      if (Date.now() > deadline || this.closed) throw new StoreUnavailableError('could not write the heartbeat of this process');
      await sleep(50);
    }
    this.every('heartbeat', this.heartbeatMs, () => this.recovery.beat(), () => this.recovery.stage);
    if (this.reapIntervalMs > 0) this.every('reaper', this.reapIntervalMs, () => this.reap(Date.now()));
    this.every('touch', this.touchIntervalMs, () => this.recovery.touch());
    this.inbox.read();
    this.relay.read();
  }

  private disconnectAll(): void {
    this.client.disconnect();
    this.reader.disconnect();
    this.limits.disconnect();
    void this.relay.close();
  }

  /**
   * Run `task` every `ms`, one run at a time. A run still going after
   * HELD_UP_RUNS periods (every call in it is bounded, so this is a defect)
   * is logged once, with `stage` (where it waits), as nothing else would show it.
   */
  private every(name: string, ms: number, task: () => Promise<unknown>, stage?: () => string): void {
    let since: number | undefined;
    let told = false;
    const t = setInterval(() => {
      if (this.closed) return;
      if (since !== undefined) {
        const heldMs = performance.now() - since;
        if (!told && heldMs > HELD_UP_RUNS * Math.max(ms, this.callTimeoutMs)) {
          told = true;
          this.log?.warn({ task: name, heldMs: Math.round(heldMs), stage: stage?.() }, 'a periodic task is held up');
        }
        return;
      }
      since = performance.now();
      task()
        .catch(() => undefined)
        .finally(() => {
          if (told) this.log?.warn({ task: name, heldMs: Math.round(performance.now() - (since ?? 0)) }, 'a periodic task held up is done');
          since = undefined;
          told = false;
        });
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  /**
   * Load the function library and every script on every primary (a Cluster
   * node that gains the slot later gets them on first use: see evalsha).
   */
  private reload(): Promise<void> {
    // One load at a time: every call that finds the library gone asks for it,
    // and a load per call would keep a restarted Redis busy loading.
    // Bounded, so that a node that never answers cannot hold back every later load.
    this.loading ??= withTimeout(this.loadScripts(), START_TIMEOUT_MS, 'loading the Redis functions and scripts').finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async loadScripts(): Promise<void> {
    const nodes: Redis[] = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    const loaded = await Promise.all(
      nodes.map(async (node) => {
        const pipe = node.pipeline();
        for (const lua of this.sockets.scripts()) pipe.script('LOAD', lua);
        // Never REPLACE: a library of this name is this very code (the name is its hash),
        // loaded already by another process, and replacing it under their calls gains nothing.
        pipe.call('FUNCTION', 'LOAD', LIBRARY.code);
        const replies = (await pipe.exec()) ?? [];
        const err = replies[this.sockets.shas.size]?.[0];
        if (!err || /already exists/i.test(err.message)) return true;
        // A Redis without functions runs the transitions as scripts.
        const scripts = node.pipeline();
        for (const name of this.shas.keys()) scripts.script('LOAD', SCRIPTS[name]);
        await scripts.exec();
        return false;
      }),
    );
    this.functions = loaded.every(Boolean);
    // sha or function -> name, for whoever reads Redis's command log (bench/lib/redis-diag.ts); renewed at each (re)connect.
    const names = Object.fromEntries([
      ...[...this.shas].map(([name, sha]) => [sha, name]),
      ...Object.entries(LIBRARY.fn).map(([name, fn]) => [fn, name]),
      ...[...this.sockets.shas].map(([name, sha]) => [sha, `socket-${name}`]),
    ]);
    await this.client.multi().hset(`${this.prefix}scripts`, names).pexpire(`${this.prefix}scripts`, INDEX_TTL_MS).exec();
  }

  subscribe(handler: (fx: Effects) => Promise<void>): void {
    this.handler = handler;
  }

  /** Effects that arrive outside a call (inbox, late replies, replays) go to the hub. */
  private async emit(fx: Effects): Promise<void> {
    this.recovery.observe(fx);
    if (!this.handler) return;
    if (fx.deliver.length + fx.close.length + fx.timers.length + fx.paired.length + fx.ended.length === 0) return;
    try {
      await this.handler(fx);
    } catch (err) {
      this.log?.error({ err }, 'running effects failed');
    }
  }

  // ------------------------------------------------------------ calling scripts

  private async evalsha(name: ScriptName, argv: string[]): Promise<string> {
    // Signals relayed before this transition reach Redis before it (through a lane, on
    // another shard: once acknowledged, so that no inbox entry it writes can overtake them).
    const relayed = this.relay.beforeCall();
    if (relayed) await relayed;
    try {
      if (this.functions) return (await this.client.fcall(LIBRARY.fn[name], 1, this.base, ...argv)) as string;
      return (await this.client.evalsha(this.shas.get(name) ?? '', 1, this.base, ...argv)) as string;
    } catch (err) {
      // Redis restarted (or flushed its functions or scripts): the call did not run. Run it as a script
      // (EVAL goes to the node of the key and caches the script there) and load everything again.
      if (!(err instanceof Error) || !(err.message.startsWith('NOSCRIPT') || /function not found/i.test(err.message))) throw err;
      if (this.functions) this.reload().catch((e: unknown) => this.log?.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not load the Redis functions'));
      return (await this.client.eval(SCRIPTS[name], 1, this.base, ...argv)) as string;
    }
  }

  /**
   * Run one transition. Its messages and closes reach the hub through the
   * inbox readers (this process's included) before the call resolves; what
   * comes back is for the caller to carry out itself (timers to arm, pairings
   * and room ends to count) and the transition's own result `x`. A call that
   * outlives callTimeoutMs fails, so the client gets an answer; whatever it
   * caused when it does complete is carried out then (`late`).
   */
  private async exec(
    name: ScriptName,
    now: number,
    args: readonly (string | number)[],
    opts: {
      codes?: number;
      late?: (r: { fx: Effects; x: unknown }) => void;
      /** The call failed after timing out: whether it ran is unknown for good. */
      lateFailed?: () => void;
      detached?: boolean;
    } = {},
  ): Promise<{ fx: Effects; x: unknown }> {
    const codes = Array.from({ length: opts.codes ?? 0 }, newRoomCode).join(',');
    const seq = this.inbox.order.send();
    const argv = [this.procId, String(now), this.cfg, String(this.random()), String(this.random()), codes, String(seq), ...args.map(String)];
    const call = this.evalsha(name, argv).then(
      async (text) => {
        let reply: { raw: RawResult; mine: Effects | undefined };
        try {
          reply = readReply(text);
        } catch (err) {
          this.inbox.order.answered(seq);
          throw err;
        }
        // Messages for this process's own sockets that came back in the reply
        // go to the hub in their place among the inbox entries (order.ts).
        const { raw, mine } = reply;
        const inline = this.inbox.order.answered(seq, mine && { after: typeof raw.l === 'string' ? raw.l : '', run: () => this.emit(mine) });
        if (this.relay.laneCount > 0 && raw.o && typeof raw.o === 'object') this.relay.noteCaused(raw.o as Record<string, unknown>);
        // Other messages and closes travel through this process's inbox like everyone
        // else's (so each socket sees them in transition order): the call is done
        // once the reader has handed them to the hub.
        if (!opts.detached) {
          if (typeof raw.id === 'string') await this.inbox.carriedOut(raw.id);
          await inline;
        }
        return { fx: toEffects(raw), x: raw.x };
      },
      (err: unknown) => {
        // It may have run, its reply lost: the inbox entries that wait for it (a pairing
        // made after it, say) go on only once its caller has heard it failed (the edge
        // says so to the socket in this turn), so the socket is told it is unsure first.
        setImmediate(() => this.inbox.order.answered(seq));
        throw err;
      },
    );
    return new Promise((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(new StoreUnavailableError(`${name} took longer than ${this.callTimeoutMs} ms`));
      }, this.callTimeoutMs);
      call.then(
        (r) => {
          clearTimeout(timer);
          if (!timedOut) return resolve(r);
          opts.late?.(r);
          void this.emit(r.fx);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!timedOut) reject(scrub(err, name));
          else opts.lateFailed?.();
        },
      );
    });
  }

  private async transition(name: ScriptName, now: number, args: readonly (string | number)[], codes = 0): Promise<Effects> {
    return (await this.exec(name, now, args, { codes })).fx;
  }

  // ------------------------------------------------------------ registration and look-ups

  async register(n: NewSession, now: number, admission: Admission = {}): Promise<RegisterResult> {
    return this.registering(n, now, admission);
  }

  async registerAttached(n: NewSession, conn: string, now: number, admission: Admission = {}): Promise<RegisterResult> {
    return this.registering(n, now, admission, conn);
  }

  /**
   * One script for a registration and its admission, and with `conn` for the
   * opening of its matching socket too. A socket it counts (maxSockets) is
   * counted here at once, as admitSocket counts one, and given back unless registered.
   */
  private async registering(n: NewSession, now: number, admission: Admission, conn?: string): Promise<RegisterResult> {
    const { proof, maxSockets } = admission;
    const mine = maxSockets !== undefined ? this.sockets.hold(n.addr) : 0;
    let registered = false;
    try {
      const r = await this.registerScript(n, now, [
        proof?.key ?? '',
        proof ? String(Math.max(1, Math.round(proof.untilMs - now))) : '',
        maxSockets !== undefined ? String(maxSockets) : '',
        String(mine),
      ], conn);
      registered = r.status === 'ok';
      return r;
    } finally {
      if (maxSockets !== undefined && !registered) this.sockets.giveBack(n.addr);
    }
  }

  private async registerScript(n: NewSession, now: number, admission: string[], conn?: string): Promise<RegisterResult> {
    const th = hashToken(n.token);
    // What an answer that came too late had attached: the socket waits no more, so the session leaves as by a clean close.
    const late = (socket: string) => ({ x }: { x: unknown }): void => {
      const r = x as { status: string; id?: string };
      if (r.status !== 'ok' || r.id === undefined) return;
      this.detach('matching', r.id, socket, true, now).then(
        (fx) => this.emit(fx),
        () => undefined,
      );
    };
    for (let attempt = 0; attempt < 5; attempt++) {
      const gen = newId();
      const args = [
        n.name ?? '',
        gen,
        n.mode,
        JSON.stringify(n.interests.map(wellFormed)),
        n.lang ? wellFormed(n.lang) : '',
        th,
        n.addr,
        n.country ?? '',
        n.area ?? '',
        n.wants ?? '',
        n.showCountry ? '1' : '',
        ...admission,
      ];
      let reply: { fx: Effects; x: unknown };
      if (conn === undefined) reply = await this.exec('register', now, args);
      else {
        // A one-trip start whose call failed may have run all the same, its reply lost with the
        // connection: its session would hold a socket that never opened (a ghost, paired and never
        // answering). It leaves as by a clean close once Redis answers again; a detach of a socket
        // the session never had does nothing.
        const abandoned = (): void => this.recovery.queue({ kind: 'detach', channel: 'matching', id: n.name || gen, conn, left: true, now });
        try {
          reply = await this.exec('registerAttached', now, [...args, conn], { codes: 1, late: late(conn), lateFailed: abandoned });
        } catch (err) {
          // Failed with its connection, it may have run; one that timed out is left to its late answer (or lateFailed).
          if (this.failedOnConnection(err)) abandoned();
          throw err;
        }
      }
      const { fx, x } = reply;
      const r = x as { status: string; id?: string; until?: number; retry?: number; profile?: Profile };
      if (r.status === 'ok') {
        if (conn !== undefined && r.profile) this.recovery.remember(r.id ?? '', th, r.profile, 'matching', conn);
        return { status: 'ok', id: r.id ?? '', effects: fx };
      }
      if (r.status === 'exists') return { status: 'exists' };
      if (r.status === 'banned') return { status: 'banned', until: Number(r.until) };
      if (r.status === 'rate-limited') return { status: 'rate-limited', retryMs: Number(r.retry) };
      if (r.status === 'busy') return { status: 'busy', retryMs: Number(r.retry) };
      if (r.status === 'too-many-sessions') return { status: 'too-many-sessions', retryMs: this.opts.graceMs };
      if (r.status === 'proof-spent' || r.status === 'too-many-sockets') return { status: r.status };
      // 'retry': a made-up id was taken (72 random bits: practically never).
    }
    throw new Error('could not find a free session id');
  }

  async onRegistrationExpired(id: string, now: number): Promise<Effects> {
    return this.transition('onRegistrationExpired', now, [id]);
  }

  async sessionForToken(token: string): Promise<string | undefined> {
    return (await this.client.get(`${this.base}${KEY.token}${hashToken(token)}`)) ?? undefined;
  }

  async verify(id: string, token: string): Promise<boolean> {
    const th = await this.client.hget(`${this.base}${KEY.session}${id}`, 'th');
    if (th === null || th.length !== 64) return false;
    return timingSafeEqual(Buffer.from(th, 'hex'), Buffer.from(hashToken(token), 'hex'));
  }

  async bannedUntil(addr: string, now: number): Promise<number | undefined> {
    const until = await this.client.get(`${this.base}${KEY.ban}${addr}`);
    return until !== null && Number(until) > now ? Number(until) : undefined;
  }

  // ------------------------------------------------------------ sockets

  async attachMatching(id: string, token: string, conn: string, now: number, seen?: ChatSeen): Promise<AttachResult> {
    return this.attach('matching', id, hashToken(token), conn, now, seen);
  }

  async attachSignalling(id: string, token: string, conn: string, now: number): Promise<AttachResult> {
    return this.attach('signalling', id, hashToken(token), conn, now);
  }

  private async attach(channel: Channel, id: string, th: string, conn: string, now: number, seen?: ChatSeen): Promise<AttachResult> {
    const remember = ({ x }: { x: unknown }): boolean => {
      const r = x as { ok: boolean; profile?: Profile };
      if (r.ok && r.profile) this.recovery.remember(id, th, r.profile, channel, conn);
      return r.ok;
    };
    try {
      const r = await this.exec(channel === 'matching' ? 'attachMatching' : 'attachSignalling', now, attachArgs(id, th, conn, seen), {
        codes: channel === 'matching' ? 1 : 0,
        late: remember,
        // Whether it ran is unknown, and the socket has only the error: it is closed (as
        // Try Again Later) and its client resumes, to be told where it stands either way.
        lateFailed: () => {
          const fx = emptyEffects();
          fx.close.push({ to: id, channel, conn, code: CloseCode.tryAgain, reason: 'store unavailable, resume' });
          void this.emit(fx);
        },
      });
      if (!remember(r)) return { ok: false, reason: 'unauthorized' };
      return { ok: true, effects: r.fx };
    } catch (err) {
      // Failed with its connection (not sent, or its reply lost): opened again once Redis is back; the socket waits for it.
      if (this.failedOnConnection(err)) this.recovery.queue({ kind: 'attach', channel, id, th, conn, now, ...(seen ? { seen } : {}) });
      throw err;
    }
  }

  private forget(id: string, channel: Channel, conn: string): void {
    this.recovery.forget(id, channel, conn);
    if (channel === 'signalling') this.relay.forgetRoute(conn);
  }


  private async detach(channel: Channel, id: string, conn: string, left: boolean, now: number): Promise<Effects> {
    this.forget(id, channel, conn);
    return this.closing({ kind: 'detach', channel, id, conn, left, now }, () =>
      this.transition(channel === 'matching' ? 'detachMatching' : 'detachSignalling', now, [id, conn, left ? '1' : '0', this.inbox.lastId]),
    );
  }

  /**
   * A close (or an expulsion) of a socket here, sent by `call`. It is sent
   * again after a heal under way (which may bring the socket back), and once
   * Redis is back if it never got there: a close Redis never heard of would
   * leave a ghost.
   */
  private async closing(again: Pending & { kind: 'detach' | 'expel' }, call: () => Promise<Effects>): Promise<Effects> {
    const queued = this.recovery.queueIfHealing(again);
    try {
      return await call();
    } catch (err) {
      if (this.failedOnConnection(err) && !queued) this.recovery.queue(again);
      throw err;
    }
  }

  /**
   * Did the call fail with its connection: never sent, or sent and its reply
   * lost (so whether it ran is unknown)? As opposed to a script error, or a
   * timeout, whose late answer (or late failure) is handled when it comes.
   */
  private failedOnConnection(err: unknown): boolean {
    return err instanceof StoreUnavailableError && !err.message.includes('took longer');
  }

  async detachMatching(id: string, conn: string, left: boolean, now: number): Promise<Effects> {
    return this.detach('matching', id, conn, left, now);
  }

  async detachSignalling(id: string, conn: string, left: boolean, now: number): Promise<Effects> {
    return this.detach('signalling', id, conn, left, now);
  }

  async onMatchingGraceExpired(id: string, conn: string, now: number): Promise<Effects> {
    return this.transition('onMatchingGraceExpired', now, [id, conn]);
  }

  async onSignallingGraceExpired(id: string, conn: string, now: number): Promise<Effects> {
    return this.transition('onSignallingGraceExpired', now, [id, conn]);
  }

  // ------------------------------------------------------------ matching

  async next(id: string, conn: string, now: number): Promise<Effects | NextRefused> {
    const { fx, x } = await this.told(id, conn, this.exec('next', now, [id, conn], { codes: 1 }));
    const retry = (x as { limited?: unknown } | undefined)?.limited;
    return typeof retry === 'number' ? { limited: true, retryMs: retry } : fx;
  }

  async stop(id: string, conn: string, now: number): Promise<Effects> {
    return this.told(id, conn, this.transition('stop', now, [id, conn]));
  }

  /**
   * A call of matching socket conn whose reply tells the session where it now
   * stands (next, stop, report, block). Failed, it may still have run in Redis
   * and its reply, with that news, is lost: the socket is then told its state
   * afresh once Redis answers again, as a reopened socket is.
   */
  private async told<T>(id: string, conn: string, call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (err) {
      if (err instanceof StoreUnavailableError) this.recovery.queue({ kind: 'retell', id, conn });
      throw err;
    }
  }

  async chat(id: string, conn: string, message: string, now: number): Promise<Effects> {
    return this.transition('chat', now, [id, conn, wellFormed(message)]);
  }

  async typing(id: string, conn: string, typing: boolean): Promise<Effects> {
    return this.transition('typing', Date.now(), [id, conn, typing ? '1' : '0']);
  }

  async report(id: string, conn: string, reason: string | undefined, now: number, recorded: boolean): Promise<ReportResult> {
    const { fx, x } = await this.told(id, conn, this.exec('report', now, [id, conn, reason ?? '', recorded ? '1' : '0']));
    return { effects: fx, partner: (x as { partner?: unknown } | undefined)?.partner === true };
  }

  async block(id: string, conn: string, now: number, addressWide: boolean): Promise<Effects> {
    return this.told(id, conn, this.transition('block', now, [id, conn, addressWide ? '1' : '0'], 1));
  }

  async addBan(addr: string, durationMs: number, reason: string, now: number): Promise<{ until: number; effects: Effects }> {
    const { fx, x } = await this.exec('addBan', now, [addr, Math.round(durationMs), reason]);
    return { until: Number((x as { until?: unknown }).until), effects: fx };
  }

  activity(now: number): Promise<ActivityMinute[]> {
    return moderation.activity(this.client, this.base, now);
  }

  async onInterestTimeout(id: string, now: number): Promise<Effects> {
    return this.transition('onInterestTimeout', now, [id], 1);
  }

  // ------------------------------------------------------------ signalling

  async join(id: string, conn: string, room: string, now: number): Promise<Effects> {
    return this.transition('join', now, [id, conn, room]);
  }

  /**
   * Relay a signal: straight to the partner's socket where this process
   * knows where it is (./relay.ts), else through the script.
   */
  async signal(id: string, conn: string, room: string, type: SignalType, data: string, now: number): Promise<Effects> {
    return this.relay.direct(id, conn, room, type, data) ?? this.transition('signal', now, [id, conn, room, type, data]);
  }

  async leave(id: string, conn: string, room: string, now: number): Promise<Effects> {
    return this.transition('leave', now, [id, conn, room]);
  }

  // ------------------------------------------------------------ rules broken

  async expel(id: string, token: string, channel: Channel, conn: string, now: number): Promise<Effects> {
    this.forget(id, channel, conn);
    const th = hashToken(token);
    return this.closing({ kind: 'expel', channel, id, th, conn, now }, () => this.transition('expel', now, [id, th, channel, conn]));
  }

  /**
   * Called by the hub while it carries out an inbox entry: keeping (or
   * forwarding) the message is sent off at once, in order with this process's
   * later calls, and not waited for, so one closed socket never holds up the
   * delivery of everything behind it. What it sends follows through the inbox.
   */
  async undelivered(d: Delivery, now: number): Promise<Effects> {
    const m = d.msg;
    let args: (string | number)[] | undefined;
    const entry = this.inbox.entryOfDelivery(d);
    if (d.channel === 'matching' && m?.event === 'chat') args = [d.to, d.channel, d.conn, entry, m.sender, m.message, m.timestamp, m.seq ?? ''];
    if (d.channel === 'signalling' && d.signal) {
      const sig = d.signal;
      args = [d.to, d.channel, d.conn, entry, sig.room_code, sig.from, sig.type, sig.data];
    }
    // Only chat and signals are kept for an absent member; the rest is told again on resumption.
    if (args) {
      this.exec('undelivered', now, args, { detached: true }).catch((err: unknown) =>
        // Once a minute at most: while Redis is away every message to a closed socket fails so (a review counted 60,000 lines in a run).
        this.warnings('undelivered', (times) =>
          this.log?.warn({ err: err instanceof Error ? err.message : String(err), times }, 'could not keep undelivered messages (times: since the last such line)'),
        ),
      );
    }
    return emptyEffects();
  }

  // ------------------------------------------------------------ upkeep

  /**
   * Refresh this process's heartbeat (the loop does it every heartbeatMs;
   * public for tests and tools). It also notices that Redis lost its
   * data (the epoch key changed) or that this process was taken for dead
   * (its heartbeat had lapsed), and then heals; then replays what failed.
   */
  async heartbeat(): Promise<void> {
    await this.recovery.beat();
  }

  /** End what dead processes left: their sockets start grace, lapsed grace periods end. */
  async reap(now: number): Promise<Effects> {
    const { fx } = await this.exec('reap', now, [this.suspectMs, GRACE_SLACK_MS, REAP_BATCH, Math.max(100, Math.floor(this.reapIntervalMs * 0.9))]);
    await this.emit(fx);
    return fx;
  }

  async shutdown(now: number): Promise<Effects> {
    // Stop announcing ourselves first, or a heartbeat could bring us back to life.
    this.released = true;
    this.stopLoops();
    const sockets = this.sockets.releaseAll();
    try {
      await this.exec('release', now, []);
      this.recovery.clear();
      this.relay.clearRoutes(false);
      // Its timers would outlive the process: the reaper ends these grace periods instead.
      return emptyEffects();
    } catch (err) {
      // Unreachable: our heartbeat lapses and the other processes reap our sockets instead.
      this.log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not release sockets');
      return emptyEffects();
    } finally {
      await sockets;
    }
  }

  listBans(now: number): Promise<BanRecord[]> {
    return moderation.listBans(this.client, this.base, now);
  }

  liftBan(addr: string): Promise<boolean> {
    return moderation.liftBan(this.client, this.base, addr);
  }

  listReports(now: number, limit: number): Promise<ReportSummary[]> {
    return moderation.listReports(this.client, this.base, now, limit, this.opts);
  }

  async presence(token: string): Promise<{ id: string; open: boolean } | undefined> {
    const { x } = await this.exec('presence', Date.now(), [hashToken(token)]);
    const r = x as { id?: unknown; open?: unknown };
    return typeof r.id === 'string' ? { id: r.id, open: r.open === true } : undefined;
  }

  async roomOf(id: string, token: string): Promise<string | undefined> {
    // A read, not a transition: the session's token hash, state and room, checked here.
    const [th, st, room] = await this.client.hmget(`${this.base}${KEY.session}${id}`, 'th', 'st', 'room');
    if (typeof th !== 'string' || th.length !== 64) return undefined;
    if (!timingSafeEqual(Buffer.from(th, 'hex'), Buffer.from(hashToken(token), 'hex'))) return undefined;
    return st === 'matched' && typeof room === 'string' ? room : undefined;
  }

  async ping(): Promise<boolean> {
    if (this.client.status !== 'ready') return false;
    try {
      // On a Cluster the node holding the store's slot must answer (a PING would go to any node).
      if (this.client instanceof Cluster) return (await this.client.exists(`${this.base}${KEY.epoch}`)) >= 0;
      return (await this.client.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  /** Admit a socket from `addr` when fewer than `max` are open on all live processes together (./sockets.ts). */
  admitSocket(addr: string, max: number): Promise<boolean> {
    return this.sockets.admit(addr, max);
  }

  releaseSocket(addr: string): Promise<void> {
    return this.sockets.release(addr);
  }

  async stats(): Promise<StoreStats> {
    const b = this.base;
    const r = await this.client
      .pipeline()
      .zcard(`${b}${KEY.open}video`)
      .zcard(`${b}${KEY.narrow}video`)
      .zcard(`${b}${KEY.open}text`)
      .zcard(`${b}${KEY.narrow}text`)
      .zcard(`${b}${KEY.rooms}`)
      .zcard(`${b}${KEY.sessions}`)
      .get(`${b}${KEY.keptBytes}`)
      .smembers(`${b}${KEY.procs}`)
      .exec();
    const n = (i: number): number => Number(r?.[i]?.[1] ?? 0);
    // Online: sessions with a matching socket on some process (pm:<proc>).
    const procs = (r?.[7]?.[1] as string[] | undefined) ?? [];
    const counts = procs.length > 0 ? ((await procs.reduce((p, proc) => p.scard(`${b}${KEY.matchingHeld}${proc}`), this.client.pipeline()).exec()) ?? []) : [];
    const online = counts.reduce((sum, c) => sum + Number(c?.[1] ?? 0), 0);
    return { waiting: { video: n(0) + n(1), text: n(2) + n(3) }, rooms: n(4), sessions: n(5), online, keptBytes: n(6) };
  }

  /**
   * A rate limiter shared by every process on this Redis, of at most
   * limiterKeysMax keys; a local one stands in while Redis is away. Its keys
   * share the limit's name as hash tag (one slot on a Cluster, apart from the state's).
   */
  limiter(name: string, points: number, durationSec: number): Limiter {
    const tag = `{${name}}`;
    return new RedisWindowLimiter(this.limits, `${this.prefix}rl:${tag}:`, `${this.prefix}rlz:${tag}`, points, durationSec, this.opts.limiterKeysMax);
  }

  private stopLoops(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopLoops();
    this.relay.flush();
    this.reader.disconnect();
    this.limits.disconnect();
    await Promise.all([this.inbox.close(), this.relay.close()]);
    try {
      await withTimeout(this.client.quit(), 1_000, 'quit');
    } catch {
      this.client.disconnect();
    }
  }

}

/** A script's reply, and what it holds for this process's own sockets (`i`). */
function readReply(text: string): { raw: RawResult; mine: Effects | undefined } {
  const raw = JSON.parse(text) as RawResult;
  return { raw, mine: raw.i && typeof raw.i === 'object' ? toEffects(raw.i as RawResult) : undefined };
}

