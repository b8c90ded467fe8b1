// Signals relayed without a script. Once both members of a room have joined
// it, the processes holding their signalling sockets know where the partner's
// socket is (routes, from the route items the scripts write: lua/effects.ts),
// so a candidate, and after the first answer any signal, goes straight there:
// delivered by this process, or appended to the partner's process's inbox, or
// on a Cluster with REDIS_RELAY_LANES to one of that process's relay lanes
// (streams in slots of their own, so relayed signals spread over the shards).
// docs/SCALING.md, "Relaying signals", says what each step keeps in order.
import calculateSlot from 'cluster-key-slot';
import type { Logger } from 'pino';
import type { SignalType } from '@dyad/protocol';
import { emptyEffects, type Delivery, type Effects, type SignalText } from '../store.js';
import { entryParts, READS_RELAYED, RELAYED, RELAYED_AFTER, relayedDeliveries, relayedJson, relayedText, SCRIPT_ENTRY, toEffects, type RawResult } from './codec.js';
import { compareIds, nextId } from './order.js';
import { KEY } from './lua.js';
import { sleep, withTimeout, type Connection } from './calls.js';
import type { WriteTurns } from './turns.js';

/** Upper bound on one inbox stream (or lane); the reader trims what it has read. */
export const INBOX_MAXLEN = 100_000;
/** An inbox (and a lane) outlives its process by this much. */
export const INBOX_TTL_MS = 60_000;
/** How long a blocking read of an inbox or a lane waits before it asks again. */
export const READ_BLOCK_MS = 1_000;
/**
 * Longest wait for a lane to keep order (a transition for the acknowledgement
 * of the signals relayed before it, the inbox reader for a read of the lanes):
 * a stalled shard may cost a pair its order, never every socket its messages.
 */
const LANE_WAIT_MS = 300;
/** Cluster slots (every key hashes to one of them). */
const CLUSTER_SLOTS = 16_384;
/**
 * Signals relayed to one stream in one turn go in one entry up to about this
 * many bytes; more start another. A read of an inbox or a lane (COUNT 256)
 * is then at most some 16 MiB, whatever a flood put in one turn (security
 * review, finding X1: a turn's entry of many 15 KB signals made reads of
 * hundreds of MB, held in Redis's output buffer and the reader's heap).
 */
export const RELAY_ENTRY_BYTES = 64 * 1024;
/** How often a process asks how far behind a stream it relays to is (XLEN), at most. */
const BACKLOG_ASK_MS = 100;
/** What one relayed signal counts for besides its data (ids, room code, separators). */
const RELAY_RECORD_OVERHEAD = 96;

/** The bounds of relaying (RELAY_BYTES_IN_FLIGHT, RELAY_BACKLOG_ENTRIES). */
export interface RelayLimits {
  /** Bytes of relayed signals queued or sent to Redis and not yet acknowledged, in all. */
  bytesInFlight: number;
  /** Entries waiting to be read in a stream beyond which nothing more is relayed to it. */
  backlogEntries: number;
}

/** Why a signal was not relayed: the sender is told, as when Redis refuses a write. */
const BUSY_MESSAGE = {
  sending: 'the server is busy relaying signals (RELAY_BYTES_IN_FLIGHT), try again shortly',
  backlog: "the partner's server is busy reading relayed signals (RELAY_BACKLOG_ENTRIES), try again shortly",
} as const;

/** The signals of one stream entry being filled in this turn: for which process, from which senders, and their bytes (RELAY_ENTRY_BYTES). */
interface Batch {
  proc: string;
  signals: (Delivery & { signal: SignalText })[];
  senders: { id: string; conn: string }[];
  bytes: number;
}

/**
 * What this process knows of a room joined by one of its signalling sockets
 * (lua/effects.ts, route): enough to relay that socket's signals straight to the
 * partner's socket, here or through its process's inbox, without a script.
 */
interface Route {
  room: string;
  id: string;
  peer: string;
  ini: boolean;
  /** The first answer has passed: offers and answers need no role check any more. */
  ans: boolean;
  /** Where the partner's joined socket is; absent while it is away or has not joined. */
  proc?: string;
  pconn?: string;
}

/** One route item of an inbox entry, as lua/effects.ts writes it. */
export interface RouteItem {
  k: 'j' | 'p' | 'a' | 'e';
  conn: string;
  room: string;
  id?: string;
  peer?: string;
  ini?: boolean;
  ans?: boolean;
  proc?: string;
  pconn?: string;
}

