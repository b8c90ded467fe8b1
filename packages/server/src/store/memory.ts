// The embedded store: one process, zero set-up, nothing on disk. Each method
// runs to completion synchronously, which is what makes it atomic here.
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  CloseCode,
  type AreaRegion,
  DISCONNECT_MESSAGES,
  type ChatEvent,
  type DisconnectReason,
  type ErrorCode,
  type Mode,
  type PeerDisconnectedEvent,
  type ServerMessage,
  type SignalType,
} from '@dyad/protocol';
import {
  BLOCKED_PRUNE_EVERY,
  banLengthMs,
  choosePartner,
  commonInterests,
  countRate,
  countingReports,
  inGoodStanding,
  keptReport,
  mutuallyAccept,
  narrows,
  nextStrike,
  reportCounts,
  sharedArea,
  talkedMs,
  type RateWindow,
  type ReportEntry,
  type Strike,
} from '../core/rules.js';
import { newRoomCode, newSessionId as newId } from '../core/ids.js';
import { keptBytes } from '../core/frames.js';
import { WindowLimiter, makeRoom } from './window-limiter.js';
import { PoolIndex, inPoolOrder, type Pooled } from './pool-index.js';
import {
  ACTIVITY_MINUTES,
  MINUTE_MS,
  REPORT_LOG_PER_ADDR,
  emptyEffects,
  type ActivityMinute,
  type Admission,
  type AttachResult,
  type BanRecord,
  type Channel,
  type ChatSeen,
  type Delivery,
  type Effects,
  type NewSession,
  type NextRefused,
  type RegisterResult,
  type ReportResult,
  type ReportSummary,
  type SessionState,
  type SignalText,
  type Store,
  type StoreOptions,
  type StoreStats,
} from './store.js';


/** Stale report entries are swept after this many reports (those of the reported address are pruned at each one). */
const REPORT_SWEEP_EVERY = 256;

/** An Expiring map is swept of ended entries from this size on (then from twice what remains). */
const SWEEP_MIN = 1024;
/** And at least this often while it holds any. */
const SWEEP_EVERY_MS = 60_000;

/**
 * A map whose ended entries go when it has doubled since the last sweep, or
 * a minute after it, whichever comes first: amortised O(1) per use, bounded
 * by the entries live at once, and a burst is not held past its end on a
 * quiet server.
 */
class Expiring<V> {
  private readonly map = new Map<string, V>();
  private sweepAt = SWEEP_MIN;
  private sweptAt = 0;

  constructor(private readonly ended: (v: V, now: number) => boolean) {}

  /** The map, its ended entries swept first when it has grown enough or a sweep is due. */
  at(now: number): Map<string, V> {
    if (this.map.size >= this.sweepAt || (this.map.size > 0 && now - this.sweptAt >= SWEEP_EVERY_MS)) {
      for (const [k, v] of this.map) if (this.ended(v, now)) this.map.delete(k);
      this.sweepAt = Math.max(SWEEP_MIN, 2 * this.map.size);
      this.sweptAt = now;
    }
    return this.map;
  }
}

/**
 * Drop the entries of `map` (key -> when it ends) that have ended, from the
 * front: for maps whose entries all last the same time, renewed ones moved
 * to the back, so that they are held in the order they end.
 */
function dropEnded(map: Map<string, number>, now: number): void {
  for (const [key, until] of map) {
    if (until > now) break;
    map.delete(key);
  }
}

/**
 * Per-address counts in windows of core/rules.ts countRate, at most `maxKeys`
 * of them (LIMITER_KEYS_MAX), held as WindowLimiter holds its keys: every
 * window lasts as long, so a window begun again goes to the back and ended
 * ones go from the front as new ones come (many addresses that each start
 * once leave nothing past their minute).
 */
class RateWindows {
  private readonly windows = new Map<string, RateWindow>();

  constructor(
    private readonly max: number,
    private readonly maxKeys: number,
  ) {}

  /** Count one from `addr`: undefined when counted, else the ms until it is allowed again (nothing counted). */
  count(addr: string, now: number): number | undefined {
    const w = this.windows.get(addr);
    const r = countRate(w, now, this.max);
    if (r.w !== w) {
      this.windows.delete(addr);
      makeRoom(this.windows, now, this.maxKeys);
      this.windows.set(addr, r.w);
    }
    return r.retryMs;
  }
}

/** How many eligible partners one pairing attempt looks at before choosing (bounds the work per arrival). */
export const MAX_CANDIDATES_PER_ATTEMPT = 64;
/**
 * And how many waiting sessions it looks at in all, oldest first, eligible or
 * not. An attempt reads only the sessions the pool index (pool-index.ts)
 * says may accept its seeker; this bounds what is left, a crowd that shares
 * what the seeker names and still accepts nobody (fourth review, finding P1:
 * before the index and the bound, 8,000 sessions narrowed by interests no one
 * shares, from 800 addresses, held the process 20 s with their free `next`s).
 * Past it, those further back are looked at as the ones ahead of them pair or
 * leave.
 */
export const MAX_LOOKED_PER_ATTEMPT = 1_024;

/** A session as this store holds it (exported as a type for tests that read the store's state). */
export interface Session extends Pooled {
  mode: Mode;
  /** Its partner is told `country` on `matched`. */
  showCountry: boolean;
  tokenHash: Buffer;
  addr: string;
  state: SessionState;
  /** Open matching socket; absent while away or before the first open. */
  mConn?: string;
  /** The matching socket whose grace period is running. */
  mGrace?: string;
  sConn?: string;
  sGrace?: string;
  /** The room the open signalling socket has joined (a new socket must join again). */
  sJoined?: string;
  room?: string;
  /** Chat kept while the matching socket is away, delivered on resumption. */
  keptChat: ChatEvent[];
  /** What keptChat counts for (keptBytes). */
  keptChatBytes: number;
  /** The room keptChat is of. */
  keptChatRoom?: string;
  /** A room end missed while away, told on resumption. */
  news?: PeerDisconnectedEvent;
  lastPartner?: { id: string; addr: string; endedAt: number; room: string; openedAt: number };
  /** Partner id -> until when a re-pair is avoided; in the order they run out (endRoom). */
  cooldown: Map<string, number>;
  /** Never paired with these again (reports either way). */
  blocked: Set<string>;
}

