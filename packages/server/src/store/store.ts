// The Store: where shared session state lives. Every method is one atomic
// transition of the contract's lifecycle (PROTOCOL.md, "Lifecycle and edge
// cases") and returns the effects it caused, so the caller only carries them
// out. The memory store does each transition in one synchronous step; a
// networked store must make each one atomic on its side (e.g. one script per
// transition), which is why the interface is coarse rather than get/set.
import type { DisconnectReason, Mode, ServerMessage, SignalType } from '@dyad/protocol';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { PairingPolicy, ReportPolicy } from '../core/rules.js';

export type Channel = 'matching' | 'signalling';
export type SessionState = 'registered' | 'waiting' | 'matched' | 'idle';

/**
 * A `signal` on its way, with `data` as the JSON text the sender's edge made
 * of it (core/frames.ts): relayed, kept and delivered as text, never parsed
 * again (PROTOCOL.md, "Signal data").
 */
export interface SignalText {
  room_code: string;
  from: string;
  type: SignalType;
  /** JSON text of the signal's `data`, checked by the protocol schema and encoded once. */
  data: string;
}

/**
 * Send `msg` (or a `signal`, as text) to the socket `conn` of session `to`;
 * only issued for sockets the store saw connected.
 */
export type Delivery = { to: string; channel: Channel; conn: string } & (
  | { msg: ServerMessage; signal?: undefined }
  | { signal: SignalText; msg?: undefined }
);

/** Close a socket (after its deliveries). */
export interface CloseOrder {
  to: string;
  channel: Channel;
  conn: string;
  code: number;
  reason: string;
}

export type TimerKind = 'interest' | 'matching-grace' | 'signalling-grace' | 'registration';

/** Call the store back after `delayMs` (the matching `on*` method, with `conn` where given). */
export interface TimerOrder {
  kind: TimerKind;
  id: string;
  conn?: string;
  delayMs: number;
}

export interface Pairing {
  room: string;
  a: string;
  b: string;
  mode: Mode;
  /** Milliseconds each member waited in the pool, for metrics. */
  waitedMs: [number, number];
}

export interface Effects {
  deliver: Delivery[];
  close: CloseOrder[];
  timers: TimerOrder[];
  paired: Pairing[];
  ended: DisconnectReason[];
}

export const emptyEffects = (): Effects => ({ deliver: [], close: [], timers: [], paired: [], ended: [] });

export interface NewSession {
  /** Requested id (the `name`); absent: the store makes one. */
  name?: string;
  mode: Mode;
  /** Normalized (trimmed, lower-cased, unique). */
  interests: string[];
  /** Normalized (lower-cased). */
  lang?: string;
  /** Country of the client address (ISO 3166-1 alpha-2), when known (issue 17); the address itself never comes here. */
  country?: string;
  /** The region that country lies in. */
  area?: string;
  /** The place preferred while narrowing: a country code or a region (core/rules.ts Candidate.wants). */
  wants?: string;
  /** Tell the partner `country` on `matched`. */
  showCountry?: boolean;
  token: string;
  /** Keyed hash of the client address (never the address itself). */
  addr: string;
}

export type RegisterResult =
  | { status: 'ok'; id: string; effects: Effects }
  | { status: 'exists' }
  | { status: 'banned'; until: number }
  /** Past REGISTER_RATE_PER_MIN of the address: allowed again in retryMs. */
  | { status: 'rate-limited'; retryMs: number }
  /** The proof of work it carried was spent already (a replay). */
  | { status: 'proof-spent' }
  /** A one-trip start from an address with `maxSockets` sockets open already. */
  | { status: 'too-many-sockets' }
  /** The address has StoreOptions.maxSessionsPerAddr live sessions already; retryMs: a hint (GRACE_MS). */
  | { status: 'too-many-sessions'; retryMs: number }
  /** PENDING_REGISTRATIONS_MAX registrations wait for their socket already (register only): one ends within retryMs. */
  | { status: 'busy'; retryMs: number };

/**
 * What a registration is checked against in the same step as it is made, so
 * that a shared store is asked once, in this order: the address's open
 * sockets (a one-trip start's), then whether the proof of work was used
 * already, then REGISTER_RATE_PER_MIN (StoreOptions; every registration
 * counts, whatever follows), then the proof is spent, then a ban. Nothing past
 * a refusal happens: a refused start spends no proof and takes no socket
 * place, and a replayed proof counts nothing for its address (one solution
 * sent from many addresses would otherwise leave a count for each).
 */