/**
 * A relay stream of this process on a Cluster (see relay): its own slot, so
 * relayed signals spread over the shards instead of all going to the one
 * holding the `{dyad}` slot. Read by its own blocking connection.
 */
interface Lane {
  key: string;
  reader: Connection;
  /** Last id taken from the stream into queue. */
  fetched: string;
  /** Entries read but not carried out yet, in order (a relayed entry may have to wait for the inbox: pumpLane): their signals, and the inbox entry they follow. */
  queue: { id: string; after: string | undefined; deliver: Delivery[] }[];
  reading?: Promise<void>;
}

/** What the relay needs of the store it works for. */
export interface RelayHost {
  /** The transitions' connection. */
  readonly client: Connection;
  readonly turns: WriteTurns;
  /** Key prefix without, and with, the `{dyad}` hash tag. */
  readonly prefix: string;
  readonly base: string;
  readonly procId: string;
  readonly log: Logger | undefined;
  /** Hand effects to the hub. */
  emit(fx: Effects): Promise<void>;
  /** The last inbox entry this process has carried out. */
  inboxId(): string;
  /** Resolves once the inbox reader has carried out every entry the inbox holds now (bounded in time). */
  inboxCaughtUp(): Promise<void>;
  /** Is conn session id's signalling socket on this process? */
  holdsSignalling(id: string, conn: string): boolean;
  closed(): boolean;
}

export class SignalRelay {
  /** Relay lanes per process (0: relayed signals go through the inbox). */
  readonly laneCount: number;
  private readonly lanes: Lane[] = [];
  /** Lane keys per process, made from its id (laneKeys). */
  private readonly laneKeysOf = new Map<string, string[]>();
  /** Per signalling socket here: the room it has joined (applyRoutes). */
  private readonly routes = new Map<string, Route>();
  /**
   * The rooms of sockets here whose routes a heal cleared (clearRoutes), until
   * a join, an end or a close says otherwise: enough to know that a signal
   * another process relays to such a socket is for the room it is in. Those
   * processes kept their routes to it, and were relaying straight to it; the
   * signals were dropped as for an ended room, with no word to anyone, for the
   * rest of the room (sixth review, finding R1).
   */
  private readonly cleared = new Map<string, string>();
  /** Signals relayed in this turn, per stream: the entry being filled. */
  private relays = new Map<string, Batch>();
  /** Entries of this turn filled up (RELAY_ENTRY_BYTES), in order: sent before the ones being filled. */
  private filled: [key: string, batch: Batch][] = [];
  /** Bytes of relayed signals queued or sent and not yet acknowledged (RelayLimits.bytesInFlight). */
  private inFlight = 0;
  /** Per stream relayed to: how many entries it held when last asked (RelayLimits.backlogEntries), when that was asked, and whether it is being asked. */
  private readonly backlog = new Map<string, { entries: number; askedAt: number; asking: boolean }>();
  private relayTimer: NodeJS.Immediate | undefined;
  /** Per process: does it read relayed records (its heartbeat says), or is that being asked? */
  private readonly readsRelayed = new Map<string, boolean | 'asking'>();
  /** Per process: the latest entry this process's transitions wrote to its inbox (noteCaused). */
  private readonly caused = new Map<string, string>();
  /** The lane writes not acknowledged yet. */
  private acks: Promise<void> | undefined;
  private keeping = false;
  /** Inbox and lane entries are carried out one batch at a time. */
  private turn: Promise<void> = Promise.resolve();

  constructor(
    private readonly host: RelayHost,
    laneCount: number,
    connect: () => Connection,
    private readonly limits: RelayLimits,
  ) {
    this.laneCount = laneCount;
    for (const key of this.laneKeys(host.procId)) {
      const reader = connect();
      reader.on('error', () => undefined);
      this.lanes.push({ key, reader, fetched: '0-0', queue: [] });
    }
  }

  // ------------------------------------------------------------ routes