export interface Room {
  code: string;
  members: [string, string];
  initiator: string;
  mode: Mode;
  common: string[];
  /** When the room opened: a report counts only after a conversation of REPORT_MIN_ROOM_MS. */
  openedAt: number;
  answerPassed: boolean;
  /** Members that have joined on signalling and not left (grace periods included). */
  joined: Set<string>;
  /** Signals kept for a member whose socket has not joined, as text (core/frames.ts). */
  kept: Map<string, SignalText[]>;
  /** What `kept` counts for (keptBytes). */
  keptBytes: number;
  /** Chat lines each member has sent in this room (the `seq` of its last). */
  chatSent: Map<string, number>;
}

/** One report as kept for the operator's review: when, by which address (hash), and why. */
interface LoggedReport {
  at: number;
  by: string;
  reason: string;
}

/** `matched`'s place fields for `me`: the region both are in, and the partner's country only if it chose to show it. */
function regionFields(me: Session, other: Session): { region?: AreaRegion; country?: string } {
  const area = sharedArea(me, other);
  return {
    ...(area !== undefined ? { region: area as AreaRegion } : {}),
    ...(other.showCountry && other.country !== undefined ? { country: other.country } : {}),
  };
}

/** Blocks between two addresses are kept under one key, whichever blocked whom. */
const addrPair = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`);

/** Why an item was not kept: SIGNAL_BUFFER items, or one of the byte caps. */
type Refusal = 'count' | 'room' | 'process' | 'reserve';

const hashToken = (token: string): Buffer => createHash('sha256').update(token).digest();
const seconds = (ms: number): number => ms / 1000;

/** The `buffer-full` message for a refused signal or chat (the same text as the Redis store's, lua/rooms.ts fullMessage). */
function fullMessage(what: 'signal' | 'chat', why: Refusal, opts: StoreOptions): string {
  if (why === 'room') return `partner is away and what this room keeps would pass KEPT_BYTES_PER_ROOM (${opts.keptBytesPerRoom} bytes)`;
  if (why === 'process') return `what the server keeps for absent members would pass KEPT_BYTES_PER_PROCESS (${opts.keptBytesPerProcess} bytes)`;
  if (why === 'reserve') {
    return `what the server keeps for absent members would pass KEPT_BYTES_PER_PROCESS and KEPT_BYTES_RESERVED_TOTAL (${opts.keptBytesPerProcess + opts.keptBytesReservedTotal} bytes)`;
  }
  return what === 'chat'
    ? `partner is away and ${opts.signalBuffer} messages are waiting`
    : `partner has not joined and ${opts.signalBuffer} signals are waiting`;
}

const peerDisconnected = (reason: DisconnectReason): PeerDisconnectedEvent => ({
  event: 'peer-disconnected',
  message: DISCONNECT_MESSAGES[reason],
  reason,
});

const error = (code: ErrorCode, message: string, extra?: { until: number }): ServerMessage => ({
  event: 'error',
  code,
  message,
  ...extra,
});

export class MemoryStore implements Store {
  private readonly sessions = new Map<string, Session>();
  private readonly rooms = new Map<string, Room>();
  /** Waiting sessions per mode, in pool order, indexed by what narrows each (pool-index.ts): where an attempt looks. */
  private readonly pool: Record<Mode, PoolIndex> = { video: new PoolIndex(), text: new PoolIndex() };
  /** The place in pool order of the last session to enter it. */
  private poolSeq = 0;
  private readonly byAddr = new Map<string, Set<string>>();
  /** Token hash (hex) -> session id, for bearer-token look-ups. */
  private readonly byToken = new Map<string, string>();
  /** Reported address -> reporter address -> its report (one per reporter address). */
  private readonly reports = new Map<string, Map<string, ReportEntry>>();
  /** Reported address -> its reports (newest last) and its latest ban, for the operator (REPORT_WINDOW_MS). */
  private readonly reportLog = new Map<string, { entries: LoggedReport[]; bannedAt?: number }>();
  /** Registered sessions whose matching socket has not opened yet (register) -> when their registration runs out. */
  private readonly pending = new Map<string, number>();
  /** Address pair (addrPair) -> until when the two are never paired (blocks and reports). */
  private readonly addrBlocks = new Map<string, number>();
  /** Minute start -> pairings and reports in it. */
  private readonly minutes = new Map<number, { pairings: number; reports: number }>();
  /** Proof-of-work solutions used -> until when they are remembered. */
  private readonly spent = new Expiring<number>((until, now) => until <= now);
  /** `next`s of each address in its current minute (NEXT_RATE_PER_MIN). */
  private readonly nexts: RateWindows;
  /** Registrations of each address in its current minute (REGISTER_RATE_PER_MIN). */
  private readonly registrations: RateWindows;
  /** Each address's last ban (in force while `until` is ahead), until BAN_STRIKE_WINDOW_MS after it ended, as Redis's strike hash keeps it. */
  private readonly strikes = new Map<string, Omit<BanRecord, 'addr'>>();
  /** Reports since the last sweep of stale report entries. */
  private reportsSinceSweep = 0;
  /** Bytes kept for absent members in all (signals and chat), against keptBytesPerProcess. */
  private keptTotal = 0;
  private readonly random: () => number;
  /** Address -> its open sockets (admitSocket), absent at zero. */
  private readonly openSockets = new Map<string, number>();

  /** A per-address limit of this process (the embedded store is one process), of at most limiterKeysMax keys. */
  limiter(_name: string, points: number, durationSec: number): WindowLimiter {
    return new WindowLimiter(points, durationSec, Date.now, this.opts.limiterKeysMax);
  }

  constructor(private readonly opts: StoreOptions) {
    this.random = opts.random ?? Math.random;
    this.nexts = new RateWindows(opts.nextRatePerMin, opts.limiterKeysMax);
    this.registrations = new RateWindows(opts.registerRatePerMin, opts.limiterKeysMax);
  }

  // ------------------------------------------------------------ plumbing

  /** Deliver to a session's open socket on `channel`; false when there is none. */
  private send(fx: Effects, s: Session, channel: Channel, msg: ServerMessage): boolean {
    const conn = channel === 'matching' ? s.mConn : s.sConn;
    if (conn === undefined) return false;
    fx.deliver.push({ to: s.id, channel, conn, msg });
    return true;
  }

  private closeSocket(fx: Effects, s: Session, channel: Channel, code: number, reason: string): void {
    const conn = channel === 'matching' ? s.mConn : s.sConn;
    if (conn !== undefined) fx.close.push({ to: s.id, channel, conn, code, reason });
  }

  private owner(id: string, conn: string, channel: Channel): Session | undefined {
    const s = this.sessions.get(id);
    if (!s) return undefined;
    return (channel === 'matching' ? s.mConn : s.sConn) === conn ? s : undefined;
  }

  private authenticate(id: string, token: string): Session | undefined {
    const s = this.sessions.get(id);
    if (!s) return undefined;
    return timingSafeEqual(hashToken(token), s.tokenHash) ? s : undefined;
  }

  private partnerOf(s: Session): { room: Room; partner: Session } | undefined {
    const room = s.room === undefined ? undefined : this.rooms.get(s.room);
    if (!room) return undefined;
    const partner = this.sessions.get(room.members[0] === s.id ? room.members[1] : room.members[0]);
    return partner ? { room, partner } : undefined;
  }

  private deleteSession(s: Session): void {
    this.pending.delete(s.id);
    this.keptTotal -= s.keptChatBytes;
    this.sessions.delete(s.id);
    this.byToken.delete(s.tokenHash.toString('hex'));
    this.unpool(s);
    const ids = this.byAddr.get(s.addr);
    ids?.delete(s.id);
    if (ids?.size === 0) this.byAddr.delete(s.addr);
  }

  // ------------------------------------------------------------ pool and rooms

  private enterPool(fx: Effects, s: Session, now: number): void {
    s.state = 'waiting';
    s.enteredAt = now;
    s.waitingSince = now;
    this.unpool(s);
    s.poolSeq = ++this.poolSeq;
    this.pool[s.mode].add(s);
    this.send(fx, s, 'matching', { event: 'waiting' });
    if (narrows(s) && this.opts.interestTimeoutMs > 0) {
      fx.timers.push({ kind: 'interest', id: s.id, delayMs: this.opts.interestTimeoutMs });
    }
    this.tryPair(fx, s, now);
  }

  private unpool(s: Session): void {
    this.pool[s.mode].delete(s);
  }

  private tryPair(fx: Effects, s: Session, now: number): void {
    if (s.state !== 'waiting' || s.mConn === undefined) return;
    const eligible: Session[] = [];
    let looked = 0;
    const waiting = (id: string): Session | undefined => {
      const c = this.sessions.get(id);
      return c?.state === 'waiting' ? c : undefined;
    };
    const runOut = (id: string): boolean => now - (waiting(id)?.enteredAt ?? now) >= this.opts.interestTimeoutMs;
    const sources = this.pool[s.mode].sources(s, narrows(s) && !runOut(s.id));
    for (const id of inPoolOrder(sources, (id) => waiting(id)?.poolSeq, runOut)) {
      if (++looked > MAX_LOOKED_PER_ATTEMPT) break;
      if (id === s.id) continue;
      const c = this.sessions.get(id);
      if (!c || c.mConn === undefined || c.state !== 'waiting') continue;
      if (s.blocked.has(c.id) || c.blocked.has(s.id) || this.addressesBlocked(s.addr, c.addr, now)) continue;
      if (!mutuallyAccept(s, c, now, this.opts)) continue;
      eligible.push(c);
      if (eligible.length >= MAX_CANDIDATES_PER_ATTEMPT) break;
    }
    const partner = choosePartner(s, eligible, (c) => (s.cooldown.get(c.id) ?? 0) > now, now, this.opts, this.random);
    if (partner) this.openRoom(fx, s, partner, now);
  }

  private openRoom(fx: Effects, a: Session, b: Session, now: number): void {
    const code = newRoomCode();
    const initiator = this.random() < 0.5 ? a.id : b.id;
    const room: Room = {
      code,
      members: [a.id, b.id],
      initiator,
      mode: a.mode,
      common: commonInterests(a, b),
      openedAt: now,
      answerPassed: false,
      joined: new Set(),
      kept: new Map(),
      keptBytes: 0,
      chatSent: new Map(),
    };
    this.rooms.set(code, room);
    for (const [me, other] of [
      [a, b],
      [b, a],
    ] as const) {
      this.unpool(me);
      // Chat kept from an earlier room would only be shown out of place (as the Redis store drops it, lua/rooms.ts openRoom).
      this.dropKeptChat(me);
      me.state = 'matched';
      me.room = code;
      this.send(fx, me, 'matching', this.matchedEvent(room, me, other));
    }
    fx.paired.push({ room: code, a: a.id, b: b.id, mode: a.mode, waitedMs: [now - a.waitingSince, now - b.waitingSince] });
    this.tally(now, 'pairings');
  }

  /** Count a pairing or a report in its minute, for the console's chart; minutes older than the chart shows go. */
  private tally(now: number, what: 'pairings' | 'reports'): void {
    const minute = now - (now % MINUTE_MS);
    let m = this.minutes.get(minute);
    if (!m) {
      this.minutes.set(minute, (m = { pairings: 0, reports: 0 }));
      for (const k of this.minutes.keys()) if (k <= minute - ACTIVITY_MINUTES * MINUTE_MS) this.minutes.delete(k);
    }
    m[what] += 1;
  }

  private addressesBlocked(a: string, b: string, now: number): boolean {
    if (a === b || this.addrBlocks.size === 0) return false;
    const key = addrPair(a, b);
    const until = this.addrBlocks.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.addrBlocks.delete(key);
    return false;
  }

  /**
   * Keep two sessions apart for good, and (a block, `addresses`) their
   * addresses for BLOCK_MS, while fewer than ADDRESS_BLOCKS_MAX are held. Two
   * sessions from one address are kept apart only as sessions: blocking an
   * address from itself would keep everyone behind it from meeting each other.
   */
  private keepApart(s: Session, target: { id: string; addr: string }, now: number, addresses: boolean): void {
    this.addBlocked(s, target.id);
    const t = this.sessions.get(target.id);
    if (t) this.addBlocked(t, s.id);
    if (!addresses || s.addr === target.addr) return;
    // One BLOCK_MS for all, a renewed one moved to the back.
    dropEnded(this.addrBlocks, now);
    const key = addrPair(s.addr, target.addr);
    const renewed = this.addrBlocks.delete(key);
    if (!renewed && this.addrBlocks.size >= this.opts.addressBlocksMax) return;
    this.addrBlocks.set(key, now + this.opts.blockMs);
  }

  /** `id` joins the sessions `s` is never paired with; ended ones leave the set as it grows (BLOCKED_PRUNE_EVERY). */
  private addBlocked(s: Session, id: string): void {
    const before = s.blocked.size;
    s.blocked.add(id);
    if (s.blocked.size === before || s.blocked.size % BLOCKED_PRUNE_EVERY !== 0) return;
    for (const b of s.blocked) if (!this.sessions.has(b)) s.blocked.delete(b);
  }

  /** The partner, or the last one while a report or block of it is still allowed (REPAIR_COOLDOWN_MS). */
  private reportable(s: Session, now: number): { id: string; addr: string; room: string; openedAt: number; endedAt: number | undefined } | undefined {
    const pr = this.partnerOf(s);
    if (pr) return { id: pr.partner.id, addr: pr.partner.addr, room: pr.room.code, openedAt: pr.room.openedAt, endedAt: undefined };
    return s.lastPartner && now - s.lastPartner.endedAt < this.opts.repairCooldownMs ? s.lastPartner : undefined;
  }

  /** ice_servers is filled in per recipient by the edge, which holds the TURN secret. */
  private matchedEvent(room: Room, me: Session, other: Session, resumed?: boolean): ServerMessage {
    return {
      event: 'matched',
      room_code: room.code,
      initiator: room.initiator === me.id,
      peer: other.id,
      common_interests: room.common,
      ...regionFields(me, other),
      mode: room.mode,
      ice_servers: [],
      ...(resumed ? { resumed: true } : {}),
    };
  }

  /**
   * End `ender`'s room: the partner is told `reason` on its matching socket
   * (or on resumption) and on its signalling socket if joined, and is idle.
   * The ender's next state is the caller's to set.
   */
  private endRoom(fx: Effects, ender: Session, reason: DisconnectReason, now: number): void {
    const pr = this.partnerOf(ender);
    ender.room = undefined;
    ender.sJoined = undefined;
    if (!pr) return;
    const { room, partner } = pr;
    this.rooms.delete(room.code);
    // Signals still kept in it go with it.
    this.keptTotal -= room.keptBytes;
    partner.room = undefined;
    partner.state = 'idle';
    const news = peerDisconnected(reason);
    if (!this.send(fx, partner, 'matching', news)) partner.news = news;
    if (partner.sJoined === room.code) this.send(fx, partner, 'signalling', news);
    partner.sJoined = undefined;
    for (const [me, other] of [
      [ender, partner],
      [partner, ender],
    ] as const) {
      me.lastPartner = { id: other.id, addr: other.addr, endedAt: now, room: room.code, openedAt: room.openedAt };
      // Set again at the end, so the map runs oldest first: the pruning stops at the first entry
      // still running, and a session that skips through hundreds of partners pays once per entry.
      me.cooldown.delete(other.id);
      me.cooldown.set(other.id, now + this.opts.repairCooldownMs);
      dropEnded(me.cooldown, now);
    }
    fx.ended.push(reason);
  }

  /** The session is over: its room ends, its token opens nothing more. */
  private endSession(fx: Effects, s: Session, reason: DisconnectReason, now: number): void {
    if (s.state === 'matched') this.endRoom(fx, s, reason, now);
    this.send(fx, s, 'signalling', error('unauthorized', 'session ended'));
    this.closeSocket(fx, s, 'signalling', CloseCode.unauthorized, 'session ended');
    this.deleteSession(s);
  }

  // ------------------------------------------------------------ registration

  async register(n: NewSession, now: number, admission: Admission = {}): Promise<RegisterResult> {
    // One REGISTRATION_TTL_MS for all.
    dropEnded(this.pending, now);
    if (this.pending.size >= this.opts.pendingRegistrationsMax) {
      const [first] = this.pending.values();
      return { status: 'busy', retryMs: Math.max(1, (first ?? now) - now) };
    }
    const r = await this.newSession(n, now, admission);
    if (r.status !== 'ok') return r;
    this.pending.set(r.id, now + this.opts.registrationTtlMs);
    // Until its matching socket opens (or the registration runs out).
    r.effects.timers.push({ kind: 'registration', id: r.id, delayMs: this.opts.registrationTtlMs });
    return r;
  }

  /** Its socket opened at once: no registration timer to run out. */
  async registerAttached(n: NewSession, conn: string, now: number, admission: Admission = {}): Promise<RegisterResult> {
    const r = await this.newSession(n, now, admission);
    if (r.status !== 'ok') return r;
    const a = await this.attachMatching(r.id, n.token, conn, now);
    if (!a.ok) throw new Error('a session just registered refused its socket');
    return { ...r, effects: a.effects };
  }

  /** The checks of Admission, in its order, then the session. */
  private async newSession(n: NewSession, now: number, admission: Admission): Promise<RegisterResult> {
    const { proof, maxSockets } = admission;
    if (maxSockets !== undefined && !this.socketPlace(n.addr, maxSockets)) return { status: 'too-many-sockets' };
    // Sessions in their grace period hold no socket: counted here (MAX_SESSIONS_PER_ADDR).
    if ((this.byAddr.get(n.addr)?.size ?? 0) >= this.opts.maxSessionsPerAddr) return { status: 'too-many-sessions', retryMs: this.opts.graceMs };
    if (proof && this.isSpent(proof.key, now)) return { status: 'proof-spent' };
    const retryMs = this.registrations.count(n.addr, now);
    if (retryMs !== undefined) return { status: 'rate-limited', retryMs };
    if (proof) this.spent.at(now).set(proof.key, proof.untilMs);
    const until = await this.bannedUntil(n.addr, now);
    if (until !== undefined) return { status: 'banned', until };
    let id = n.name;
    if (id === undefined) do id = newId(); while (this.sessions.has(id));
    else if (this.sessions.has(id)) return { status: 'exists' };
    const s: Session = {
      id,
      mode: n.mode,
      interests: n.interests,
      lang: n.lang,
      ...(n.country !== undefined ? { country: n.country } : {}),
      ...(n.area !== undefined ? { area: n.area } : {}),
      ...(n.wants !== undefined ? { wants: n.wants } : {}),
      showCountry: n.showCountry === true,
      tokenHash: hashToken(n.token),
      addr: n.addr,
      state: 'registered',
      enteredAt: now,
      waitingSince: now,
      poolSeq: 0,
      keptChat: [],
      keptChatBytes: 0,
      cooldown: new Map(),
      blocked: new Set(),
    };
    this.sessions.set(id, s);
    this.byToken.set(s.tokenHash.toString('hex'), id);
    let ids = this.byAddr.get(n.addr);
    if (!ids) this.byAddr.set(n.addr, (ids = new Set()));
    ids.add(id);
    if (maxSockets !== undefined) this.holdSocket(n.addr);
    return { status: 'ok', id, effects: emptyEffects() };
  }

  async onRegistrationExpired(id: string, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.sessions.get(id);
    if (s && s.state === 'registered' && s.mConn === undefined) this.endSession(fx, s, 'timeout', now);
    return fx;
  }

  async sessionForToken(token: string): Promise<string | undefined> {
    return this.byToken.get(hashToken(token).toString('hex'));
  }

  async verify(id: string, token: string): Promise<boolean> {
    return this.authenticate(id, token) !== undefined;
  }

  async bannedUntil(addr: string, now: number): Promise<number | undefined> {
    const until = this.strikes.get(addr)?.until;
    return until !== undefined && until > now ? until : undefined;
  }

  // ------------------------------------------------------------ matching socket

  async attachMatching(id: string, token: string, conn: string, now: number, seen?: ChatSeen): Promise<AttachResult> {
    const s = this.authenticate(id, token);
    if (!s) return { ok: false, reason: 'unauthorized' };
    const fx = emptyEffects();
    this.closeSocket(fx, s, 'matching', CloseCode.replaced, 'replaced by a newer socket');
    s.mConn = conn;
    s.mGrace = undefined;
    switch (s.state) {
      case 'registered':
        this.pending.delete(s.id);
        this.enterPool(fx, s, now);
        break;
      case 'waiting':
        this.send(fx, s, 'matching', { event: 'waiting' });
        this.tryPair(fx, s, now);
        break;
      case 'matched': {
        const pr = this.partnerOf(s);
        if (pr) this.send(fx, s, 'matching', this.matchedEvent(pr.room, s, pr.partner, true));
        this.flushKeptChat(fx, s, seen);
        break;
      }
      case 'idle':
        this.flushKeptChat(fx, s, seen);
        if (s.news) this.send(fx, s, 'matching', s.news);
        s.news = undefined;
        this.send(fx, s, 'matching', { event: 'idle' });
        break;
    }
    return { ok: true, effects: fx };
  }

  /** Send the chat kept for s, but for the lines of the room `seen` names up to the one it names (the client has them). */
  private flushKeptChat(fx: Effects, s: Session, seen?: ChatSeen): void {
    const had = seen !== undefined && seen.room === s.keptChatRoom ? seen.seq : 0;
    for (const msg of s.keptChat) if ((msg.seq ?? Infinity) > had) this.send(fx, s, 'matching', msg);
    this.dropKeptChat(s);
  }

  /** Forget the chat kept for a session, and what it counted for. */
  private dropKeptChat(s: Session): void {
    s.keptChat = [];
    s.keptChatRoom = undefined;
    this.keptTotal -= s.keptChatBytes;
    s.keptChatBytes = 0;
  }

  async detachMatching(id: string, conn: string, left: boolean, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'matching');
    if (!s) return fx;
    s.mConn = undefined;
    if (left) {
      this.endSession(fx, s, 'left', now);
    } else {
      s.mGrace = conn;
      fx.timers.push({ kind: 'matching-grace', id, conn, delayMs: this.opts.graceMs });
    }
    return fx;
  }

  async onMatchingGraceExpired(id: string, conn: string, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.sessions.get(id);
    if (s && s.mGrace === conn && s.mConn === undefined) this.endSession(fx, s, 'timeout', now);
    return fx;
  }

  async next(id: string, conn: string, now: number): Promise<Effects | NextRefused> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'matching');
    if (!s) return fx;
    const retry = this.nexts.count(s.addr, now);
    if (retry !== undefined) return { limited: true, retryMs: retry };
    if (s.state === 'waiting') {
      this.send(fx, s, 'matching', { event: 'waiting' });
      return fx;
    }
    if (s.state === 'matched') this.endRoom(fx, s, 'skip', now);
    this.enterPool(fx, s, now);
    return fx;
  }

  async stop(id: string, conn: string, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'matching');
    if (!s) return fx;
    if (s.state === 'matched') this.endRoom(fx, s, 'left', now);
    this.unpool(s);
    s.state = 'idle';
    this.send(fx, s, 'matching', { event: 'idle' });
    return fx;
  }

  async chat(id: string, conn: string, message: string, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'matching');
    if (!s) return fx;
    const pr = this.partnerOf(s);
    if (!pr) {
      this.send(fx, s, 'matching', error('no-partner', 'not in a room'));
      return fx;
    }
    const seq = (pr.room.chatSent.get(s.id) ?? 0) + 1;
    pr.room.chatSent.set(s.id, seq);
    const msg: ChatEvent = { event: 'chat', sender: s.id, message, timestamp: seconds(now), seq };
    if (this.send(fx, pr.partner, 'matching', msg)) return fx;
    const refused = this.keepChat(pr.partner, msg);
    if (refused) this.send(fx, s, 'matching', error('buffer-full', fullMessage('chat', refused, this.opts)));
    return fx;
  }

  /** Keep a chat for a member whose matching socket is away; undefined when kept, else why not. */
  private keepChat(s: Session, msg: ChatEvent): Refusal | undefined {
    if (s.keptChat.length >= this.opts.signalBuffer) return 'count';
    const bytes = keptBytes(msg.message);
    const room = s.room === undefined ? undefined : this.rooms.get(s.room);
    const refused = this.overCap(room, bytes);
    if (refused) return refused;
    s.keptChat.push(msg);
    s.keptChatRoom = s.room;
    s.keptChatBytes += bytes;
    this.keptTotal += bytes;
    return undefined;
  }

  /** Would `bytes` more kept for a member of `room` pass a byte cap? The room counts its kept signals and its members' kept chat. */
  private overCap(room: Room | undefined, bytes: number): Refusal | undefined {
    if (room) {
      let used = room.keptBytes;
      for (const id of room.members) used += this.sessions.get(id)?.keptChatBytes ?? 0;
      if (used + bytes > this.opts.keptBytesPerRoom) return 'room';
      // A room's first bytes pass the total (KEPT_BYTES_RESERVED_PER_ROOM), up to a ceiling of their own.
      if (used + bytes <= this.opts.keptBytesReservedPerRoom) {
        return this.keptTotal + bytes > this.opts.keptBytesPerProcess + this.opts.keptBytesReservedTotal ? 'reserve' : undefined;
      }
    }
    if (this.keptTotal + bytes > this.opts.keptBytesPerProcess) return 'process';
    return undefined;
  }

  async typing(id: string, conn: string, typing: boolean): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'matching');
    const pr = s && this.partnerOf(s);
    // Typing is momentary: dropped, not kept, when the partner is away.
    if (s && pr) this.send(fx, pr.partner, 'matching', { event: 'typing', sender: s.id, typing });
    return fx;
  }

  async block(id: string, conn: string, now: number, addressWide: boolean): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'matching');
    if (!s) return fx;
    const target = this.reportable(s, now);
    if (!target) {
      this.send(fx, s, 'matching', error('no-partner', 'no current or recent partner to block'));
      return fx;
    }
    this.keepApart(s, target, now, addressWide);
    if (s.state === 'matched') {
      this.endRoom(fx, s, 'skip', now);
      this.enterPool(fx, s, now);
    }
    return fx;
  }

  async report(id: string, conn: string, reason: string | undefined, now: number, recorded: boolean): Promise<ReportResult> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'matching');
    if (!s) return { effects: fx, partner: false };
    const target = this.reportable(s, now);
    if (!target) {
      this.send(fx, s, 'matching', error('no-partner', 'no current or recent partner to report'));
      return { effects: fx, partner: false };
    }
    // A report keeps the two sessions apart; the reporter's other sessions may
    // still meet the reported (their reports count once per address).
    this.keepApart(s, target, now, false);
    if (!recorded) return { effects: fx, partner: true };
    this.logReport(target.addr, { at: now, by: s.addr, reason: reason ?? '' }, now);
    this.tally(now, 'reports');
    // Reports count per reporting address, so one person with many sessions
    // counts once; and only after a real conversation, from a reporter in good
    // standing (core/rules.ts), so that a few quick reports cannot aim a ban.
    const standing = inGoodStanding(this.reports.get(s.addr) ?? [], this.strike(s.addr, now), target.addr, now, this.opts);
    const counts = reportCounts(talkedMs(target.openedAt, target.endedAt, now), standing, this.opts);
    let reporters = this.reports.get(target.addr);
    if (!reporters) this.reports.set(target.addr, (reporters = new Map()));
    reporters.set(s.addr, keptReport(reporters.get(s.addr), { at: now, room: target.room, counts }, now, this.opts));
    for (const [addr, e] of reporters) if (now - e.at > this.opts.reportWindowMs) reporters.delete(addr);
    const counting = countingReports(reporters.values(), now, this.opts);
    if (counting >= this.opts.reportBanThreshold) {
      this.reports.delete(target.addr);
      this.ban(fx, target.addr, counting, now, undefined, '');
    }
    if (++this.reportsSinceSweep >= REPORT_SWEEP_EVERY) this.sweepReports(now);
    return { effects: fx, partner: true };
  }

  /** Forget what no rule needs any more: reports past REPORT_WINDOW_MS, strikes past BAN_STRIKE_WINDOW_MS. */
  private sweepReports(now: number): void {
    this.reportsSinceSweep = 0;
    for (const [target, reporters] of this.reports) {
      for (const [addr, e] of reporters) if (now - e.at > this.opts.reportWindowMs) reporters.delete(addr);
      if (reporters.size === 0) this.reports.delete(target);
    }
    for (const [addr, st] of this.strikes) if (now - st.until > this.opts.banStrikeWindowMs) this.strikes.delete(addr);
    this.pruneLog(now);
  }

  /**
   * Past BAN_STRIKES_MAX: the strikes past BAN_STRIKE_WINDOW_MS go, then, while
   * still past, those of bans already over, the first to end first (on a tie
   * the lower address, as a Redis sorted set orders them). The strikes of bans
   * in force are kept: lifting one is the only way they go early. One pass
   * over the strikes, only while the cap is reached (a ban is rare); a sort
   * only when more than one must go.
   */
  private forgetStrikes(now: number): void {
    type Ending = { addr: string; end: number };
    const over: Ending[] = [];
    for (const [addr, st] of this.strikes) {
      const end = st.until + this.opts.banStrikeWindowMs;
      if (end < now) this.strikes.delete(addr);
      else if (st.until <= now) over.push({ addr, end });
    }
    const excess = this.strikes.size - this.opts.banStrikesMax;
    if (excess <= 0 || over.length === 0) return;
    const before = (a: Ending, b: Ending): number => a.end - b.end || (a.addr < b.addr ? -1 : 1);
    const gone = excess === 1 ? [over.reduce((a, b) => (before(b, a) < 0 ? b : a))] : over.sort(before).slice(0, excess);
    for (const o of gone) this.strikes.delete(o.addr);
  }

  /** The last ban of an address while it is remembered (BAN_STRIKE_WINDOW_MS after its end), as Redis keeps it. */
  private strike(addr: string, now: number): Strike | undefined {
    const st = this.strikes.get(addr);
    if (st && now - st.until > this.opts.banStrikeWindowMs) this.strikes.delete(addr);
    else return st;
    return undefined;
  }

  /** A report kept for the operator: REPORT_LOG_PER_ADDR per address at most, none older than REPORT_WINDOW_MS. */
  private logReport(addr: string, r: LoggedReport, now: number): void {
    let log = this.reportLog.get(addr);
    // Moved to the end: the log is in the order of each address's latest report (listReports reads it from the end).
    if (log) this.reportLog.delete(addr);
    else log = { entries: [] };
    this.reportLog.set(addr, log);
    log.entries.push(r);
    // This address's old entries now; every address's at the sweep (sweepReports) and when listed.
    log.entries = log.entries.filter((e) => now - e.at <= this.opts.reportWindowMs).slice(-REPORT_LOG_PER_ADDR);
  }

  private pruneLog(now: number): void {
    for (const [addr, log] of this.reportLog) {
      log.entries = log.entries.filter((e) => now - e.at <= this.opts.reportWindowMs);
      if (log.entries.length === 0) this.reportLog.delete(addr);
    }
  }

  /**
   * Ban an address: strike one more than its last ban's within the strike
   * window, each lasting twice the one before, unless the operator chose the
   * length (`lengthMs`). A ban from reports never shortens the one in force
   * (a ban by hand of days is not cut to an hour): it then changes nothing.
   */
  private ban(fx: Effects, addr: string, reports: number, now: number, lengthMs: number | undefined, reason: string): number {
    const last = this.strike(addr, now);
    const strike = nextStrike(last, now, this.opts);
    let until = now + (lengthMs ?? banLengthMs(strike, this.opts));
    if (lengthMs === undefined && last && last.until >= until) {
      until = last.until;
    } else {
      this.strikes.set(addr, { until, strike, reports, reason, manual: lengthMs !== undefined });
      if (this.strikes.size > this.opts.banStrikesMax) this.forgetStrikes(now);
      const log = this.reportLog.get(addr);
      if (log) log.bannedAt = now;
    }
    // In id order, as the Redis store does (lua/admission.ts, ban): which of two sessions of the address sharing a room is told first does not depend on the store.
    for (const sid of [...(this.byAddr.get(addr) ?? [])].sort()) {
      const s = this.sessions.get(sid);
      if (!s) continue;
      if (s.state === 'matched') this.endRoom(fx, s, 'reported', now);
      const msg = error('banned', 'this address is banned', { until: Math.ceil(seconds(until)) });
      for (const channel of ['matching', 'signalling'] as const) {
        this.send(fx, s, channel, msg);
        this.closeSocket(fx, s, channel, CloseCode.banned, 'banned');
      }
      this.deleteSession(s);
    }
    return until;
  }

  async addBan(addr: string, durationMs: number, reason: string, now: number): Promise<{ until: number; effects: Effects }> {
    const fx = emptyEffects();
    const until = this.ban(fx, addr, 0, now, durationMs, reason);
    return { until, effects: fx };
  }

  async activity(now: number): Promise<ActivityMinute[]> {
    const current = now - (now % MINUTE_MS);
    const out: ActivityMinute[] = [];
    for (let i = ACTIVITY_MINUTES - 1; i >= 0; i--) {
      const minute = current - i * MINUTE_MS;
      const m = this.minutes.get(minute);
      out.push({ minute, pairings: m?.pairings ?? 0, reports: m?.reports ?? 0 });
    }
    return out;
  }

  /** Was this proof-of-work solution used already (Admission.proof)? */
  private isSpent(key: string, now: number): boolean {
    const held = this.spent.at(now).get(key);
    return held !== undefined && held > now;
  }

  async onInterestTimeout(id: string, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.sessions.get(id);
    if (!s || s.state !== 'waiting') return fx;
    // Timers may fire a millisecond early by the wall clock: until the narrowing has really run out, look again then.
    const left = s.enteredAt + this.opts.interestTimeoutMs - now;
    if (left > 0) fx.timers.push({ kind: 'interest', id, delayMs: left });
    else this.tryPair(fx, s, now);
    return fx;
  }

  // ------------------------------------------------------------ signalling socket

  async attachSignalling(id: string, token: string, conn: string): Promise<AttachResult> {
    const s = this.authenticate(id, token);
    if (!s) return { ok: false, reason: 'unauthorized' };
    const fx = emptyEffects();
    this.closeSocket(fx, s, 'signalling', CloseCode.replaced, 'replaced by a newer socket');
    s.sConn = conn;
    s.sGrace = undefined;
    s.sJoined = undefined;
    return { ok: true, effects: fx };
  }

  async detachSignalling(id: string, conn: string, left: boolean, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'signalling');
    if (!s) return fx;
    const joined = s.sJoined;
    s.sConn = undefined;
    s.sJoined = undefined;
    if (!left) {
      s.sGrace = conn;
      fx.timers.push({ kind: 'signalling-grace', id, conn, delayMs: this.opts.graceMs });
    } else if (joined !== undefined && joined === s.room) {
      this.leaveRoom(fx, s, 'left', now);
    }
    return fx;
  }

  async onSignallingGraceExpired(id: string, conn: string, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.sessions.get(id);
    if (!s || s.sGrace !== conn) return fx;
    s.sGrace = undefined;
    const room = s.room === undefined ? undefined : this.rooms.get(s.room);
    if (room?.joined.has(s.id)) this.leaveRoom(fx, s, 'timeout', now);
    return fx;
  }

  /** The member leaves its room from signalling: partner told, member idle. */
  private leaveRoom(fx: Effects, s: Session, reason: DisconnectReason, now: number): void {
    this.endRoom(fx, s, reason, now);
    s.state = 'idle';
    this.send(fx, s, 'matching', { event: 'idle' });
  }

  /** The room `code` if `s` is a member, else an `invalid-room` error for it. */
  private memberRoom(fx: Effects, s: Session, code: string): Room | undefined {
    const room = this.rooms.get(code);
    if (room && s.room === code) return room;
    this.send(fx, s, 'signalling', error('invalid-room', 'not a member of this room'));
    return undefined;
  }

  /** The room `code` if `s` is a member whose socket has joined it; else the error for why not. */
  private joinedRoom(fx: Effects, s: Session, code: string): Room | undefined {
    const room = this.memberRoom(fx, s, code);
    if (!room || s.sJoined === code) return room;
    this.send(fx, s, 'signalling', error('bad-request', 'join the room first'));
    return undefined;
  }

  async join(id: string, conn: string, code: string): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'signalling');
    const room = s && this.memberRoom(fx, s, code);
    if (!s || !room) return fx;
    const peerId = room.members[0] === s.id ? room.members[1] : room.members[0];
    const firstJoin = !room.joined.has(s.id);
    room.joined.add(s.id);
    s.sJoined = code;
    this.send(fx, s, 'signalling', {
      event: 'verified',
      room_code: code,
      role: room.initiator === s.id ? 'initiator' : 'responder',
      peer: peerId,
      peer_joined: room.joined.has(peerId),
    });
    const peer = this.sessions.get(peerId);
    if (firstJoin && peer?.sJoined === code) this.send(fx, peer, 'signalling', { event: 'peer-joined', room_code: code, peer: s.id });
    for (const sig of room.kept.get(s.id) ?? []) {
      this.sendSignal(fx, s, sig);
      room.keptBytes -= keptBytes(sig.data);
      this.keptTotal -= keptBytes(sig.data);
    }
    room.kept.delete(s.id);
    return fx;
  }

  async signal(
    id: string,
    conn: string,
    code: string,
    type: SignalType,
    data: string,
  ): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'signalling');
    const room = s && this.joinedRoom(fx, s, code);
    if (!s || !room) return fx;
    if (!room.answerPassed) {
      const isInitiator = room.initiator === s.id;
      if ((type === 'offer' && !isInitiator) || (type === 'answer' && isInitiator)) {
        const expected = type === 'offer' ? 'initiator' : 'responder';
        this.send(fx, s, 'signalling', error('role-mismatch', `the first ${type} must come from the ${expected}`));
        return fx;
      }
      if (type === 'answer') room.answerPassed = true;
    }
    const peer = this.sessions.get(room.members[0] === s.id ? room.members[1] : room.members[0]);
    if (!peer) return fx;
    // room.code, not the client's copy of it: every signal kept in the room shares the one string.
    const sig: SignalText = { room_code: room.code, from: s.id, type, data };
    if (peer.sJoined === code && this.sendSignal(fx, peer, sig)) return fx;
    const refused = this.keepSignal(room, peer.id, sig);
    if (refused) this.send(fx, s, 'signalling', error('buffer-full', fullMessage('signal', refused, this.opts)));
    return fx;
  }

  /** Deliver a signal, as text, to a session's open signalling socket; false when there is none. */
  private sendSignal(fx: Effects, s: Session, signal: SignalText): boolean {
    if (s.sConn === undefined) return false;
    fx.deliver.push({ to: s.id, channel: 'signalling', conn: s.sConn, signal });
    return true;
  }

  /** Keep a signal (its text) for a member whose socket has not joined; undefined when kept, else why not. */
  private keepSignal(room: Room, to: string, sig: SignalText): Refusal | undefined {
    const kept = room.kept.get(to);
    if (kept && kept.length >= this.opts.signalBuffer) return 'count';
    const bytes = keptBytes(sig.data);
    const refused = this.overCap(room, bytes);
    if (refused) return refused;
    if (kept) kept.push(sig);
    else room.kept.set(to, [sig]);
    room.keptBytes += bytes;
    this.keptTotal += bytes;
    return undefined;
  }

  async leave(id: string, conn: string, code: string, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.owner(id, conn, 'signalling');
    const room = s && this.joinedRoom(fx, s, code);
    if (!s || !room) return fx;
    this.leaveRoom(fx, s, 'left', now);
    return fx;
  }

  // ------------------------------------------------------------ rules broken

  async expel(id: string, token: string, channel: Channel, conn: string, now: number): Promise<Effects> {
    const fx = emptyEffects();
    const s = this.authenticate(id, token);
    if (!s) return fx;
    // The socket that broke the rule is closing already: nothing more goes to it.
    if (channel === 'matching' && s.mConn === conn) s.mConn = undefined;
    if (channel === 'signalling' && s.sConn === conn) s.sConn = undefined;
    this.send(fx, s, 'matching', error('unauthorized', 'session ended'));
    this.closeSocket(fx, s, 'matching', CloseCode.unauthorized, 'session ended');
    this.endSession(fx, s, 'left', now);
    return fx;
  }

  // ------------------------------------------------------------ upkeep

  async undelivered(d: Delivery): Promise<Effects> {
    const s = this.sessions.get(d.to);
    if (!s) return emptyEffects();
    if (d.msg?.event === 'chat' && d.channel === 'matching') this.keepChat(s, d.msg);
    if (d.signal && d.channel === 'signalling') {
      const room = this.rooms.get(d.signal.room_code);
      if (room) this.keepSignal(room, s.id, d.signal);
    }
    return emptyEffects();
  }

  subscribe(): void {
    // One process: every socket is local, nothing ever arrives from elsewhere.
  }

  async shutdown(): Promise<Effects> {
    // Sessions of the embedded store end with the process.
    return emptyEffects();
  }

  async listBans(now: number): Promise<BanRecord[]> {
    return [...this.strikes].filter(([, b]) => b.until > now).map(([addr, b]) => ({ addr, ...b }));
  }

  async liftBan(addr: string): Promise<boolean> {
    return this.strikes.delete(addr);
  }

  /**
   * The `limit` addresses reported last, latest first. Only those are read:
   * the log is in the order of each address's latest report, so they are
   * its last ones (with REPORTS_KEPT_MAX reports kept, summarising every
   * address and sorting took some 250 ms a call, every 5 s while the console
   * was open). What has passed REPORT_WINDOW_MS is left out here and dropped
   * by the sweep (sweepReports).
   */
  async listReports(now: number, limit: number): Promise<ReportSummary[]> {
    const out: ReportSummary[] = [];
    const addrs = [...this.reportLog.keys()];
    for (let k = addrs.length - 1; k >= 0 && out.length < limit; k--) {
      const addr = addrs[k]!;
      const log = this.reportLog.get(addr)!;
      const entries = log.entries.filter((e) => now - e.at <= this.opts.reportWindowMs);
      // Those before it were reported earlier still: past the window too.
      if (entries.length === 0) break;
      const reporters = this.reports.get(addr);
      const first = entries[0]?.at ?? now;
      out.push({
        addr,
        reporters: new Set(entries.map((e) => e.by)).size,
        counting: reporters ? countingReports(reporters.values(), now, this.opts) : 0,
        last: entries[entries.length - 1]?.at ?? now,
        first,
        reasons: entries.map((e) => ({ at: e.at, reason: e.reason })).reverse(),
        banned: log.bannedAt !== undefined && log.bannedAt >= first,
      });
    }
    return out;
  }

  async presence(token: string): Promise<{ id: string; open: boolean } | undefined> {
    const id = this.byToken.get(hashToken(token).toString('hex'));
    const s = id === undefined ? undefined : this.sessions.get(id);
    return s ? { id: s.id, open: s.mConn !== undefined } : undefined;
  }

  async roomOf(id: string, token: string): Promise<string | undefined> {
    const s = this.authenticate(id, token);
    return s?.state === 'matched' ? s.room : undefined;
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async stats(): Promise<StoreStats> {
    const waiting = (mode: Mode): number => {
      let n = 0;
      for (const id of this.pool[mode].all) if (this.sessions.get(id)?.mConn !== undefined) n++;
      return n;
    };
    return {
      waiting: { video: waiting('video'), text: waiting('text') },
      rooms: this.rooms.size,
      sessions: this.sessions.size,
      online: [...this.sessions.values()].filter((s) => s.mConn !== undefined).length,
      keptBytes: this.keptTotal,
    };
  }

  async close(): Promise<void> {
    this.sessions.clear();
    this.rooms.clear();
    this.keptTotal = 0;
  }

  async admitSocket(addr: string, max: number): Promise<boolean> {
    if (!this.socketPlace(addr, max)) return false;
    this.holdSocket(addr);
    return true;
  }

  /** Is there a place for one more socket from `addr`, at most `max` open? */
  private socketPlace(addr: string, max: number): boolean {
    return (this.openSockets.get(addr) ?? 0) < max;
  }

  private holdSocket(addr: string): void {
    this.openSockets.set(addr, (this.openSockets.get(addr) ?? 0) + 1);
  }

  async releaseSocket(addr: string): Promise<void> {
    const n = this.openSockets.get(addr);
    if (n === undefined) return;
    // Deleted at zero: an address that has gone costs nothing.
    if (n <= 1) this.openSockets.delete(addr);
    else this.openSockets.set(addr, n - 1);
  }
}