export interface Admission {
  /** A verified proof-of-work solution (its challenge's signature): refused when used already, else marked used until `untilMs` (with Redis, for every process). */
  proof?: { key: string; untilMs: number };
  /**
   * A one-trip start: its socket counts against MAX_SOCKETS_PER_ADDR as
   * admitSocket would count it, and when registered stays counted until
   * releaseSocket (once, when the socket closes).
   */
  maxSockets?: number;
}

/** What a resuming client has (`chat_seen`): the `seq` of the last chat line from its partner in `room`. */
export interface ChatSeen {
  room: string;
  seq: number;
}

/** Outcome of an attach: refused, or accepted with what to send/close. */
export type AttachResult = { ok: false; reason: 'unauthorized' } | { ok: true; effects: Effects };

export type SignalResult = Effects;

/** A `next` past NEXT_RATE_PER_MIN of its address: nothing changed; allowed again in `retryMs`. */
export interface NextRefused {
  limited: true;
  retryMs: number;
}

export const isRefused = (r: Effects | NextRefused): r is NextRefused => 'limited' in r;

/** A ban in force, for the operator's review. */
export interface BanRecord {
  /** Keyed hash of the address. */
  addr: string;
  /** End of the ban, Unix ms. */
  until: number;
  /** 1 for a first ban; each strike within BAN_STRIKE_WINDOW_MS doubles the length. */
  strike: number;
  /** Counting reports (distinct reporter addresses and rooms) that made it. */
  reports: number;
  /** The operator's reason for a ban made by hand ('' for a ban made by reports). */
  reason: string;
  /** Made by hand (POST /admin/bans), not by reports. */
  manual: boolean;
}

/** Recent reports of one address, for the operator's review. */
export interface ReportSummary {
  /** Keyed hash of the reported address. */
  addr: string;
  /** Distinct reporter addresses within REPORT_WINDOW_MS. */
  reporters: number;
  /** Of those, the ones that count toward a ban. */
  counting: number;
  /** Time of the latest report, Unix ms. */
  last: number;
  /** Time of the earliest report still kept, Unix ms. */
  first: number;
  /** The reasons given ('' for none), newest first, at most REPORT_LOG_PER_ADDR. */
  reasons: { at: number; reason: string }[];
  /** A ban of the address (by reports or by hand) came after its first report still kept. */
  banned: boolean;
}

/** Most reports kept per reported address for the operator's review (the newest). */
export const REPORT_LOG_PER_ADDR = 50;

/** Pairings and reports of one minute, for the moderation console's chart. */
export interface ActivityMinute {
  /** Start of the minute, Unix ms. */
  minute: number;
  pairings: number;
  reports: number;
}

/** Minutes of activity kept (the console's chart shows the last hour). */
export const ACTIVITY_MINUTES = 60;
export const MINUTE_MS = 60_000;

export interface StoreStats {
  waiting: Record<Mode, number>;
  rooms: number;
  sessions: number;
  /** Sessions whose matching socket is open now. */
  online: number;
  /** Bytes kept for absent members, as counted against KEPT_BYTES_PER_PROCESS (with Redis: by every process together). */
  keptBytes: number;
}

/** What a report did: `partner` when there was a current or recent partner to report (else the socket is told no-partner, and nothing was kept or counted). */
export interface ReportResult {
  effects: Effects;
  partner: boolean;
}

export interface Store {
  /** Create a session; it waits for its matching socket for REGISTRATION_TTL_MS. */
  register(s: NewSession, now: number, admission?: Admission): Promise<RegisterResult>;
  /**
   * A one-trip start: register, and open its matching socket `conn` in the same
   * step (what attachMatching would do, its effects included; no registration
   * timer, the socket being open), so that a shared store is asked once. The
   * socket must be able to take what it is sent (the edge holds it until the
   * upgrade is done).
   */
  registerAttached(s: NewSession, conn: string, now: number, admission?: Admission): Promise<RegisterResult>;
  /** When the registration TTL runs out: drop the session if it never connected. */
  onRegistrationExpired(id: string, now: number): Promise<Effects>;
  /** The live session that `token` belongs to. */
  sessionForToken(token: string): Promise<string | undefined>;
  /** Does `token` open session `id`? (Checked before accepting an upgrade.) */
  verify(id: string, token: string): Promise<boolean>;
  /** Is the address banned? Returns the end of the ban (Unix ms) or undefined. */
  bannedUntil(addr: string, now: number): Promise<number | undefined>;