  /**
   * Relay a signal without a script when this process knows where the
   * partner's joined socket is, and may (a candidate, or any signal after the
   * first answer): the effects for the caller, or undefined when the script
   * must decide. The sender's socket handles one message at a time, so its
   * signals keep their order whichever way each one goes.
   */
  direct(id: string, conn: string, room: string, type: SignalType, data: string): Effects | undefined {
    const r = this.routes.get(conn);
    if (r?.pconn === undefined || r.proc === undefined || r.room !== room || r.id !== id || (type !== 'candidate' && !r.ans)) return undefined;
    const d: Delivery = { to: r.peer, channel: 'signalling', conn: r.pconn, signal: { room_code: room, from: id, type, data } };
    if (r.proc !== this.host.procId) {
      const busy = this.relay(r.proc, d, conn);
      if (!busy) return emptyEffects();
      const fx = emptyEffects();
      fx.deliver.push({ to: id, channel: 'signalling', conn, msg: { event: 'error', code: 'rate-limited', message: BUSY_MESSAGE[busy] } });
      return fx;
    }
    // The partner's socket is here: deliver it now, if it is still in the room (else the script decides).
    return this.relayable(d) === 'deliver' ? { ...emptyEffects(), deliver: [d] } : undefined;
  }

  /**
   * A relayed signal for socket d.conn: deliver it while that socket is in
   * the signal's room; hand it on when the socket is not here (the hub then
   * keeps it through undelivered, as any message to a closed socket); drop
   * it when the socket is here but its room has ended (the sender's process
   * had not heard yet: the script would have refused it).
   */
  relayable(d: Delivery): 'deliver' | 'elsewhere' | 'ended' {
    const room = this.routes.get(d.conn)?.room ?? this.cleared.get(d.conn);
    if (room !== undefined && room === d.signal?.room_code) return 'deliver';
    return this.host.holdsSignalling(d.to, d.conn) ? 'ended' : 'elsewhere';
  }

  /** Apply the route items of an inbox entry (lua/effects.ts, route), for sockets still here. */
  applyRoutes(items: RouteItem[]): void {
    for (const it of items) {
      if (it.k === 'j' || (it.k === 'e' && this.cleared.get(it.conn) === it.room)) this.cleared.delete(it.conn);
      if (it.k === 'j') {
        if (!it.id || !it.peer) continue;
        this.routes.set(it.conn, { room: it.room, id: it.id, peer: it.peer, ini: it.ini === true, ans: it.ans === true, proc: it.proc, pconn: it.pconn });
        continue;
      }
      const r = this.routes.get(it.conn);
      if (!r || r.room !== it.room) continue;
      if (it.k === 'e') this.routes.delete(it.conn);
      else if (it.k === 'a') r.ans = true;
      else {
        r.proc = it.proc;
        r.pconn = it.pconn;
      }
    }
  }

  /** A signalling socket here has closed. */
  forgetRoute(conn: string): void {
    this.routes.delete(conn);
    this.cleared.delete(conn);
  }

  /**
   * What this process knew of rooms may be stale (a heal, a shutdown): its
   * signals go through the scripts until its sockets join again, or a heal
   * gives their routes back. After a heal, what other processes relay to a
   * socket here for the room it was in is still delivered (cleared).
   */
  clearRoutes(heal: boolean): void {
    if (heal) for (const [conn, r] of this.routes) this.cleared.set(conn, r.room);
    else this.cleared.clear();
    this.routes.clear();
  }

  // ------------------------------------------------------------ relaying

  /**
   * Queue one relayed signal for a process. It goes to that process's inbox,
   * or on a Cluster with lanes (REDIS_RELAY_LANES) to one of its lanes (the room decides which,
   * so a pair's signals keep one stream and their order), each lane in its own
   * slot. Signals relayed in the same turn of the event loop to one stream go
   * in one entry, one `XADD` (never creating the stream: a process long gone
   * has none), sent before anything else this process sends Redis (the store
   * flushes first), so they keep their place among this process's transitions.
   */
  private relay(proc: string, d: Delivery & { signal: SignalText }, fromConn: string): keyof typeof BUSY_MESSAGE | undefined {
    const s = d.signal;
    const key = this.laneCount > 0 ? this.laneFor(proc, s.room_code) : this.inboxOf(proc);
    // Bounded, not queued without end (security review, finding X1): what
    // Redis has not acknowledged yet, and what the partner's process has not read.
    const bytes = s.data.length + RELAY_RECORD_OVERHEAD;
    if (this.inFlight + bytes > this.limits.bytesInFlight) return 'sending';
    const backlog = this.backlog.get(key);
    if (backlog && backlog.entries > this.limits.backlogEntries) {
      this.askBacklog(key);
      return 'backlog';
    }
    let batch = this.relays.get(key);
    if (batch && batch.bytes + bytes > RELAY_ENTRY_BYTES) {
      this.filled.push([key, batch]);
      batch = undefined;
    }
    if (!batch) {
      batch = { proc, signals: [], senders: [], bytes: 0 };
      this.relays.set(key, batch);
    }
    batch.signals.push(d);
    batch.senders.push({ id: s.from, conn: fromConn });
    batch.bytes += bytes;
    this.inFlight += bytes;
    this.relayTimer ??= setImmediate(() => this.flush());
    return undefined;
  }

