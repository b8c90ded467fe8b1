// Every setting of the process, read once from the environment at start. A
// value that cannot be parsed stops the process with an error naming it
// (PROTOCOL.md, "Services, ports, configuration").
import { fileURLToPath } from 'node:url';

export type Role = 'matching' | 'signalling' | 'web';
const ROLE_NAMES: ReadonlySet<string> = new Set<Role>(['matching', 'signalling', 'web']);

export interface Settings {
  /** Address every listener binds. @default '127.0.0.1' */
  host: string;
  /** @default 8000 */ matchingPort: number;
  /** @default 8001 */ signallingPort: number;
  /** @default 8080 */ webPort: number;
  /** Roles this process runs. @default ['matching','signalling','web'] */
  roles: Role[];
  /** Unset: the embedded in-memory store. */
  redisUrl: string | undefined;
  /** Prefix of every Redis key (processes sharing a Redis and a prefix form one service). @default 'dyad:' */
  redisPrefix: string;
  /** How long one Redis call may take before it fails with a clear error. @default 2000 */
  redisCallTimeoutMs: number;
  /** Origins accepted on upgrades and CORS; empty means "same host as the request, any port". */
  allowedOrigins: string[];
  turnUrls: string[];
  turnSecret: string | undefined;
  /** Lifetime of TURN credentials, seconds. @default 3600 */
  turnTtlSec: number;
  stunUrls: string[];
  /** Public URLs handed to the web client in /config.json; default: the request's host with our ports. */
  publicMatchingUrl: string | undefined;
  publicSignallingUrl: string | undefined;
  /** Static files of the web client. @default packages/web/dist */
  webRoot: string;

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
  /** Signals, and separately chat messages, kept per side for an absent member. @default 64 */
  signalBuffer: number;
  /** A session waiting longer than this is paired before newer ones. @default 10_000 */
  fairWaitMs: number;