  /**
   * Open (or replace) the matching socket `conn`; first open enters the pool.
   * A resumption that names the last chat line it has (`seen`) is not sent the
   * kept lines of that room up to it again.
   */
  attachMatching(id: string, token: string, conn: string, now: number, seen?: ChatSeen): Promise<AttachResult>;
  /** The matching socket `conn` ended; `left` for a clean close (1000/no code), else its grace starts. */
  detachMatching(id: string, conn: string, left: boolean, now: number): Promise<Effects>;
  onMatchingGraceExpired(id: string, conn: string, now: number): Promise<Effects>;

  /**
   * Leave the room (a skip) or the idle state for the pool. Each `next` counts
   * toward NEXT_RATE_PER_MIN of the session's address, on every process alike
   * (core/rules.ts countRate); past it nothing changes and it is refused.
   */
  next(id: string, conn: string, now: number): Promise<Effects | NextRefused>;
  stop(id: string, conn: string, now: number): Promise<Effects>;
  chat(id: string, conn: string, message: string, now: number): Promise<Effects>;
  typing(id: string, conn: string, typing: boolean): Promise<Effects>;
  /**
   * Report the partner (or the last one): keeps the two sessions apart and,
   * when `recorded` (the edge leaves it out past REPORTS_PER_ADDR), counts
   * toward a ban and is kept with its reason for REPORT_WINDOW_MS.
   */
  report(id: string, conn: string, reason: string | undefined, now: number, recorded: boolean): Promise<ReportResult>;
  /**
   * End the room as `next` does (the partner is told `skip`) and never pair
   * the two sessions again; with `addressWide`, neither their addresses, when
   * they differ, for BLOCK_MS (the edge leaves it out past BLOCKS_PER_ADDR).
   * Waiting or idle, it blocks the last partner (within REPAIR_COOLDOWN_MS)
   * and changes nothing else; without one, `no-partner`.
   */
  block(id: string, conn: string, now: number, addressWide: boolean): Promise<Effects>;
  /** A waiting session's interest/lang narrowing has run out: try again with anyone. */
  onInterestTimeout(id: string, now: number): Promise<Effects>;

  attachSignalling(id: string, token: string, conn: string, now: number): Promise<AttachResult>;
  detachSignalling(id: string, conn: string, left: boolean, now: number): Promise<Effects>;
  onSignallingGraceExpired(id: string, conn: string, now: number): Promise<Effects>;
  join(id: string, conn: string, room: string, now: number): Promise<Effects>;
  /** Relay a signal; `data` is its JSON text (core/frames.ts, encodeSignalData), kept as such for an absent member. */
  signal(id: string, conn: string, room: string, type: SignalType, data: string, now: number): Promise<SignalResult>;
  leave(id: string, conn: string, room: string, now: number): Promise<Effects>;

  /**
   * A socket of a session broke a rule that ends the session (a message
   * flood): the session that `token` opens ends as a clean leave (its partner
   * gets `left`, the token opens nothing more), whichever of its sockets is
   * open now; its other socket gets `unauthorized` and close 4001. `conn` on
   * `channel` is the socket that broke the rule, already closing.
   */
  expel(id: string, token: string, channel: Channel, conn: string, now: number): Promise<Effects>;

  /** A delivery could not be written (the socket closed under it): keep it as for an absent member. */
  undelivered(d: Delivery, now: number): Promise<Effects>;

  /**
   * Effects addressed to this process by another one (a networked store
   * delivers them here; the memory store never calls it). Set once by the hub.
   */
  subscribe(handler: (fx: Effects) => Promise<void>): void;

