// Differential property test of the two stores (issue #11). The pairing and
// lifecycle rules are written twice: in TypeScript (store/memory.ts over
// core/rules.ts) and in Lua (store/redis/lua/). This file drives a
// MemoryStore and a RedisStore (on a private redis-server) with the same random
// sequences of store operations, each through its own hub and fake clock, and
// compares what they do.
//
// What is compared, and why:
// - "lockstep" (small pools, at most SLOTS sessions): every outcome must agree
//   exactly, step by step: the result of each call, the messages (and closes)
//   each socket gets in order, the pairings formed and the room ends counted,
//   stats(), the timers' firing times, and the stores' state itself (sessions,
//   rooms, pool, kept items and bytes, cooldowns, blocks), room codes
//   compared by order of appearance. Partner choice can agree exactly here:
//   both stores are given the same constant "random" number c, so each picks
//   the floor(c * n)-th of its eligible candidates, oldest first; with at most
//   16 waiting per index set the Redis store reads every candidate (its random
//   sample covers the set), as the memory store does (its cap is 64). A shared
//   seeded stream would not line up: the memory store draws one number per
//   choice and one per initiator, the Redis store two per script.
// - "crowd" (a pool of hundreds, nearly all narrowed by a shared interest and
//   a rare lang): the two stores legitimately choose differently once more
//   candidates wait than they read (memory: the first 64 eligible; Redis: the
//   32 oldest of each index set and 16 sampled by Redis itself, so not
//   replayable from the seed). Outcomes are compared exactly up to the first
//   pairing where the same seeker got different partners (both choices are
//   checked against the rules), then only the shape: after the narrowing has
//   run out for everyone (all compatible, no cooldown, no block), both leave
//   exactly one session of an odd mode waiting and none of an even one, with
//   the same number of rooms. A match the Redis store misses there (or the
//   oldest eligible passed over) is noted as it happens and failed by a test
//   of its own at the end, so that the crowd's other checks all run.
// - On both stores, after every step: nobody in two rooms, no room with a
//   missing, foreign-mode or self partner, the pool index holds exactly the
//   waiting sessions with an open matching socket, stats() agree with the state,
//   kept bytes add up, no lost match (two waiting sessions that accept each
//   other, with no block and no cooldown between them, never both stay waiting
//   after a step), and for each pairing: interest and lang narrowing respected
//   before INTEREST_TIMEOUT_MS, the partner eligible, the re-pair cooldown
//   respected while anyone else is eligible, and the fairness rule (the oldest
//   eligible goes first once it has waited longer than FAIR_WAIT_MS).
//
// Time is a fake clock that moves only when told; every operation comes at
// least a millisecond after the one before, so that pool order is the same in
// both stores (Redis orders by entry time). Durations the Redis store also
// gives Redis as key lifetimes (re-pair cooldown, bans) stay at or above 60 s,
// since Redis expires keys by its own clock.
//
// Reproduce a failure with DIFF_SEED=<the seed printed>; DIFF_RUNS and
// DIFF_CROWD_RUNS set the number of runs, DIFF_SHRINK=1 shrinks the
// counterexample (which takes longer).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { ChatMessage, type Mode, type Region, type SignalType } from '@dyad/protocol';
import { encodeSignalData } from '../../src/core/frames.js';
import type { Connection } from '../../src/core/hub.js';
import { BLOCKED_PRUNE_EVERY, RATE_WINDOW_MS, commonInterests, inPlace, mutuallyAccept, type Candidate } from '../../src/core/rules.js';
import { regionOf, wantedPlace } from '../../src/geo/regions.js';
import { MemoryStore, type Room as MemoryRoom, type Session as MemorySession } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis/index.js';
import { isRefused, type Channel, type Effects, type Pairing, type StoreOptions, type StoreStats } from '../../src/store/store.js';
import { Core, DEFAULTS } from '../contract/harness.js';
import { RedisServer } from './support/redis-server.js';

const SEED = Number(process.env.DIFF_SEED ?? 20_261_204);
const LOCKSTEP_RUNS = Number(process.env.DIFF_RUNS ?? 40);
const CROWD_RUNS = Number(process.env.DIFF_CROWD_RUNS ?? 3);
const SHRINK = process.env.DIFF_SHRINK === '1';
/** Session slots of a lockstep run: small enough that Redis reads every candidate (at most 16 per index set). */
const SLOTS = 12;
const MODES: readonly Mode[] = ['video', 'text'];
/** What the runs went through (messages by event and error code, closes, pairings), printed as coverage. */
const seen = new Map<string, number>();
const coverage = (): string => [...seen].sort().map(([k, n]) => `${k} ${n}`).join(', ');
const PROBE = 'probe';

let redis: RedisServer | undefined;
let admin: Redis | undefined;
before(async () => {
  redis = await RedisServer.start();
  admin = new Redis(redis.url);
});
after(async () => {
  admin?.disconnect();
  await redis?.stop();
});

// ------------------------------------------------------------ state as both stores hold it

interface SessionView {
  id: string;
  addr: string;
  state: string;
  mode: Mode;
  interests: string[];
  lang: string | undefined;
  /** Region filter (issue 17): country, its region, the place wanted, whether the country is shown. */
  country: string | undefined;
  area: string | undefined;
  wants: string | undefined;
  show: boolean;
  enteredAt: number;
  waitingSince: number;
  m: string | undefined;
  mGrace: string | undefined;
  s: string | undefined;
  sGrace: string | undefined;
  sJoined: string | undefined;
  room: string | undefined;
  keptChat: number;
  keptChatBytes: number;
  news: string | undefined;
  blocked: string[];
  /** [partner, until] for cooldowns still running. */
  cooldown: [string, number][];
  last: { id: string; room: string; endedAt: number; openedAt: number } | undefined;
}

interface RoomView {
  code: string;
  members: [string, string];
  initiator: string;
  mode: Mode;
  common: string[];
  openedAt: number;
  answerPassed: boolean;
  joined: string[];
  keptBytes: number;
  /** Signals kept per member, in members' order. */
  kept: [number, number];
}

interface Snapshot {
  sessions: Map<string, SessionView>;
  rooms: Map<string, RoomView>;
  /** The pool index: sessions a pairing attempt may pick, per mode, sorted. */
  pool: Record<Mode, string[]>;
  /** Address blocks held (`<addr>|<addr>`, ADDRESS_BLOCKS_MAX), sorted. */
  addressBlocks: string[];
  /** Problems in the store's own indexes, found while reading them. */
  faults: string[];
}

/** The memory store's state, read as the test's view of it (its fields are private to the product). */
interface MemoryInternals {
  sessions: Map<string, MemorySession>;
  rooms: Map<string, MemoryRoom>;
  pool: Record<Mode, { all: Set<string> }>;
  addrBlocks: Map<string, number>;
}

function memorySnapshot(store: MemoryStore, now: number): Snapshot {
  const mem = store as unknown as MemoryInternals;
  const faults: string[] = [];
  const sessions = new Map<string, SessionView>();
  for (const s of mem.sessions.values()) {
    sessions.set(s.id, {
      id: s.id,
      addr: s.addr,
      state: s.state,
      mode: s.mode,
      interests: [...s.interests],
      lang: s.lang,
      country: s.country,
      area: s.area,
      wants: s.wants,
      show: s.showCountry,
      enteredAt: s.enteredAt,
      waitingSince: s.waitingSince,
      m: s.mConn,
      mGrace: s.mGrace,
      s: s.sConn,
      sGrace: s.sGrace,
      sJoined: s.sJoined,
      room: s.room,
      keptChat: s.keptChat.length,
      keptChatBytes: s.keptChatBytes,
      news: s.news?.reason,
      blocked: [...s.blocked].sort(),
      cooldown: [...s.cooldown].filter(([, until]) => until > now).sort(byFirst),
      last: s.lastPartner && { id: s.lastPartner.id, room: s.lastPartner.room, endedAt: s.lastPartner.endedAt, openedAt: s.lastPartner.openedAt },
    });
  }
  const rooms = new Map<string, RoomView>();
  for (const r of mem.rooms.values()) {
    rooms.set(r.code, {
      code: r.code,
      members: [...r.members],
      initiator: r.initiator,
      mode: r.mode,
      common: [...r.common],
      openedAt: r.openedAt,
      answerPassed: r.answerPassed,
      joined: [...r.joined].sort(),
      keptBytes: r.keptBytes,
      kept: [r.kept.get(r.members[0])?.length ?? 0, r.kept.get(r.members[1])?.length ?? 0],
    });
  }
  const pool = { video: [] as string[], text: [] as string[] };
  for (const mode of MODES) {
    for (const id of mem.pool[mode].all) {
      const s = mem.sessions.get(id);
      if (!s || s.state !== 'waiting') faults.push(`pool ${mode} holds ${id}, which is ${s ? s.state : 'gone'}`);
      else if (s.mConn !== undefined) pool[mode].push(id);
    }
    pool[mode].sort();
  }
  const addressBlocks = [...mem.addrBlocks].filter(([, until]) => until > now).map(([pair]) => pair).sort();
  return { sessions, rooms, pool, addressBlocks, faults };
}