  /** Frames per second per socket before each further frame gets `rate-limited`. @default 100 */
  messageRatePerSec: number;
  /** Frames within one second after which the socket is closed with 1008. @default 300 */
  messageFloodPerSec: number;
  /** Registrations (POST /register or one-trip start) per client address per minute. @default 30 */
  registerRatePerMin: number;
  /**
   * WebSockets open at once per client address (both services, and with Redis
   * every process, together): a place is taken on the upgrade and given back
   * when its connection closes; no window. @default 32
   */
  maxSocketsPerAddr: number;
  /** `next` messages per client address per minute. @default 120 */
  nextRatePerMin: number;
  /** Bearer token of the admin API; unset: the admin API is off. */
  adminToken: string | undefined;
  /** Interval of WebSocket pings; a socket that misses one is dropped (its grace period starts). @default 25_000 */
  pingIntervalMs: number;
  /** Distinct reporters within REPORT_WINDOW_MS that ban an address. @default 3 */
  reportBanThreshold: number;
  /** @default 3_600_000 */ reportWindowMs: number;
  /** How long a ban lasts. @default 86_400_000 */
  banDurationMs: number;
  /** Believe X-Forwarded-For for the client address. @default false */
  trustProxy: boolean;
  /** Time allowed for a graceful stop before the process exits anyway. @default 4_000 */
  shutdownTimeoutMs: number;
  /** HTTP header and request timeouts (slow-loris protection). @default 10_000 */
  httpTimeoutMs: number;
  /** @default 'info' */
  logLevel: string;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, detail: string) {
    super(`${variable}: ${detail}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

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

/** A guessable admin token would be worse than none. */
const MIN_ADMIN_TOKEN_CHARS = 16;
const adminToken = (env: Env): string | undefined => {
  const raw = env.ADMIN_TOKEN?.trim();
  if (!raw) return undefined;
  if (raw.length < MIN_ADMIN_TOKEN_CHARS) throw new ConfigError('ADMIN_TOKEN', `must be at least ${MIN_ADMIN_TOKEN_CHARS} characters`);
  return raw;
};

const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../web/dist', import.meta.url));
const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export function loadSettings(env: Env = process.env): Settings {
  const roles = parseList(env.ROLES ?? 'matching,signalling,web');
  for (const r of roles) if (!ROLE_NAMES.has(r)) throw new ConfigError('ROLES', `unknown role ${JSON.stringify(r)}`);
  if (roles.length === 0) throw new ConfigError('ROLES', 'no role given');

  const allowedOrigins = parseList(env.ALLOWED_ORIGINS);
  for (const o of allowedOrigins) {
    if (o === '*') throw new ConfigError('ALLOWED_ORIGINS', '"*" is not accepted: list the origins');
    try {
      new URL(o);
    } catch {
      throw new ConfigError('ALLOWED_ORIGINS', `not an origin: ${JSON.stringify(o)}`);
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

  const redisUrl = env.REDIS_URL?.trim() || undefined;
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) throw new ConfigError('REDIS_URL', 'expected redis:// or rediss://');

  const settings: Settings = {
    host: env.HOST?.trim() || '127.0.0.1',
    matchingPort: integer(env, 'MATCHING_PORT', 8000, 0, 65535),
    signallingPort: integer(env, 'SIGNALLING_PORT', 8001, 0, 65535),
    webPort: integer(env, 'WEB_PORT', 8080, 0, 65535),
    roles: [...new Set(roles)] as Role[],
    redisUrl,
    redisPrefix: env.REDIS_PREFIX?.trim() || 'dyad:',
    redisCallTimeoutMs: integer(env, 'REDIS_CALL_TIMEOUT_MS', 2_000, 50),
    allowedOrigins: allowedOrigins.map((o) => new URL(o).origin),
    turnUrls,
    turnSecret,
    turnTtlSec: integer(env, 'TURN_TTL', 3600, 1),
    stunUrls: parseList(env.STUN_URLS),
    publicMatchingUrl: url(env, 'PUBLIC_MATCHING_URL'),
    publicSignallingUrl: url(env, 'PUBLIC_SIGNALLING_URL'),
    webRoot: env.WEB_ROOT?.trim() || DEFAULT_WEB_ROOT,
    graceMs: integer(env, 'GRACE_MS', 15_000),
    interestTimeoutMs: integer(env, 'INTEREST_TIMEOUT_MS', 5_000),
    registrationTtlMs: integer(env, 'REGISTRATION_TTL_MS', 30_000, 1),
    repairCooldownMs: integer(env, 'REPAIR_COOLDOWN_MS', 60_000),
    maxFrameBytes: integer(env, 'MAX_FRAME_BYTES', 16_384, 64, 64 * 1024 * 1024),
    signalBuffer: integer(env, 'SIGNAL_BUFFER', 64, 1),
    fairWaitMs: integer(env, 'FAIR_WAIT_MS', 10_000),
    messageRatePerSec: integer(env, 'MESSAGE_RATE_PER_SEC', 100, 1),
    messageFloodPerSec: integer(env, 'MESSAGE_FLOOD_PER_SEC', 300, 1),
    registerRatePerMin: integer(env, 'REGISTER_RATE_PER_MIN', 30, 1),
    maxSocketsPerAddr: integer(env, 'MAX_SOCKETS_PER_ADDR', 32, 1),
    nextRatePerMin: integer(env, 'NEXT_RATE_PER_MIN', 120, 1),
    adminToken: adminToken(env),
    pingIntervalMs: integer(env, 'PING_INTERVAL_MS', 25_000, 100),
    reportBanThreshold: integer(env, 'REPORT_BAN_THRESHOLD', 3, 1),
    reportWindowMs: integer(env, 'REPORT_WINDOW_MS', 3_600_000, 1),
    banDurationMs: integer(env, 'BAN_DURATION_MS', 86_400_000, 1),
    trustProxy: boolean(env, 'TRUST_PROXY', false),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 4_000, 100, 4_900),
    httpTimeoutMs: integer(env, 'HTTP_TIMEOUT_MS', 10_000, 100),
    logLevel,
  };
  if (settings.messageFloodPerSec < settings.messageRatePerSec) {
    throw new ConfigError('MESSAGE_FLOOD_PER_SEC', 'must not be below MESSAGE_RATE_PER_SEC');
  }
  if (!redisUrl && settings.roles.length < ROLE_NAMES.size) {
    // The roles share session state; without Redis they must share one process.
    throw new ConfigError(
      'ROLES',
      `ROLES=${settings.roles.join(',')} needs REDIS_URL; without it one process runs every role (leave ROLES unset)`,
    );
  }
  return settings;
}
