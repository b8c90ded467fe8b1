// What every edge of one process shares, and small HTTP helpers they all use.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpError } from '@dyad/protocol';
import type { Logger } from 'pino';
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { Settings } from '../config.js';
import type { Hub } from '../core/hub.js';
import type { Limiter, LimiterFactory, Store } from '../store/store.js';
import type { Metrics } from '../ops/metrics.js';
import { UNKNOWN_ADDRESS, clientAddress, type AddressHasher } from './client.js';
import { holdFewReads } from './held.js';
import type { PaceBook } from './pace.js';
import type { SendBacklog } from './backlog.js';
import type { WaitingMessages } from './waiting.js';
import type { ChatGuard } from '../matching/chat-guard.js';
import type { RecentStats } from '../ops/recent-stats.js';
import type { Place } from '../geo/regions.js';

export interface Context {
  settings: Settings;
  store: Store;
  hub: Hub;
  metrics: Metrics;
  log: Logger;
  addresses: AddressHasher;
  /** Frames per client address over all its sockets of both services in this process (MESSAGE_RATE_PER_ADDR_PER_SEC). */
  addressPaces: PaceBook;
  /** Bytes of those frames, likewise (MESSAGE_BYTES_PER_ADDR_PER_SEC). */
  addressBytes: PaceBook;
  /** Bytes held for clients that do not read, per address and in all (SOCKET_SEND_BUFFER_PER_ADDR_BYTES, SOCKET_SEND_BUFFER_TOTAL_BYTES). */
  sendBacklog: SendBacklog;
  /** Bytes of messages received and not yet handled, in all (MESSAGE_BYTES_WAITING_TOTAL). */
  waitingMessages: WaitingMessages;
  /** The chat guards (CHAT_RATE_PER_MIN, CHAT_REPEAT_MAX, CHAT_MASK_WORDS), for chat of every protocol. */
  chatGuard: ChatGuard;
  /** The store's counts, at most ONLINE_CACHE_MS old, for GET /online and /metrics. */
  counts: RecentStats;
  /** A rate limiter of `points` per `durationSec`, per key; shared between processes when the store is. */
  limiter: LimiterFactory;
  /** ADDRESS_HASH_KEY when set: processes sharing a Redis derive their shared keys from it (proof of work, chat digests). */
  sharedKey: string | undefined;
  /**
   * The country and region of a client address (REGION_FILTER), looked up in
   * memory; absent when the filter is off or this process does not run matching.
   */
  locate?: (address: string) => Place | undefined;
  /** False once shutdown has begun: readiness fails so balancers stop sending. */
  accepting: () => boolean;
}

/**
 * Keyed hashes of client addresses, each made once: per connection for its
 * peer (the connection limits at accept, then every request and upgrade on
 * it), per request for an address forwarded by a trusted proxy.
 */
const clientHashes = new WeakMap<Socket | IncomingMessage, string>();
const hashOnce = (holder: Socket | IncomingMessage, make: () => string): string => {
  let hash = clientHashes.get(holder);
  if (hash === undefined) {
    hash = make();
    clientHashes.set(holder, hash);
  }
  return hash;
};

/** The keyed hash of the TCP peer's address of `socket`. */
export function peerHash(ctx: Pick<Context, 'addresses'>, socket: Socket): string {
  return hashOnce(socket, () => ctx.addresses.hash(socket.remoteAddress ?? UNKNOWN_ADDRESS));
}

/** The keyed hash of `req`'s client address: the TCP peer's, or behind a trusted proxy the forwarded one (see clientAddress). */
export function clientHash(ctx: Pick<Context, 'addresses' | 'settings'>, req: IncomingMessage): string {
  if (!ctx.settings.trustProxy) return peerHash(ctx, req.socket);
  return hashOnce(req, () => ctx.addresses.hash(clientAddress(req, true)));
}