/**
 * The Redis store's state, read from its keys in one script (the key names of store/redis/lua/:
 * `s:<id>`, `r:<code>`, the `sess` and `rooms` indexes, the pool sets
 * `open:<mode>` and `narrow:<mode>`, and the `bl:`, `cd:`, `lp:`, `kc:` and
 * `rk:` keys), so that a step costs one round trip to look at.
 */
const READ_STATE = `
local P = KEYS[1]
local function hash(k)
  local t, o = redis.call('HGETALL', k), {}
  for i = 1, #t, 2 do o[t[i]] = t[i + 1] end
  return o
end
local out = {sessions = {}, rooms = {}, pool = {}}
for _, id in ipairs(redis.call('ZRANGE', P .. 'sess', 0, -1)) do
  local h = hash(P .. 's:' .. id)
  out.sessions[#out.sessions + 1] = {
    id = id, h = h, bl = h.blk and redis.call('SMEMBERS', P .. 'bl:' .. id) or {},
    cd = redis.call('ZRANGE', P .. 'cd:' .. id, 0, -1, 'WITHSCORES'), lp = hash(P .. 'lp:' .. id),
    kc = h.kcb and redis.call('LLEN', P .. 'kc:' .. id) or 0,
  }
end
for _, code in ipairs(redis.call('ZRANGE', P .. 'rooms', 0, -1)) do
  local h = hash(P .. 'r:' .. code)
  local ka = h.a and redis.call('LLEN', P .. 'rk:' .. code .. ':' .. h.a) or 0
  local kb = h.b and redis.call('LLEN', P .. 'rk:' .. code .. ':' .. h.b) or 0
  out.rooms[#out.rooms + 1] = {code = code, h = h, kept = {ka, kb}}
end
for _, m in ipairs({'video', 'text'}) do
  local ids = redis.call('ZRANGE', P .. 'open:' .. m, 0, -1)
  for _, id in ipairs(redis.call('ZRANGE', P .. 'narrow:' .. m, 0, -1)) do ids[#ids + 1] = id end
  out.pool[m] = ids
end
-- The interest sets of those that accept any lang: ia:<mode>:<interest> -> members.
out.ia = {}
for _, k in ipairs(redis.call('KEYS', P .. 'ia:*')) do out.ia[string.sub(k, #P + 4)] = redis.call('ZRANGE', k, 0, -1) end
-- Address blocks held (abz, by their end) that have not ended by the caller's clock.
out.ab = redis.call('ZRANGEBYSCORE', P .. 'abz', '(' .. ARGV[1], '+inf')
return cjson.encode(out)
`;

/** cjson writes an empty list as {}. */
const list = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : []);

async function redisSnapshot(r: Redis, base: string, now: number, interestMs: number): Promise<Snapshot> {
  type Raw = {
    ia: Record<string, unknown> | unknown[];
    sessions: { id: string; h: Record<string, string>; bl: unknown; cd: unknown; lp: Record<string, string>; kc: number }[] | object;
    rooms: { code: string; h: Record<string, string>; kept: [number, number] }[] | object;
    pool: Record<Mode, unknown>;
    ab: unknown;
  };
  const raw = JSON.parse((await r.eval(READ_STATE, 1, base, String(now))) as string) as Raw;
  const faults: string[] = [];
  const sessions = new Map<string, SessionView>();
  for (const { id, h, bl, cd: cdRaw, lp, kc } of Array.isArray(raw.sessions) ? raw.sessions : []) {
    if (h.st === undefined) {
      faults.push(`sess lists ${id}, which has no session hash`);
      continue;
    }
    const cd = list(cdRaw);
    const cooldown: [string, number][] = [];
    for (let j = 0; j + 1 < cd.length; j += 2) if (Number(cd[j + 1]) > now) cooldown.push([cd[j] ?? '', Number(cd[j + 1])]);
    sessions.set(id, {
      id,
      addr: h.addr ?? '',
      state: h.st,
      mode: h.mode === 'text' ? 'text' : 'video',
      interests: list(JSON.parse(h.int ?? '[]')),
      lang: h.lang,
      country: h.cc,
      area: h.ar,
      wants: h.rw,
      show: h.fl === '1',
      enteredAt: Number(h.ea),
      waitingSince: Number(h.ws),
      m: h.mc,
      mGrace: h.mg,
      s: h.sc,
      sGrace: h.sg,
      sJoined: h.sj,
      room: h.room,
      keptChat: kc,
      keptChatBytes: Number(h.kcb ?? 0),
      news: h.news,
      blocked: list(bl).sort(),
      cooldown: cooldown.sort(byFirst),
      last: lp.id === undefined ? undefined : { id: lp.id, room: lp.room ?? '', endedAt: Number(lp.at), openedAt: Number(lp.since) },
    });
  }
  const rooms = new Map<string, RoomView>();
  for (const { code, h, kept } of Array.isArray(raw.rooms) ? raw.rooms : []) {
    if (h.a === undefined || h.b === undefined) {
      faults.push(`rooms lists ${code}, which has no room hash`);
      continue;
    }
    rooms.set(code, {
      code,
      members: [h.a, h.b],
      initiator: h.ini ?? '',
      mode: h.mode === 'text' ? 'text' : 'video',
      common: list(JSON.parse(h.common ?? '[]')),
      openedAt: Number(h.at),
      answerPassed: h.ans === '1',
      joined: Object.keys(h)
        .filter((k) => k.startsWith('j:'))
        .map((k) => k.slice(2))
        .sort(),
      keptBytes: Number(h.kb ?? 0),
      kept: [Number(kept[0] ?? 0), Number(kept[1] ?? 0)],
    });
  }
  const pool = { video: [] as string[], text: [] as string[] };
  for (const mode of MODES) {
    for (const id of list(raw.pool[mode])) {
      const s = sessions.get(id);
      if (!s || s.state !== 'waiting' || s.m === undefined) faults.push(`pool ${mode} holds ${id}, which is ${s ? `${s.state}${s.m ? '' : ' and away'}` : 'gone'}`);
      else pool[mode].push(id);
    }
    pool[mode].sort();
  }
  // ia:<mode>:<i> holds waiting sessions with interest i that accept any lang (none named, or
  // the narrowing run out: one with a lang joins when promoted, so it may be missing a while
  // after); every waiting one that names no lang is in the set of each of its interests.
  const ia = new Map<string, Set<string>>(Object.entries(Array.isArray(raw.ia) ? {} : raw.ia).map(([k, v]) => [k, new Set(list(v))]));
  for (const [k, ids] of ia) {
    const [mode, interest] = [k.slice(0, k.indexOf(':')), k.slice(k.indexOf(':') + 1)];
    for (const id of ids) {
      const s = sessions.get(id);
      const inPool = s !== undefined && s.state === 'waiting' && s.m !== undefined && s.mode === mode && s.interests.includes(interest);
      if (!inPool || (s.lang !== undefined && now - s.enteredAt < interestMs)) faults.push(`ia:${k} holds ${id}, which is ${s ? `${s.state}, ${s.mode}, [${s.interests.join(' ')}], lang ${s.lang ?? 'none'}` : 'gone'}`);
    }
  }
  for (const mode of MODES)
    for (const id of pool[mode]) {
      const s = sessions.get(id);
      if (s && s.lang === undefined) for (const i of s.interests) if (!ia.get(`${mode}:${i}`)?.has(id)) faults.push(`ia:${mode}:${i} lacks ${id}, which waits and names no lang`);
    }
  return { sessions, rooms, pool, addressBlocks: list(raw.ab).sort(), faults };
}