  /** Ask how many entries a stream relayed to holds: one question at a time per stream, at most every BACKLOG_ASK_MS. */
  private askBacklog(key: string): void {
    const now = performance.now();
    let b = this.backlog.get(key);
    if (!b) this.backlog.set(key, (b = { entries: 0, askedAt: -Infinity, asking: false }));
    if (b.asking || now - b.askedAt < BACKLOG_ASK_MS) return;
    b.asking = true;
    b.askedAt = now;
    const known = b;
    this.host.client.xlen(key).then(
      (n) => {
        known.entries = n;
        known.asking = false;
      },
      () => (known.asking = false),
    );
  }

  /** Send the queued relayed signals, one entry per stream. */
  flush(): void {
    if (this.relayTimer) clearImmediate(this.relayTimer);
    this.relayTimer = undefined;
    if (this.relays.size === 0) return;
    const writes: Promise<unknown>[] = [];
    for (const [key, batch] of this.filled.length > 0 ? [...this.filled, ...this.relays] : this.relays) {
      // Through a lane: the receiver carries it out only after the last entry this process's transitions wrote to its inbox.
      const after = this.laneCount > 0 ? this.caused.get(batch.proc) : undefined;
      const fields = this.takesRecords(batch.proc)
        ? [...(after ? [RELAYED_AFTER, after] : []), RELAYED, relayedText(batch.signals)]
        : [SCRIPT_ENTRY, relayedJson(batch.signals, after)];
      const sent = this.host.client.xadd(key, 'NOMKSTREAM', 'MAXLEN', '~', INBOX_MAXLEN, '*', ...fields);
      this.askBacklog(key);
      const settled = (): void => {
        this.inFlight -= batch.bytes;
      };
      sent.then(settled, settled);
      const write = sent.then(
        (id) => {
          // The partner's process is gone for good (its inbox expired): the reaper has its sessions.
          if (id !== null) return;
          this.host.log?.warn({ frames: batch.signals.length }, 'relayed signals for a process that is gone');
          this.caused.delete(batch.proc);
          this.laneKeysOf.delete(batch.proc);
          this.readsRelayed.delete(batch.proc);
          this.backlog.delete(key);
        },
        (err: unknown) => {
          // Not written: the senders hear of it, as for any store call that fails.
          this.host.log?.warn({ err: err instanceof Error ? err.message : String(err), frames: batch.signals.length }, 'could not relay signals');
          const fx = emptyEffects();
          for (const { id, conn } of batch.senders) {
            fx.deliver.push({ to: id, channel: 'signalling', conn, msg: { event: 'error', code: 'rate-limited', message: 'service temporarily unavailable, try again shortly' } });
          }
          void this.host.emit(fx);
        },
      );
      if (this.laneCount > 0) writes.push(write);
    }
    // A new map, not clear(), as the edges' corked sockets (http/socket.ts,
    // flush): a cleared map's old table would keep every later one's signals.
    this.relays = new Map();
    this.filled = [];
    // Written from the check phase: sent now, not a turn later.
    this.host.turns.flush();
    if (writes.length === 0) return;
    const acked = Promise.all([this.acks, ...writes]).then(() => undefined);
    this.acks = acked;
    void acked.then(() => {
      if (this.acks === acked) this.acks = undefined;
    });
  }

  /**
   * Before a transition: signals relayed before it reach Redis before it
   * (through a lane, on another shard: once acknowledged, so that no inbox
   * entry it writes can overtake them). Undefined when nothing is to wait for.
   */
  beforeCall(): Promise<void> | undefined {
    this.flush();
    if (!this.acks) return undefined;
    return withTimeout(this.acks, LANE_WAIT_MS, 'relaying signals').catch(() => undefined);
  }