/** Take one point of `key` from `limiter`: false when it has none left (any other failure is thrown). */
export async function takePoint(limiter: Limiter, key: string): Promise<boolean> {
  try {
    await limiter.consume(key);
    return true;
  } catch (rej) {
    if (!(rej instanceof RateLimiterRes)) throw rej;
    return false;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(text);
}

/**
 * The refusal for a banned address, as POST /register gives it (403 with
 * `until` in Unix seconds), or undefined when the address is not banned.
 * Every way in checks it, not only registration: a session registered from
 * another address must not serve a banned one.
 */
export async function banRefusal(ctx: Context, addr: string): Promise<{ status: 403; body: HttpError } | undefined> {
  const until = await ctx.store.bannedUntil(addr, ctx.hub.clock.now());
  if (until === undefined) return undefined;
  ctx.metrics.rejected.inc({ code: 'banned' });
  return bannedRefusal(until);
}

/** An HTTP refusal: the status and its JSON body (a request's answer, or an upgrade's). */
export type Refusal = { status: number; body: HttpError };

/**
 * May a socket open the session named by path segment `segment` (registered
 * earlier: `/ws/{id}?token=` on either service)? The session's id, or the
 * refusal. `admitted` is the socket's count, asked for already. The questions
 * go out at once (one round trip to a shared store) and are answered in this
 * order: open sockets from the address, a ban of the address (a session
 * registered from another address must not serve a banned one), the token.
 */
export async function sessionAccess(
  ctx: Context,
  addr: string,
  admitted: Promise<Refusal | undefined>,
  segment: string,
  token: string,
): Promise<{ id: string } | Refusal> {
  const id = decodeSegment(segment);
  const [refused, banned, valid] = await Promise.all([admitted, banRefusal(ctx, addr), id !== undefined && ctx.store.verify(id, token)]);
  const refusal = refused ?? banned;
  if (refusal) return refusal;
  if (id === undefined || !valid) return { status: 401, body: { status: 'error', message: 'invalid token for this session' } };
  return { id };
}

/** A wait in ms as the whole seconds, at least one, of a 429's `retry_after`. */
export const retryAfterSec = (retryMs: number): number => Math.max(1, Math.ceil(retryMs / 1000));

/** The body of a 429: what was refused, and when it is allowed again. */
export const slowDown = (message: string, retryMs: number): { status: 'error'; message: string; retry_after: number } => ({
  status: 'error',
  message,
  retry_after: retryAfterSec(retryMs),
});

/** The 403 a banned address gets, with the end of its ban (`untilMs`, Unix ms) in Unix seconds. */
export const bannedRefusal = (untilMs: number): { status: 403; body: HttpError } => ({
  status: 403,
  body: { status: 'banned', message: 'this address is banned', until: Math.ceil(untilMs / 1000) },
});

/** The request target as a URL; undefined for one that is none (`//`, `//host:port:x`: anyone can send that). */
export function requestUrl(req: IncomingMessage): URL | undefined {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return undefined;
  }
}

/** One percent-encoded path segment, decoded; undefined when it is not valid percent-encoding (anyone can send that). */
export function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** The client went away before its request was complete: nobody is left to answer, and nothing failed here. */
export class ClientGoneError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('client closed the connection before the request was complete', options);
    this.name = 'ClientGoneError';
  }
}

/** Read a request body up to `limit` bytes; undefined when larger. */
export function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        resolve(undefined);
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
      // A body sent a byte at a time is held as about its bytes, not a buffer per read.
      holdFewReads(chunks);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', (err) => reject(req.complete ? err : new ClientGoneError({ cause: err })));
  });
}

const STORE_PING_TIMEOUT_MS = 1_000;

/** The endpoints every service answers: health, readiness, metrics. Returns false if `path` is none of them. */
export async function serveOps(ctx: Context, path: string, res: ServerResponse): Promise<boolean> {
  switch (path) {
    case '/healthz':
      sendJson(res, 200, { status: 'ok' });
      return true;
    case '/readyz': {
      const ok =
        ctx.accepting() &&
        (await Promise.race([
          ctx.store.ping().catch(() => false),
          new Promise<boolean>((r) => setTimeout(() => r(false), STORE_PING_TIMEOUT_MS).unref()),
        ]));
      sendJson(res, ok ? 200 : 503, { status: ok ? 'ready' : 'unavailable' });
      return true;
    }
    case '/metrics': {
      const text = await ctx.metrics.text();
      res.writeHead(200, { 'Content-Type': ctx.metrics.registry.contentType });
      res.end(text);
      return true;
    }
    default:
      return false;
  }
}