function byFirst(a: [string, number], b: [string, number]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

// ------------------------------------------------------------ one store, driven

/** A socket as the hub sees it; what it gets is recorded, room codes replaced by their label. */
class Sock implements Connection {
  open = true;
  readonly addr = 'test';
  constructor(
    readonly id: string,
    readonly session: string,
    readonly channel: Channel,
    private readonly world: World,
  ) {}
  isOpen(): boolean {
    return this.open;
  }
  send(text: string): void {
    this.world.record(this.id, this.world.canon(JSON.parse(text) as Record<string, unknown>));
  }
  close(code: number): void {
    this.open = false;
    this.world.record(this.id, `close ${code}`);
  }
}

interface Attrs {
  mode: Mode;
  interests: string[];
  lang: string | undefined;
  country: string | undefined;
  region: Region | undefined;
  show: boolean;
  addr: string;
}

interface Slot {
  id: string;
  token: string | undefined;
  attrs: Attrs | undefined;
  m: Sock | undefined;
  s: Sock | undefined;
  n: number;
}

/** What one step (a timer's time, or one operation) did, in a form both stores must agree on. */
interface StepOutcome {
  what: string;
  at: number;
  result?: unknown;
  /** Messages per socket, in order. */
  got: Record<string, string[]>;
  paired: string[];
  ended: string[];
  stats: StoreStats;
  /** The whole state, canonical (lockstep only). */
  state?: string;
}

type Opts = StoreOptions & { random: () => number };

class World {
  readonly slots: Slot[] = [];
  /** How many undelivered calls a barrier has waited for. */
  private barred = -1;
  /** Timer due times armed so far and not yet passed. */
  private dues: number[] = [];
  private readonly labels = new Map<string, string>();
  /** Room codes in order of first appearance. */
  readonly codes: string[] = [];
  /** Latest room of each session, from pairings. */
  readonly roomOf = new Map<string, string>();
  private got: Record<string, string[]> = {};
  private paired: Pairing[] = [];
  private ended: string[] = [];
  private probe: Sock | undefined;
  snap: Snapshot | undefined;
  /** Pairings checked against the rules, and those skipped (several timers at once). */
  readonly choices = { checked: 0, skipped: 0 };
  /**
   * Lost matches and fairness misses are noted in `misses` instead of failing
   * (the Redis store in a pool of hundreds: a test of its own fails on them below).
   */
  lenient = false;
  readonly misses = new Map<string, string>();
  /** Most sessions waiting (with an open socket) at once, over both modes. */
  mostWaiting = 0;

  private constructor(
    readonly name: 'memory' | 'redis',
    readonly core: Core,
    readonly opts: Opts,
    private readonly read: (now: number) => Promise<Snapshot>,
    private readonly calls: { undelivered: number },
    slots: number,
  ) {
    for (let i = 0; i < slots; i++) this.slots.push({ id: `u${i}`, token: undefined, attrs: undefined, m: undefined, s: undefined, n: 0 });
    // Every effect passes here, whoever caused it (a call, a timer, the Redis inbox): follow timers and pairings.
    const hub = core.hub;
    const run = hub.run.bind(hub);
    hub.run = async (fx: Effects): Promise<void> => {
      const now = core.clock.now();
      for (const t of fx.timers) this.dues.push(now + Math.max(0, t.delayMs));
      for (const p of fx.paired) {
        seen.set('pairings', (seen.get('pairings') ?? 0) + 1);
        this.paired.push(p);
        this.roomOf.set(p.a, p.room);
        this.roomOf.set(p.b, p.room);
        this.label(p.room);
      }
      this.ended.push(...fx.ended);
      await run(fx);
    };
  }

  static async create(name: 'memory' | 'redis', opts: Opts, slots: number): Promise<World> {
    const made: { read?: (now: number) => Promise<Snapshot> } = {};
    const calls = { undelivered: 0 };
    const counted = <S extends MemoryStore | RedisStore>(store: S): S => {
      const undelivered = store.undelivered.bind(store);
      store.undelivered = async (d, now) => {
        calls.undelivered++;
        return undelivered(d, now);
      };
      return store;
    };
    const core = await Core.create(async (o) => {
      if (name === 'memory') {
        const mem = counted(new MemoryStore(o));
        made.read = async (now) => memorySnapshot(mem, now);
        return mem;
      }
      const [server, client] = [redis, admin];
      if (!server || !client) throw new Error('redis-server did not start');
      const prefix = `d${randomBytes(4).toString('hex')}:`;
      // No reaper (the fake clock owns time) and a long heartbeat lifetime, so that
      // a busy event loop never makes this process look dead and heal.
      const rs = counted(new RedisStore({ ...o, url: server.url, prefix, reapIntervalMs: 0, heartbeatTtlMs: 600_000 }));
      await rs.start();
      made.read = (now) => redisSnapshot(client, `${prefix}{dyad}:`, now, o.interestTimeoutMs);
      return rs;
    }, opts);
    if (!made.read) throw new Error('no store made');
    const world = new World(name, core, opts, made.read, calls, slots);
    await world.setUpProbe();
    world.snap = await world.read(core.clock.now());
    return world;
  }

  /** The store's state now. */
  async look(): Promise<Snapshot> {
    await this.core.idle();
    return this.read(this.now);
  }

  /** Calls of the store's undelivered so far. */
  get undelivered(): number {
    return this.calls.undelivered;
  }

  get now(): number {
    return this.core.clock.now();
  }

  async close(): Promise<void> {
    this.core.hub.close();
    await this.core.store.close();
  }

  // -------------------------------------------------- recording

  label(code: string): string {
    let l = this.labels.get(code);
    if (l === undefined) {
      l = `R${this.labels.size}`;
      this.labels.set(code, l);
      this.codes.push(code);
    }
    return l;
  }

  /** A message as text with its room code replaced by its label and its keys sorted. */
  canon(msg: Record<string, unknown>): string {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(msg).sort()) out[k] = k === 'room_code' && typeof msg[k] === 'string' ? this.label(msg[k]) : msg[k];
    return JSON.stringify(out);
  }

  record(conn: string, text: string): void {
    if (conn === this.probe?.id) return;
    (this.got[conn] ??= []).push(text);
    const m = /"code":"([a-z-]+)"/.exec(text);
    const kind = text.startsWith('close') ? text : `${(/"event":"([a-z-]+)"/.exec(text) ?? [])[1] ?? '?'}${m ? `:${m[1]}` : ''}`;
    seen.set(kind, (seen.get(kind) ?? 0) + 1);
    // The region filter's fields on `matched` (issue 17), so that the coverage shows they were compared.
    for (const field of ['region', 'country']) if (kind === 'matched' && text.includes(`"${field}":`)) seen.set(`matched+${field}`, (seen.get(`matched+${field}`) ?? 0) + 1);
  }

  /** The state with room codes as labels, as text. */
  canonState(snap: Snapshot): string {
    const l = (code: string | undefined): string | undefined => (code === undefined ? undefined : this.label(code));
    const sessions = [...snap.sessions.values()]
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((s) => ({ ...s, room: l(s.room), sJoined: l(s.sJoined), last: s.last && { ...s.last, room: l(s.last.room) } }));
    const rooms = [...snap.rooms.values()].map((r) => ({ ...r, code: l(r.code) })).sort((a, b) => ((a.code ?? '') < (b.code ?? '') ? -1 : 1));
    return JSON.stringify({ sessions, rooms, pool: snap.pool, addressBlocks: snap.addressBlocks });
  }

  // -------------------------------------------------- the probe

  /**
   * A session of the test's own, idle, whose `stop` is a barrier: the Redis
   * store keeps an undelivered message in a call it does not wait for, and
   * what that call sends comes through the inbox; a later call that sends to
   * this process resolves only once everything before it has been carried out.
   */
  private async setUpProbe(): Promise<void> {
    const { store, clock, hub } = this.core;
    const r = await store.register({ name: PROBE, mode: 'text', interests: [], token: 'probe-token', addr: 'probe-addr' }, clock.now());
    if (r.status !== 'ok') throw new Error(`probe: ${r.status}`);
    await hub.run(r.effects);
    this.probe = new Sock('probe-m', PROBE, 'matching', this);
    hub.add(this.probe);
    const a = await store.attachMatching(PROBE, 'probe-token', this.probe.id, clock.now());
    if (!a.ok) throw new Error('probe refused');
    await hub.run(a.effects);
    await this.barrier();
  }

  async barrier(): Promise<void> {
    const { store, clock, hub } = this.core;
    if (this.undelivered === this.barred) return;
    for (;;) {
      const before = this.undelivered;
      await hub.run(await store.stop(PROBE, 'probe-m', clock.now()));
      await this.core.idle();
      if (this.undelivered === before) break;
    }
    this.barred = this.undelivered;
  }

  // -------------------------------------------------- steps

  /**
   * Move the clock by `ms`, one timer time at a time, each a step of its own;
   * `unit` checks each step and returns what it did.
   */
  async advance(ms: number, unit: Unit): Promise<StepOutcome[]> {
    const end = this.now + ms;
    const out: StepOutcome[] = [];
    for (;;) {
      const due = this.dues.filter((d) => d <= end);
      if (due.length === 0) break;
      const t = Math.min(...due);
      const timers = this.dues.filter((d) => d === t).length;
      this.dues = this.dues.filter((d) => d !== t);
      out.push(await this.step(`timers at +${t - this.core.clock.now()}`, unit, timers === 1, async () => this.core.clock.advance(t - this.now)));
    }
    if (this.now < end) await this.core.clock.advance(end - this.now);
    return out;
  }

  /** Run one step: the operation, then the barrier, then the checks. */
  async step(what: string, unit: Unit, checkChoices: boolean, op: () => Promise<unknown>): Promise<StepOutcome> {
    this.got = {};
    this.paired = [];
    this.ended = [];
    const result = await op();
    await this.barrier();
    const before = this.snap;
    const [snap, stats] = await Promise.all([this.read(this.now), this.core.store.stats()]);
    this.snap = snap;
    this.mostWaiting = Math.max(this.mostWaiting, snap.pool.video.length + snap.pool.text.length);
    check(this, what, before, snap, stats, this.paired, checkChoices);
    const outcome: StepOutcome = {
      what,
      at: this.now,
      got: this.got,
      paired: this.paired.map((p) => `${this.label(p.room)} ${p.a}+${p.b} ${p.mode} waited ${p.waitedMs.join('/')}`),
      ended: this.ended,
      stats,
      ...(result === undefined ? {} : { result }),
    };
    if (unit.state) outcome.state = this.canonState(snap);
    return outcome;
  }

  // -------------------------------------------------- operations

  private roomFor(slot: Slot, ref: number): string {
    if (ref < 0) return this.roomOf.get(slot.id) ?? 'no-such-room-code-here';
    return this.codes.length === 0 ? 'no-such-room-code-here' : (this.codes[ref % this.codes.length] ?? '');
  }

  /** Slot i; a negative i picks among the sessions in a room now (-1: the first of them), so that rooms see traffic. */
  private slot(i: number): Slot {
    if (i < 0) {
      const inRoom = this.slots.filter((s) => this.snap?.sessions.get(s.id)?.room !== undefined);
      if (inRoom.length > 0) return inRoom[(-i - 1) % inRoom.length] as Slot;
    }
    return this.slots[Math.abs(i) % this.slots.length] as Slot;
  }

  private newSock(slot: Slot, channel: Channel): Sock {
    const sock = new Sock(`${slot.id}-${channel[0]}${slot.n++}`, slot.id, channel, this);
    this.core.hub.add(sock);
    return sock;
  }

  /** Carry out one operation (at the current time); its result, where it has one. */
  async apply(op: Op): Promise<unknown> {
    const { store, hub } = this.core;
    const now = this.now;
    const run = async (fx: Promise<Effects>): Promise<undefined> => {
      await hub.run(await fx);
      return undefined;
    };
    if (op.k === 'admin') {
      const bans = (await store.listBans(now)).sort((a, b) => (a.addr < b.addr ? -1 : 1));
      const reports = (await store.listReports(now, 100)).sort((a, b) => (a.addr < b.addr ? -1 : 1));
      return { bans, reports };
    }
    if (op.k === 'lift') {
      const addr = `addr${op.addr}`;
      const inForce = (await store.listBans(now)).some((b) => b.addr === addr);
      const lifted = await store.liftBan(addr);
      // Lifting a ban that has run out answers differently (the memory store lifts its strike, kept for BAN_STRIKE_WINDOW_MS;
      // Redis looks at the ban's own key, which ends by Redis's clock): only a ban in force is compared.
      return inForce ? { lifted } : { lifted: 'not in force' };
    }
    const slot = this.slot(op.i);
    const id = slot.id;
    const token = slot.token ?? 'no-token';
    const m = slot.m?.id ?? 'no-socket';
    const s = slot.s?.id ?? 'no-socket';
    switch (op.k) {
      case 'arrive':
      case 'register': {
        const country = op.place === undefined ? undefined : PLACES[op.place];
        const attrs: Attrs = { mode: op.mode, interests: op.interests, lang: op.lang, country, region: op.region, show: op.show === true, addr: `addr${op.addr}` };
        const tok = `tok-${id}-${slot.n++}`;
        // As the matching edge makes them from the client's address and its `region` (service.ts register).
        const place = country === undefined ? undefined : { country, area: regionOf(country) };
        const session = {
          name: id,
          mode: attrs.mode,
          interests: attrs.interests,
          lang: attrs.lang,
          ...(place ? { country: place.country, area: place.area } : {}),
          wants: wantedPlace(attrs.region, place),
          showCountry: attrs.show,
          token: tok,
          addr: attrs.addr,
        };
        // An arrival registers and opens its matching socket in one step, as a one-trip start does.
        const sock = op.k === 'arrive' ? this.newSock(slot, 'matching') : undefined;
        const r = sock ? await store.registerAttached(session, sock.id, now) : await store.register(session, now);
        if (r.status === 'ok') {
          Object.assign(slot, { token: tok, attrs, m: sock, s: undefined });
          await hub.run(r.effects);
        } else if (sock) {
          sock.open = false;
          hub.remove(sock);
        }
        // Refused past REGISTER_RATE_PER_MIN of the address: compared, with the wait it names.
        if (r.status === 'rate-limited') {
          seen.set('registration refused', (seen.get('registration refused') ?? 0) + 1);
          return { status: r.status, retryMs: r.retryMs };
        }
        return r.status === 'banned' ? { status: r.status, until: r.until } : { status: r.status };
      }
      case 'open':
      case 'sopen': {
        const channel: Channel = op.k === 'open' ? 'matching' : 'signalling';
        const sock = this.newSock(slot, channel);
        const tok = op.bad ? 'wrong-token' : token;
        const r = channel === 'matching' ? await store.attachMatching(id, tok, sock.id, now) : await store.attachSignalling(id, tok, sock.id, now);
        if (!r.ok) {
          sock.open = false;
          hub.remove(sock);
          return { ok: false };
        }
        if (channel === 'matching') slot.m = sock;
        else slot.s = sock;
        await hub.run(r.effects);
        return { ok: true };
      }
      case 'close':
      case 'sclose': {
        const channel: Channel = op.k === 'close' ? 'matching' : 'signalling';
        const sock = channel === 'matching' ? slot.m : slot.s;
        if (!sock) return { none: true };
        sock.open = false;
        hub.remove(sock);
        if (channel === 'matching') slot.m = undefined;
        else slot.s = undefined;
        return run(channel === 'matching' ? store.detachMatching(id, sock.id, op.left, now) : store.detachSignalling(id, sock.id, op.left, now));
      }
      case 'break': {
        // The socket went away under the server, which has not noticed yet: deliveries to it fail (undelivered).
        const sock = op.ch === 'matching' ? slot.m : slot.s;
        if (sock) sock.open = false;
        return undefined;
      }
      case 'next': {
        // Refused past NEXT_RATE_PER_MIN of the address: compared, with the wait it names.
        const r = await store.next(id, m, now);
        if (isRefused(r)) {
          seen.set('next refused', (seen.get('next refused') ?? 0) + 1);
          return { limited: r.retryMs };
        }
        return run(Promise.resolve(r));
      }
      case 'stop':
        return run(store.stop(id, m, now));
      case 'report':
        return run(store.report(id, m, undefined, now, op.recorded).then((r) => r.effects));
      case 'chat':
        // The text as the edge hands it on, through the protocol's schema.
        return run(store.chat(id, m, ChatMessage.parse({ event: 'chat', message: op.text }).message, now));
      case 'typing':
        return run(store.typing(id, m, op.on));
      case 'block':
        return run(store.block(id, m, now, op.wide));
      case 'join':
        return run(store.join(id, s, this.roomFor(slot, op.room), now));
      case 'meet': {
        // Both members of the session's room join it on their signalling sockets, as clients do once matched.
        const code = this.snap?.sessions.get(id)?.room;
        const room = code === undefined ? undefined : this.snap?.rooms.get(code);
        for (const member of room?.members ?? [id]) {
          const sock = this.slots.find((x) => x.id === member)?.s;
          await run(store.join(member, sock?.id ?? 'no-socket', code ?? 'no-such-room-code-here', now));
        }
        return undefined;
      }
      case 'leave':
        return run(store.leave(id, s, this.roomFor(slot, op.room), now));
      case 'signal': {
        const data = op.type === 'candidate' ? { candidate: `candidate:${'1'.repeat(op.size)}`, sdpMid: '0' } : { type: op.type, sdp: `v=0 ${'a'.repeat(op.size)}` };
        // n in a row, as a client sends its candidates.
        for (let j = 0; j < op.n; j++) await run(store.signal(id, s, this.roomFor(slot, op.room), op.type, encodeSignalData(data), now));
        return undefined;
      }
      case 'expel': {
        const sock = op.ch === 'matching' ? slot.m : slot.s;
        if (sock) {
          sock.open = false;
          hub.remove(sock);
        }
        return run(store.expel(id, token, op.ch, sock?.id ?? 'no-socket', now));
      }
      case 'query': {
        const addr = slot.attrs?.addr ?? 'addr0';
        const [presence, verified, owner, banned] = await Promise.all([
          store.presence(token),
          store.verify(id, token),
          store.sessionForToken(token),
          store.bannedUntil(addr, now),
        ]);
        return { presence: presence ?? null, verified, owner: owner ?? null, banned: banned ?? null };
      }
    }
  }
}