  /**
   * Does process `proc` read relayed records? Its heartbeat says so
   * (READS_RELAYED); until that is known, and for a process of an earlier
   * build (a rolling upgrade), it is sent the JSON entry, which every build reads.
   */
  private takesRecords(proc: string): boolean {
    const known = this.readsRelayed.get(proc);
    if (typeof known === 'boolean') return known;
    if (known === undefined) {
      this.readsRelayed.set(proc, 'asking');
      this.host.client.get(`${this.host.base}${KEY.heartbeat}${proc}`).then(
        (v) => {
          // No heartbeat (gone, or lapsed for now): asked again with its next signals.
          if (v === null) this.readsRelayed.delete(proc);
          else this.readsRelayed.set(proc, v.endsWith(READS_RELAYED));
        },
        () => this.readsRelayed.delete(proc),
      );
    }
    return false;
  }

  /** Remember the latest entry a transition wrote to each other process's inbox (relayed signals wait for it there). */
  noteCaused(ids: Record<string, unknown>): void {
    for (const [proc, id] of Object.entries(ids)) {
      if (typeof id !== 'string') continue;
      const known = this.caused.get(proc);
      if (known === undefined || compareIds(id, known) > 0) this.caused.set(proc, id);
    }
  }

  /** Entries lost with Redis will never be read: relayed signals need not wait for them. */
  forgetCaused(): void {
    this.caused.clear();
  }

  // ------------------------------------------------------------ lanes

  /**
   * The keys of a process's lanes, made from its id alone, so every process
   * finds them without asking: lane k is the first tag whose slot falls in the
   * k-th of laneCount equal parts of the slot space. Shards holding equal
   * ranges (as `redis-cli --cluster create` makes them) then each carry the
   * same lanes of every process.
   */
  private laneKeys(proc: string): string[] {
    let keys = this.laneKeysOf.get(proc);
    if (keys) return keys;
    keys = [];
    for (let k = 0; k < this.laneCount; k++) {
      let tag = `dyad-${proc}-${k}`;
      for (let j = 0; j < 100_000; j++) {
        const t = `dyad-${proc}-${k}-${j}`;
        if (Math.floor((calculateSlot(t) * this.laneCount) / CLUSTER_SLOTS) === k) {
          tag = t;
          break;
        }
      }
      keys.push(`${this.host.prefix}{${tag}}:relay`);
    }
    this.laneKeysOf.set(proc, keys);
    return keys;
  }

  /** The lane of a process that a room's signals take (FNV-1a of the room code). */
  private laneFor(proc: string, room: string): string {
    let h = 0x811c9dc5;
    for (let i = 0; i < room.length; i++) h = Math.imul(h ^ room.charCodeAt(i), 0x01000193);
    const keys = this.laneKeys(proc);
    return keys[(h >>> 0) % keys.length] ?? this.inboxOf(proc);
  }

  /** The inbox of a process. */
  private inboxOf(proc: string): string {
    return `${this.host.base}${KEY.inbox}${proc}`;
  }

  /** Connect the lanes' readers (each retries on its own). */
  connect(): void {
    for (const lane of this.lanes) lane.reader.connect().catch(() => undefined);
  }

  /** Start reading the lanes. */
  read(): void {
    for (const lane of this.lanes) lane.reading = this.readLane(lane);
  }

  /** Disconnect the lanes' readers and wait for their loops to end. */
  async close(): Promise<void> {
    for (const lane of this.lanes) lane.reader.disconnect();
    await Promise.all(this.lanes.map((lane) => lane.reading?.catch(() => undefined)));
  }