  /** Release everything this process holds (sessions end with it on the memory store). */
  shutdown(now: number): Promise<Effects>;
  /** Bans in force: address hash, end (Unix ms), strike number and the counting reports that made it. */
  listBans(now: number): Promise<BanRecord[]>;
  /**
   * Ban an address by hand for `durationMs` (the operator's choice, not the
   * strike ladder's), whatever it had: its sessions get `banned` and close
   * 4003 at once. Counts as a strike for a later ban by reports.
   */
  addBan(addr: string, durationMs: number, reason: string, now: number): Promise<{ until: number; effects: Effects }>;
  /** Pairings and reports per minute over the last ACTIVITY_MINUTES minutes, oldest first (with Redis: of every process). */
  activity(now: number): Promise<ActivityMinute[]>;
  /** Lift a ban and forget its strikes (the operator judged it wrong); false when there was none. */
  liftBan(addr: string): Promise<boolean>;
  ping(): Promise<boolean>;
  stats(): Promise<StoreStats>;
  close(): Promise<void>;
  /** Reported addresses with reports within REPORT_WINDOW_MS, most recently reported first, at most `limit`. */
  listReports(now: number, limit: number): Promise<ReportSummary[]>;
  /** The live session of `token`, and whether its matching socket is open now. */
  presence(token: string): Promise<{ id: string; open: boolean } | undefined>;
  /**
   * The code of the room session `id` is in, if `token` opens it: for an edge
   * whose client names its room by an alias of its own (the legacy protocols,
   * docs/LEGACY.md) and whose matching socket may be on another process.
   */
  roomOf(id: string, token: string): Promise<string | undefined>;

  /**
   * Count one more open socket (either service) from `addr`, or refuse when
   * `max` are open already: open sockets, not a window, so a place is taken
   * until releaseSocket gives it back. With several processes the count is
   * theirs together, and what a process held goes when it is found dead.
   */
  admitSocket(addr: string, max: number): Promise<boolean>;
  /** A socket counted by admitSocket closed (call exactly once per admitted socket). */
  releaseSocket(addr: string): Promise<void>;
  /** The per-address limit of one name (Limiter), of at most limiterKeysMax keys: this process's, or shared by every process on a shared store. */
  limiter(name: string, points: number, durationSec: number): Limiter;
}

/**
 * A per-key counter of `points` in fixed windows, for the edges' per-address
 * limits: the part of rate-limiter-flexible's limiters Dyad uses (consume
 * rejects with a RateLimiterRes past the points). Each store makes its own
 * (MemoryStore.limiter, RedisStore.limiter: shared by every process).
 */
export type Limiter = Pick<RateLimiterAbstract, 'consume' | 'reward' | 'get'> & {
  /** Keys held in this process, where it holds them (the embedded store's); shown in dyad_address_entries. */
  readonly size?: number;
};

/** Makes the limiter of one name: `points` per key in windows of `durationSec`. */
export type LimiterFactory = (name: string, points: number, durationSec: number) => Limiter;

/** What every store is made with: the lifecycle and pairing settings (config.ts names them). */
export interface StoreOptions extends PairingPolicy, ReportPolicy {
  graceMs: number;
  registrationTtlMs: number;
  repairCooldownMs: number;
  signalBuffer: number;
  /** Bytes kept for the absent members of one room (signals and chat), item by item as core/frames.ts keptBytes counts. */
  keptBytesPerRoom: number;
  /** Bytes kept for absent members in the whole store. */
  keptBytesPerProcess: number;
  /** The first bytes kept in each room that keptBytesPerProcess does not refuse (KEPT_BYTES_RESERVED_PER_ROOM). */
  keptBytesReservedPerRoom: number;
  /** What those first bytes may keep past keptBytesPerProcess, in the whole store (KEPT_BYTES_RESERVED_TOTAL). */
  keptBytesReservedTotal: number;
  /** How long a block (or a report) keeps two sessions, and their addresses, apart. */
  blockMs: number;
  /** Blocks between two addresses held at once in the whole store; past it a block keeps only the sessions apart (ADDRESS_BLOCKS_MAX). */
  addressBlocksMax: number;
  /** Strikes (an address's last ban, kept BAN_STRIKE_WINDOW_MS after it ends) held in the whole store; past it those of bans over go, the first to end first (BAN_STRIKES_MAX). */
  banStrikesMax: number;
  /** Keys each per-address limit (limiter) holds at once; past it the key whose window ends first is forgotten (LIMITER_KEYS_MAX). */
  limiterKeysMax: number;
  /** Live sessions per address, those in their grace period included (MAX_SESSIONS_PER_ADDR). */
  maxSessionsPerAddr: number;
  /** Registrations (register, not registerAttached) waiting for their matching socket at once in the whole store (PENDING_REGISTRATIONS_MAX). */
  pendingRegistrationsMax: number;
  /** `next`s per address in a minute (NEXT_RATE_PER_MIN), counted by the store so that every process shares the count. */
  nextRatePerMin: number;
  /** Registrations per address in a minute (REGISTER_RATE_PER_MIN), counted by register and registerAttached: every process, and every protocol, shares the count. */
  registerRatePerMin: number;
  random?: () => number;
}