interface Unit {
  /** Compare the whole state too (lockstep). */
  state: boolean;
}

// ------------------------------------------------------------ the rules, checked on one store

function fail(world: World, what: string, problem: string): never {
  throw new Error(`${world.name} store, ${what} at ${world.now}: ${problem}`);
}

/** A rule of pairing in a large pool: fails, or is noted where the world is lenient. */
function miss(world: World, what: string, key: string, problem: string): void {
  if (!world.lenient) fail(world, what, problem);
  if (!world.misses.has(key)) world.misses.set(key, `${what} at ${world.now}: ${problem}`);
}

const candidate = (s: SessionView): Candidate => ({
  id: s.id,
  interests: s.interests,
  lang: s.lang,
  country: s.country,
  area: s.area,
  wants: s.wants,
  enteredAt: s.enteredAt,
  waitingSince: s.waitingSince,
});
const inCooldown = (a: SessionView, b: string, now: number): boolean => a.cooldown.some(([id, until]) => id === b && until > now);
const blockedEither = (a: SessionView, b: SessionView): boolean => a.blocked.includes(b.id) || b.blocked.includes(a.id);
/** Kept apart by an address block (a block or report between sessions of different addresses). */
const addressesApart = (snap: Snapshot, a: SessionView, b: SessionView): boolean =>
  a.addr !== b.addr && snap.addressBlocks.includes(a.addr < b.addr ? `${a.addr}|${b.addr}` : `${b.addr}|${a.addr}`);