  /** Inbox and lane entries are carried out one batch at a time (with one Redis there is only the inbox). */
  locked(task: () => Promise<void>): Promise<void> {
    if (this.laneCount === 0) return task();
    const run = this.turn.then(task);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /**
   * Read one lane of this process. An entry waits while the inbox has not
   * carried out what it must follow: the sender's own last transition that
   * wrote here (its `a`), or the join that made the route it is for. When
   * it cannot go on, the inbox is read up to its current end and the entry
   * then goes, without what is for a room that has ended meanwhile.
   */
  private async readLane(lane: Lane): Promise<void> {
    let trimmed = lane.fetched;
    while (!this.host.closed()) {
      try {
        const res = await lane.reader.xread('COUNT', 256, 'BLOCK', READ_BLOCK_MS, 'STREAMS', lane.key, lane.fetched);
        if (res) for (const [, entries] of res) this.enqueue(lane, entries);
        if (lane.queue.length > 0) await this.locked(() => this.pumpLane(lane, false));
        if (lane.queue.length > 0) {
          await this.host.inboxCaughtUp();
          await this.locked(() => this.pumpLane(lane, true));
        }
        const done = lane.queue[0]?.id ?? lane.fetched;
        if (done !== trimmed) {
          trimmed = done;
          this.host.client.xtrim(lane.key, 'MINID', lane.queue.length > 0 ? done : nextId(done)).catch(() => undefined);
        }
      } catch {
        if (this.host.closed()) break;
        await sleep(200);
      }
    }
  }

  /** Take a lane's new entries into its queue (a poll and the blocking read may both return them: once only). */
  private enqueue(lane: Lane, entries: [id: string, fields: string[]][]): void {
    for (const [id, fields] of entries) {
      if (compareIds(id, lane.fetched) <= 0) continue;
      lane.fetched = id;
      // A lane starts with a marker entry (keep), which carries nothing.
      const { json, records, after } = entryParts(fields);
      if (records !== undefined) lane.queue.push({ id, after, deliver: relayedDeliveries(records) });
      else if (json !== undefined) {
        // From a process of an earlier build (relayedJson).
        try {
          const raw = JSON.parse(json) as RawResult;
          lane.queue.push({ id, after: typeof raw.a === 'string' ? raw.a : undefined, deliver: toEffects(raw).deliver });
        } catch {
          this.host.log?.warn('unreadable relay entry skipped');
        }
      }
    }
  }

  /** Read every lane up to its current end, without blocking (bounded in time: LANE_WAIT_MS). */
  async pollLanes(): Promise<void> {
    const all = Promise.all(
      this.lanes.map(async (lane) => {
        for (let i = 0; i < 100; i++) {
          const res = await this.host.client.xread('COUNT', 1_000, 'STREAMS', lane.key, lane.fetched);
          const entries = res?.[0]?.[1] ?? [];
          this.enqueue(lane, entries);
          if (entries.length < 1_000) break;
        }
      }),
    );
    await withTimeout(all, LANE_WAIT_MS, 'reading the lanes').catch(() => undefined);
  }

  async pumpLanes(): Promise<void> {
    for (const lane of this.lanes) await this.pumpLane(lane, false);
  }

  /**
   * Carry out a lane's queued entries while they may go (see readLane).
   * force: the inbox has been read up to where it was after the head was
   * read, so the head goes, whatever it was waiting for.
   */
  private async pumpLane(lane: Lane, force: boolean): Promise<void> {
    let head = force;
    while (lane.queue.length > 0) {
      const { after, deliver } = lane.queue[0] as Lane['queue'][number];
      if (!head && after !== undefined && compareIds(this.host.inboxId(), after) < 0) return;
      const kept = deliver.filter((d) => this.relayable(d) !== 'ended');
      if (!head && kept.length < deliver.length) return;
      lane.queue.shift();
      head = false;
      await this.host.emit({ ...emptyEffects(), deliver: kept });
    }
  }


  /** Make the lanes exist before this process is announced (keep), and start nothing else. */
  async open(): Promise<void> {
    if (this.laneCount > 0) await this.keepLanes();
  }

  /** With every heartbeat: keep the lanes alive, on their own (a stalled shard holding a lane must not hold up the heartbeat). */
  keep(): void {
    if (this.laneCount === 0 || this.keeping) return;
    this.keeping = true;
    void this.keepLanes()
      .catch(() => undefined)
      .finally(() => (this.keeping = false));
  }

  /**
   * Make this process's lanes exist (a sender never creates one) and keep
   * them alive with the inbox; a lane lost with its shard is made again and
   * read from its start.
   */
  private async keepLanes(): Promise<void> {
    await Promise.all(
      this.lanes.map(async (lane) => {
        if ((await this.host.client.pexpire(lane.key, INBOX_TTL_MS)) === 1) return;
        await this.host.client.xadd(lane.key, '*', 'new', '1');
        await this.host.client.pexpire(lane.key, INBOX_TTL_MS);
        lane.fetched = '0-0';
      }),
    );
  }
}