function check(world: World, what: string, before: Snapshot | undefined, snap: Snapshot, stats: StoreStats, paired: Pairing[], checkChoices: boolean): void {
  const now = world.now;
  const policy = world.opts;
  if (snap.faults.length > 0) fail(world, what, snap.faults.join('; '));

  // Rooms: two distinct members of the room's mode, each matched in it; nobody in two rooms.
  const member = new Map<string, string>();
  let keptBytes = 0;
  for (const room of snap.rooms.values()) {
    const [a, b] = room.members;
    if (a === b) fail(world, what, `room ${room.code} pairs ${a} with itself`);
    for (const id of room.members) {
      const s = snap.sessions.get(id);
      if (!s) fail(world, what, `room ${room.code} has a member ${id} that does not exist`);
      if (s.state !== 'matched' || s.room !== room.code) fail(world, what, `room ${room.code} has ${id}, which is ${s.state} in ${s.room ?? 'no room'}`);
      if (s.mode !== room.mode) fail(world, what, `room ${room.code} (${room.mode}) has ${id} of mode ${s.mode}`);
      const other = member.get(id);
      if (other !== undefined) fail(world, what, `${id} is in two rooms, ${other} and ${room.code}`);
      member.set(id, room.code);
    }
    if (room.initiator !== a && room.initiator !== b) fail(world, what, `room ${room.code} has a foreign initiator`);
    keptBytes += room.keptBytes;
  }
  const pool: Record<Mode, string[]> = { video: [], text: [] };
  for (const s of snap.sessions.values()) {
    keptBytes += s.keptChatBytes;
    if ((s.state === 'matched') !== (s.room !== undefined) || (s.room !== undefined && member.get(s.id) !== s.room)) {
      fail(world, what, `${s.id} is ${s.state} with room ${s.room ?? 'none'}`);
    }
    if (s.state === 'waiting' && s.m !== undefined) pool[s.mode].push(s.id);
  }
  for (const mode of MODES) {
    pool[mode].sort();
    if (JSON.stringify(pool[mode]) !== JSON.stringify(snap.pool[mode])) {
      fail(world, what, `the ${mode} pool index ${JSON.stringify(snap.pool[mode])} is not the waiting sessions with an open socket ${JSON.stringify(pool[mode])}`);
    }
    if (stats.waiting[mode] !== pool[mode].length) fail(world, what, `stats say ${stats.waiting[mode]} waiting for ${mode}, the state ${pool[mode].length}`);
  }
  if (stats.rooms !== snap.rooms.size) fail(world, what, `stats say ${stats.rooms} rooms, the state ${snap.rooms.size}`);
  if (stats.sessions !== snap.sessions.size) fail(world, what, `stats say ${stats.sessions} sessions, the state ${snap.sessions.size}`);
  if (stats.keptBytes !== keptBytes) fail(world, what, `stats say ${stats.keptBytes} bytes kept, the rooms and sessions ${keptBytes}`);

  // No lost match: two waiting sessions that accept each other, without a block (of the sessions or of their addresses) or a cooldown between them.
  for (const mode of MODES) {
    const waiting = pool[mode].map((id) => snap.sessions.get(id) as SessionView);
    for (let i = 0; i < waiting.length; i++) {
      for (let j = i + 1; j < waiting.length; j++) {
        const x = waiting[i] as SessionView;
        const y = waiting[j] as SessionView;
        if (blockedEither(x, y) || addressesApart(snap, x, y) || inCooldown(x, y.id, now) || inCooldown(y, x.id, now)) continue;
        if (mutuallyAccept(candidate(x), candidate(y), now, policy)) miss(world, what, `lost ${x.id}+${y.id}`, `lost match: ${x.id} and ${y.id} accept each other and both wait`);
      }
    }
  }

  for (const p of paired) {
    const a = snap.sessions.get(p.a);
    const b = snap.sessions.get(p.b);
    if (!a || !b) fail(world, what, `pairing ${p.a}+${p.b}: a member is gone already`);
    if (p.a === p.b) fail(world, what, `${p.a} paired with itself`);
    if (a.mode !== b.mode || a.mode !== p.mode) fail(world, what, `pairing ${p.a}+${p.b} across modes`);
    // Narrowing: before INTEREST_TIMEOUT_MS after it entered the pool, a member accepts only its lang, its place and a shared interest.
    for (const [x, y, waited] of [
      [a, b, p.waitedMs[0]],
      [b, a, p.waitedMs[1]],
    ] as const) {
      if (waited >= policy.interestTimeoutMs) continue;
      if (x.lang !== undefined && x.lang !== y.lang) fail(world, what, `${x.id} (lang ${x.lang}, waited ${waited} ms) paired with lang ${y.lang ?? 'none'}`);
      if (x.interests.length > 0 && commonInterests(x, y).length === 0) fail(world, what, `${x.id} (waited ${waited} ms) paired without a shared interest`);
      if (!inPlace(x.wants, y)) fail(world, what, `${x.id} (wants ${x.wants}, waited ${waited} ms) paired with ${y.country ?? 'unknown'}/${y.area ?? 'unknown'}`);
    }
    const room = snap.rooms.get(p.room);
    if (room && JSON.stringify(room.common) !== JSON.stringify(commonInterests(a, b))) fail(world, what, `room ${p.room} lists common interests ${JSON.stringify(room.common)}`);
  }

  // The choice itself, against the state before the step (only when the step was one attempt).
  if (!before || paired.length !== 1 || !checkChoices) {
    if (paired.length > 0) world.choices.skipped += paired.length;
    return;
  }
  world.choices.checked++;
  const p = paired[0] as Pairing;
  const seekerNow = snap.sessions.get(p.a) as SessionView;
  // The seeker as it stood before the step; an arrival (registered and attached in this step) did not exist
  // then, and is taken as it is now. Its id may be one that an ended session had (the test names sessions by
  // slot, as the legacy RVC protocol does by username): the blocks others still hold against that id keep them
  // apart from it in both stores, so the candidates' own blocked sets count even then.
  const seekerBefore = before.sessions.get(p.a) ?? seekerNow;
  const entered = now - p.waitedMs[0];
  const seeker: Candidate = { ...candidate(seekerNow), enteredAt: entered, waitingSince: entered };
  const eligible = (before.pool[p.mode] ?? [])
    .filter((id) => id !== p.a)
    .map((id) => before.sessions.get(id) as SessionView)
    // Address blocks as they stand after the step: a block's own pairing (back in the pool) already avoids the addresses it keeps apart.
    .filter((c) => !blockedEither(seekerBefore, c) && !addressesApart(snap, seekerNow, c) && mutuallyAccept(seeker, candidate(c), now, policy));
  if (!eligible.some((c) => c.id === p.b)) fail(world, what, `${p.a} was paired with ${p.b}, which was not eligible (eligible: ${eligible.map((c) => c.id).join(' ')})`);
  const fresh = eligible.filter((c) => !inCooldown(seekerBefore, c.id, now));
  const from = fresh.length > 0 ? fresh : eligible;
  if (!from.some((c) => c.id === p.b)) fail(world, what, `${p.a} was paired again with ${p.b} within the re-pair cooldown while ${fresh.map((c) => c.id).join(' ')} were eligible`);
  const oldest = from.reduce((o, c) => (c.waitingSince < o.waitingSince ? c : o));
  if (now - oldest.waitingSince > policy.fairWaitMs && oldest.id !== p.b) {
    miss(world, what, `fair ${p.a}+${p.b}@${now}`, `fairness: ${oldest.id} has waited ${now - oldest.waitingSince} ms (> ${policy.fairWaitMs}) and was eligible, but ${p.a} was paired with ${p.b} (waited ${p.waitedMs[1]} ms)`);
  }
}

// ------------------------------------------------------------ operations

type Op =
  | { k: 'register' | 'arrive'; i: number; mode: Mode; interests: string[]; lang: string | undefined; addr: number; place?: number; region?: Region; show?: boolean }
  | { k: 'open' | 'sopen'; i: number; bad: boolean }
  | { k: 'close' | 'sclose'; i: number; left: boolean }
  | { k: 'break' | 'expel'; i: number; ch: Channel }
  | { k: 'next' | 'stop' | 'query' | 'meet'; i: number }
  /** `recorded` false: a report past REPORTS_PER_ADDR. */
  | { k: 'report'; i: number; recorded: boolean }
  | { k: 'chat'; i: number; text: string }
  | { k: 'typing'; i: number; on: boolean }
  | { k: 'block'; i: number; wide: boolean }
  | { k: 'join' | 'leave'; i: number; room: number }
  | { k: 'signal'; i: number; room: number; type: SignalType; size: number; n: number }
  | { k: 'admin' }
  | { k: 'lift'; addr: number };

/** Moving the clock: a few ms, or about one of the settings' durations. */
type Advance = { k: 'advance'; by: 'tick' | 'interest' | 'grace' | 'fair' | 'cooldown' | 'registration' | 'ban' | 'minute'; plus: number };
type Step = Op | Advance;

const VOCAB = ['music', 'go', 'chess'];
/** Countries of the arrivals' addresses (index 0: unknown): two in one region, one in another. */
const PLACES: readonly (string | undefined)[] = [undefined, 'FR', 'DE', 'US'];
const placeArb = fc.nat(PLACES.length - 1);
const regionArb = fc.constantFrom<Region | undefined>(undefined, undefined, 'anywhere', 'near', 'near', 'europe', 'north-america');
const interestsArb = (vocab: string[], max: number): fc.Arbitrary<string[]> => fc.uniqueArray(fc.constantFrom(...vocab), { maxLength: max });
const arrivalArb = fc.record({
  mode: fc.constantFrom<Mode>('video', 'video', 'text'),
  interests: interestsArb(VOCAB, 2),
  lang: fc.constantFrom(undefined, undefined, 'en', 'fr'),
  addr: fc.nat(4),
  place: placeArb,
  region: regionArb,
  show: fc.boolean(),
});
const roomRefArb = fc.oneof({ arbitrary: fc.constant(-1), weight: 5 }, { arbitrary: fc.nat(6), weight: 1 });
const chanArb = fc.constantFrom<Channel>('matching', 'signalling');
const TEXTS = ['hi', 'héllo wörld', '日本語のテキスト', '🙂'.repeat(24), 'x'.repeat(300), 'a lone \ud800 surrogate'];

function stepArb(slots: number): fc.Arbitrary<Step> {
  // Mostly the first few slots, so that sessions meet.
  const i = fc.oneof({ weight: 4, arbitrary: fc.nat(3) }, { weight: 1, arbitrary: fc.nat(slots - 1) });
  // Mostly someone in a room, for what happens in rooms.
  const m = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: -4, max: -1 }) }, { weight: 1, arbitrary: i });
  const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>): { weight: number; arbitrary: fc.Arbitrary<T> } => ({ weight, arbitrary });
  return fc.oneof(
    w(10, fc.record({ k: fc.constantFrom('register' as const, 'arrive' as const), i, mode: fc.constantFrom<Mode>('video', 'video', 'text'), interests: interestsArb(VOCAB, 2), lang: fc.constantFrom(undefined, undefined, 'en', 'fr'), addr: fc.nat(4), place: placeArb, region: regionArb, show: fc.boolean() })),
    w(10, fc.record({ k: fc.constantFrom('open' as const, 'sopen' as const), i, bad: fc.constantFrom(false, false, false, false, true) })),
    w(6, fc.record({ k: fc.constantFrom('close' as const, 'sclose' as const), i: m, left: fc.boolean() })),
    w(4, fc.record({ k: fc.constant('break' as const), i: m, ch: chanArb })),
    w(1, fc.record({ k: fc.constant('expel' as const), i, ch: chanArb })),
    w(8, fc.record({ k: fc.constantFrom('next' as const, 'stop' as const, 'query' as const), i })),
    w(3, fc.record({ k: fc.constant('next' as const), i: m })),
    w(3, fc.record({ k: fc.constant('report' as const), i: m, recorded: fc.constantFrom(true, true, false) })),
    w(10, fc.record({ k: fc.constant('meet' as const), i: m })),
    w(8, fc.record({ k: fc.constant('chat' as const), i: m, text: fc.constantFrom(...TEXTS) })),
    w(2, fc.record({ k: fc.constant('typing' as const), i: m, on: fc.boolean() })),
    w(3, fc.record({ k: fc.constant('block' as const), i: m, wide: fc.boolean() })),
    w(12, fc.record({ k: fc.constantFrom('join' as const, 'join' as const, 'join' as const, 'leave' as const), i: m, room: roomRefArb })),
    w(24, fc.record({ k: fc.constant('signal' as const), i: m, room: roomRefArb, type: fc.constantFrom<SignalType>('offer', 'answer', 'candidate', 'candidate'), size: fc.constantFrom(10, 150, 400), n: fc.constantFrom(1, 1, 3) })),
    w(2, fc.oneof(fc.constant({ k: 'admin' as const }), fc.record({ k: fc.constant('lift' as const), addr: fc.nat(4) }))),
    w(12, fc.record({ k: fc.constant('advance' as const), by: fc.constantFrom('tick' as const, 'tick' as const, 'tick' as const, 'interest' as const, 'grace' as const, 'fair' as const, 'cooldown' as const, 'registration' as const, 'ban' as const, 'minute' as const), plus: fc.integer({ min: -1, max: 40 }) })),
  );
}

function advanceMs(a: Advance, o: StoreOptions): number {
  const base = { tick: 0, interest: o.interestTimeoutMs, grace: o.graceMs, fair: o.fairWaitMs, cooldown: o.repairCooldownMs, registration: o.registrationTtlMs, ban: o.banDurationMs, minute: RATE_WINDOW_MS }[a.by];
  return Math.max(1, base + a.plus);
}

/** Settings of one run: short buffers and caps so that they are reached, both modes of each rule. */
const optsArb: fc.Arbitrary<Opts> = fc
  .record({
    interestTimeoutMs: fc.constantFrom(0, 300, 5_000),
    fairWaitMs: fc.constantFrom(40, 250, 10_000),
    graceMs: fc.constantFrom(150, 15_000),
    registrationTtlMs: fc.constantFrom(200, 30_000),
    signalBuffer: fc.constantFrom(2, 3, 64),
    keptBytesPerRoom: fc.constantFrom(700, 262_144),
    keptBytesPerProcess: fc.constantFrom(1_100, 67_108_864),
    keptBytesReservedPerRoom: fc.constantFrom(0, 400, 65_536),
    keptBytesReservedTotal: fc.constantFrom(0, 500, 134_217_728),
    maxSessionsPerAddr: fc.constantFrom(2, 1_000_000),
    reportBanThreshold: fc.constantFrom(1, 2, 3),
    reportMinRoomMs: fc.constantFrom(0, 100),
    // Redis expires the cooldown and ban keys by its own clock: at least a minute, longer than a run.
    repairCooldownMs: fc.constantFrom(60_000, 90_000),
    banDurationMs: fc.constantFrom(60_000, 3_600_000),
    // A few nexts a minute, so that runs reach it (Redis keeps the count for the minute by its own clock, longer than a run).
    nextRatePerMin: fc.constantFrom(1, 2, 120),
    // Likewise a few registrations a minute from one address (the arrivals come from five).
    registerRatePerMin: fc.constantFrom(2, 4, 1_000_000),
    // The caps in all, reached within a run: blocks between addresses, waiting registrations, strikes (bans outlast a run: those in force are kept).
    addressBlocksMax: fc.constantFrom(0, 1, 100_000),
    pendingRegistrationsMax: fc.constantFrom(1, 2, 20_000),
    banStrikesMax: fc.constantFrom(0, 1, 100_000),
    c: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  })
  .map(({ c, ...o }) => ({ ...DEFAULTS, ...o, banMaxMs: o.banDurationMs * 4, random: () => c }));

async function worlds(opts: Opts, slots: number): Promise<[World, World]> {
  return Promise.all([World.create('memory', opts, slots), World.create('redis', opts, slots)]);
}

/** One step on both stores; their outcomes, in order. */
async function both(mem: World, red: World, s: Step, unit: Unit): Promise<[StepOutcome[], StepOutcome[]]> {
  const go = async (w: World): Promise<StepOutcome[]> => {
    if (s.k === 'advance') return w.advance(advanceMs(s, w.opts), unit);
    // Every operation comes at least a millisecond after the one before (pool order is by entry time in Redis).
    const timers = await w.advance(1, unit);
    return [...timers, await w.step(show(s), unit, true, () => w.apply(s))];
  };
  return [await go(mem), await go(red)];
}

function show(s: Step): string {
  const { k, ...rest } = s;
  return `${k} ${JSON.stringify(rest)}`;
}

function assertSame(a: StepOutcome[], b: StepOutcome[], history: string[]): void {
  try {
    assert.deepStrictEqual(b, a);
  } catch (err) {
    const tail = history.slice(-12).join('\n  ');
    throw new Error(`the stores disagree (expected: memory, actual: redis) after:\n  ${tail}\n${err instanceof Error ? err.message : String(err)}`);
  }
}


/** What the Redis store missed in the crowd runs (lost matches, fairness), for the todo test. */
const redisMisses: string[] = [];

const seekerOf = (line: string): { seeker: string; line: string } => {
  const [, who = ''] = line.split(' ');
  return { seeker: who.split('+')[0] ?? '', line: line.replace(/^R\d+ /, '') };
};

/**
 * A crowd: hundreds of arrivals, nearly all narrowed by a shared interest and
 * a lang that few others have, so that the pool grows to hundreds and each
 * interest's index set holds far more sessions than the Redis store reads per
 * attempt; then churn by index.
 */
const crowdArb = fc
  .record({
    fairWaitMs: fc.constantFrom(60, 250),
    c: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    people: fc.array(
      fc.record({
        gap: fc.integer({ min: 0, max: 3 }),
        mode: fc.constantFrom<Mode>('video', 'video', 'video', 'video', 'text'),
        interests: fc.oneof({ weight: 9, arbitrary: interestsArb(['x', 'y', 'z'], 2).filter((a) => a.length > 0) }, { weight: 1, arbitrary: fc.constant<string[]>([]) }),
        lang: fc.oneof({ weight: 9, arbitrary: fc.nat(119).map((n) => `l${n}`) }, { weight: 1, arbitrary: fc.constant(undefined) }),
      }),
      { minLength: 180, maxLength: 240 },
    ),
  })
  .chain(({ fairWaitMs, c, people }) =>
    fc.record({
      opts: fc.constant({ ...DEFAULTS, interestTimeoutMs: 5_000, fairWaitMs, random: () => c } satisfies Opts),
      people: fc.constant(people),
      churn: fc.array(
        fc.oneof(
          fc.oneof(
            { weight: 3, arbitrary: fc.record({ k: fc.constantFrom('next' as const, 'next' as const, 'stop' as const), i: fc.nat(people.length - 1) }) },
            { weight: 1, arbitrary: fc.record({ k: fc.constant('report' as const), i: fc.nat(people.length - 1), recorded: fc.constant(true) }) },
          ),
          fc.record({ k: fc.constant('close' as const), i: fc.nat(people.length - 1), left: fc.boolean() }),
          fc.record({ k: fc.constant('open' as const), i: fc.nat(people.length - 1), bad: fc.constant(false) }),
          fc.record({ k: fc.constant('advance' as const), by: fc.constantFrom('tick' as const, 'fair' as const), plus: fc.integer({ min: 1, max: 30 }) }),
        ),
        { minLength: 40, maxLength: 80 },
      ),
    }),
  );

/** fc.assert, with the failure itself in the message: the seed and path to replay it, what went wrong, and the counterexample. */
async function holds<Ts>(property: fc.IAsyncProperty<Ts>, params: fc.Parameters<Ts>): Promise<void> {
  const out = await fc.check(property, params);
  if (!out.failed) return;
  const why = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
  throw new Error(
    `failed with DIFF_SEED=${out.seed} (path ${out.counterexamplePath ?? '?'}, after ${out.numRuns} runs, shrunk ${out.numShrinks} times):\n${why}\n` +
      `counterexample: ${fc.stringify(out.counterexample)}`,
  );
}

// ------------------------------------------------------------ the properties

describe('memory and Redis stores, differential', () => {
  it(`agree exactly, step by step, on random operations in small pools (seed ${SEED}, ${LOCKSTEP_RUNS} runs)`, async () => {
    let steps = 0;
    let checked = 0;
    let setup = 0;
    const started = performance.now();
    await holds(
      fc.asyncProperty(optsArb, fc.array(arrivalArb, { minLength: 2, maxLength: 8 }), fc.array(stepArb(SLOTS), { minLength: 30, maxLength: 100 }), async (opts, first, script) => {
        const t0 = performance.now();
        const [mem, red] = await worlds(opts, SLOTS);
        setup += performance.now() - t0;
        const history: string[] = [];
        try {
          // A few arrivals first, then anything.
          const arrivals = first.flatMap((p, j): Step[] => [
            { k: 'register', i: j, ...p },
            { k: 'open', i: j, bad: false },
            { k: 'sopen', i: j, bad: false },
          ]);
          for (const s of [...arrivals, ...script]) {
            history.push(show(s));
            const [a, b] = await both(mem, red, s, { state: true });
            assertSame(a, b, history);
            steps += a.length;
          }
          checked += mem.choices.checked + red.choices.checked;
        } finally {
          await Promise.all([mem.close(), red.close()]);
        }
      }),
      { seed: SEED, numRuns: LOCKSTEP_RUNS, endOnFailure: !SHRINK, verbose: 1 },
    );
    console.log(`lockstep: ${steps} steps compared, ${checked} pairing choices checked against the rules, ${Math.round(performance.now() - started)} ms (${Math.round(setup)} ms starting stores)`);
    console.log(`lockstep coverage (both stores): ${coverage()}`);
    seen.clear();
  });

  it(`keep the rules in a pool of hundreds and leave the same shape once everyone is compatible (seed ${SEED}, ${CROWD_RUNS} runs)`, async () => {
    const started = performance.now();
    await holds(
      fc.asyncProperty(crowdArb, async ({ opts, people, churn }) => {
        const n = people.length;
        const [mem, red] = await worlds(opts, n);
        red.lenient = true;
        const history: string[] = [];
        let diverged: string | undefined;
        let missed = 0;
        const unit: Unit = { state: true };
        const compare = (a: StepOutcome[], b: StepOutcome[]): void => {
          if (diverged !== undefined) return;
          if (red.misses.size > missed) {
            // A match the Redis store did not find (noted for the todo test below): from here on they differ.
            missed = red.misses.size;
            diverged = `${history.at(-1) ?? ''} (a match the Redis store missed)`;
            unit.state = false;
            return;
          }
          const pa = a.flatMap((o) => o.paired.map(seekerOf));
          const pb = b.flatMap((o) => o.paired.map(seekerOf));
          // The same seeker, a different partner: a legitimate difference (each choice was checked against the rules).
          const sameSeekers = pa.length > 0 && JSON.stringify(pa.map((p) => p.seeker)) === JSON.stringify(pb.map((p) => p.seeker));
          if (sameSeekers && JSON.stringify(pa) !== JSON.stringify(pb)) {
            diverged = history.at(-1) ?? '';
            unit.state = false;
            return;
          }
          assertSame(a, b, history);
        };
        try {
          // Arrivals, a few ms apart: the pool grows while narrowing keeps many apart.
          for (const [j, p] of people.entries()) {
            const arrive: Step[] = [
              { k: 'advance', by: 'tick', plus: p.gap },
              { k: 'arrive', i: j, mode: p.mode, interests: p.interests, lang: p.lang, addr: j % 97 },
            ];
            for (const s of arrive) {
              history.push(show(s));
              const [a, b] = await both(mem, red, s, unit);
              compare(a, b);
            }
          }
          // Everyone's narrowing runs out, one interest timer at a time.
          history.push('advance past INTEREST_TIMEOUT_MS');
          const [a, b] = await both(mem, red, { k: 'advance', by: 'interest', plus: 1 }, unit);
          compare(a, b);
          for (const mode of MODES) {
            const count = people.filter((p) => p.mode === mode).length;
            for (const w of [mem, red]) {
              const stats = await w.core.store.stats();
              assert.equal(stats.waiting[mode], count % 2, `${w.name}: once everyone is compatible, ${count % 2} ${mode} session(s) wait`);
            }
          }
          const [sm, sr] = await Promise.all([mem.core.store.stats(), red.core.store.stats()]);
          assert.deepEqual(sr, sm, 'the same shape once everyone is compatible');
          // Churn: each store on its own once they have chosen differently; the rules hold on both.
          for (const s of churn) {
            history.push(show(s));
            const [a, b] = await both(mem, red, s, unit);
            compare(a, b);
          }
          console.log(
            `crowd of ${n}: up to ${mem.mostWaiting} (memory) and ${red.mostWaiting} (redis) waiting at once; ` +
              (diverged === undefined ? 'no divergent choice' : `first divergent step: ${diverged}`) +
              `; choices checked memory ${mem.choices.checked}, redis ${red.choices.checked}; ` +
              `redis missed ${[...red.misses.keys()].filter((k) => k.startsWith('lost')).length} match(es) and the fairness rule ${[...red.misses.keys()].filter((k) => k.startsWith('fair')).length} time(s)`,
          );
          redisMisses.push(...red.misses.values());
        } finally {
          await Promise.all([mem.close(), red.close()]);
        }
      }),
      { seed: SEED, numRuns: CROWD_RUNS, endOnFailure: !SHRINK, verbose: 1 },
    );
    console.log(`crowd: ${Math.round(performance.now() - started)} ms`);
  });

  // The Redis store reads a bounded set of candidates per attempt (the 32 oldest of each index
  // set of the smallest family it must read, and 16 sampled; a seeker that names no lang reads
  // only those that accept any lang), the memory store scans until 64 eligible: in these
  // crowds neither may miss the one compatible session nor pass over the oldest eligible one.
  it(`drop the sessions that ended from a long-lived session's blocked set as it grows (every ${BLOCKED_PRUNE_EVERY}), alike`, async () => {
    // One session blocks 600 partners in turn; every 100th stays, the rest leave. Kept whole, the
    // set would hold 600 ids; a few blocking addresses could grow such sets without end.
    const partners = 600;
    const opts: Opts = { ...DEFAULTS, nextRatePerMin: 1_000_000, random: () => 0 };
    const [mem, red] = await worlds(opts, 0);
    try {
      const sizes: number[] = [];
      for (const w of [mem, red]) {
        const keeper = await w.core.join({ addr: 'keeper' });
        const stayed: string[] = [];
        for (let i = 0; i < partners; i++) {
          await w.core.clock.advance(1);
          const b = await w.core.join({ addr: `p${i}` });
          await w.core.idle();
          assert.equal(b.matched()?.peer, keeper.id, `${w.name}: partner ${i} meets the keeper`);
          await keeper.send({ event: 'block', addressWide: false });
          await w.core.idle();
          if (i % 100 === 0) stayed.push(b.id);
          else await b.drop(true);
        }
        const blocked = (await w.look()).sessions.get(keeper.id)?.blocked ?? [];
        for (const id of stayed) assert.ok(blocked.includes(id), `${w.name}: a partner still alive stays blocked`);
        assert.ok(blocked.length < BLOCKED_PRUNE_EVERY + stayed.length, `${w.name}: ${blocked.length} ids kept of ${partners}`);
        sizes.push(blocked.length);
      }
      assert.equal(sizes[0], sizes[1], 'both stores keep the same number');
    } finally {
      await Promise.all([mem.close(), red.close()]);
    }
  });

  it('the Redis store, too, never loses a match nor passes over the oldest eligible in a pool of hundreds', () => {
    assert.deepEqual(redisMisses.slice(0, 5), [], `${redisMisses.length} miss(es), the first ones shown`);
  });
});

