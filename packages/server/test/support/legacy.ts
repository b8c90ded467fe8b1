// The legacy protocols as their clients speak them (docs/LEGACY.md), over the
// shared WireClient: each socket checks what it gets against the protocol
// package's legacy schemas. A "target" is whatever serves them: one server,
// or one process of several on a Redis.
import assert from 'node:assert/strict';
import type { z } from 'zod';
import {
  GmServerMessage,
  RvcMatchingServerMessage,
  RvcRegisterResponse,
  RvcSignallingServerMessage,
} from '@dyad/protocol';
import { request } from './http.js';
import { WireClient, type AnyEvent } from './ws-client.js';

/** Where the legacy protocols are served: the matching, signalling and web roles' URLs. */
export interface Target {
  /** http://host:port of the matching role. */
  matching: string;
  matchingWs: string;
  signallingWs: string;
  /** ws://host:port of the web role. */
  webWs: string;
  label: string;
}

export type RvcMatching = z.infer<typeof RvcMatchingServerMessage>;
export type RvcSignalling = z.infer<typeof RvcSignallingServerMessage>;
export type Gm = z.infer<typeof GmServerMessage>;
type Of<M extends { event: string }, E extends M['event']> = Extract<M, { event: E }>;

/** A client address (X-Forwarded-For, with TRUST_PROXY on the server). */
export type Address = string;
export const via = (address: Address): Record<string, string> => ({ 'x-forwarded-for': address });

/**
 * The next message of `client` that is `event`; those in `skip` are passed
 * over first (any other fails), as the legacy client ignores them.
 */
export async function expectEvent<M extends { event: string }, E extends M['event']>(
  client: WireClient,
  event: E,
  opts: { skip?: readonly string[]; timeoutMs?: number } = {},
): Promise<Of<M, E>> {
  const skip = opts.skip ?? [];
  const msg = (await client.waitFor((m) => m.event === event || !skip.includes(m.event), `"${event}"`, opts.timeoutMs)) as AnyEvent;
  if (msg.event !== event) assert.fail(`${client.label}: expected "${event}", got ${JSON.stringify(msg)}`);
  return msg as unknown as Of<M, E>;
}

// ------------------------------------------------------- random-video-chat

export const rvc = {
  matching: (c: WireClient, event: RvcMatching['event'], opts?: { skip?: readonly string[]; timeoutMs?: number }) =>
    expectEvent<RvcMatching, typeof event>(c, event, { skip: ['waiting'], ...opts }),
};

export async function expectRvcMatched(c: WireClient, timeoutMs?: number): Promise<Of<RvcMatching, 'matched'>> {
  return expectEvent<RvcMatching, 'matched'>(c, 'matched', { skip: ['waiting'], timeoutMs });
}

export async function expectRvcSignalling<E extends RvcSignalling['event']>(c: WireClient, event: E, timeoutMs?: number): Promise<Of<RvcSignalling, E>> {
  return expectEvent<RvcSignalling, E>(c, event, { timeoutMs });
}

/** POST /registerForMatching (or /register) with `{"name"}` as the client sends it; the client reads only the body. */
export async function rvcPost(
  t: Target,
  name: string,
  address: Address,
  opts: { path?: string; body?: unknown; origin?: string } = {},
): Promise<{ status: number; body: z.infer<typeof RvcRegisterResponse> }> {
  const headers: Record<string, string> = { ...via(address), ...(opts.origin ? { origin: opts.origin } : {}) };
  const res = await request(`${t.matching}${opts.path ?? '/registerForMatching'}`, { method: 'POST', body: opts.body ?? { name }, headers });
  const parsed = RvcRegisterResponse.safeParse(res.json());
  assert.ok(parsed.success, `POST ${opts.path ?? '/registerForMatching'} ${name}: the body is none the client reads: HTTP ${res.status} ${res.text.slice(0, 200)}`);
  return { status: res.status, body: parsed.data };
}

export const rvcMatchingUrl = (t: Target, name: string): string => `${t.matchingWs}/ws/${encodeURIComponent(name)}`;
export const rvcSignallingUrl = (t: Target, name: string): string => `${t.signallingWs}/ws/${encodeURIComponent(name)}`;

export function openRvcMatching(t: Target, name: string, address: Address, waitMs?: number): Promise<WireClient> {
  return WireClient.open(rvcMatchingUrl(t, name), { channel: 'matching', label: `${name}/rvc-matching@${t.label}`, headers: via(address), schema: RvcMatchingServerMessage, waitMs });
}

export function openRvcSignalling(t: Target, name: string, address: Address, waitMs?: number): Promise<WireClient> {
  return WireClient.open(rvcSignallingUrl(t, name), { channel: 'signalling', label: `${name}/rvc-signalling@${t.label}`, headers: via(address), schema: RvcSignallingServerMessage, waitMs });
}

/** A random-video-chat visitor: its name, address, and sockets. */
export interface RvcClient {
  name: string;
  address: Address;
  m: WireClient;
  s?: WireClient;
}

/**
 * The client's start: the matching socket and the POST at once, in the given
 * order when `order` says so (both orders occur), each to its own target.
 */
export async function rvcStart(
  name: string,
  address: Address,
  where: { socket: Target; post: Target },
  order: 'together' | 'socket-first' | 'post-first' = 'together',
  waitMs?: number,
): Promise<RvcClient> {
  let m: WireClient;
  let posted: Awaited<ReturnType<typeof rvcPost>>;
  if (order === 'socket-first') {
    m = await openRvcMatching(where.socket, name, address, waitMs);
    posted = await rvcPost(where.post, name, address);
  } else if (order === 'post-first') {
    posted = await rvcPost(where.post, name, address);
    m = await openRvcMatching(where.socket, name, address, waitMs);
  } else {
    [m, posted] = await Promise.all([openRvcMatching(where.socket, name, address, waitMs), rvcPost(where.post, name, address)]);
  }
  assert.equal(posted.body.status, 'queued', `${name}: POST answered ${JSON.stringify(posted.body)}`);
  return { name, address, m };
}

/** Opens the signalling socket after `matched` and joins as the client does; returns `verified`. */
export async function rvcJoin(t: Target, c: RvcClient, matched: Of<RvcMatching, 'matched'>, waitMs?: number): Promise<Of<RvcSignalling, 'verified'>> {
  c.s = await openRvcSignalling(t, c.name, c.address, waitMs);
  const role = matched.initiator ? 'initiator' : 'responder';
  c.s.send({ event: 'join', room_code: matched.room_code, target: rvcPartner(matched.room_code, c.name), role });
  const v = await expectRvcSignalling(c.s, 'verified');
  assert.deepEqual(v, { event: 'verified', room_code: matched.room_code, role });
  return v;
}

/** The partner's name as the client finds it: the part of the room code, split on `_`, that is not its own. */
export function rvcPartner(roomCode: string, own: string): string {
  const other = roomCode.split('_').find((n) => n !== own);
  assert.ok(other, `room code ${roomCode} names no partner of ${own}`);
  return other;
}

/** A signal as the client sends it. */
export const rvcSignal = (room: string, target: string, from: string, data: Record<string, unknown>) => ({ event: 'signal', room_code: room, target, from, data });

// ---------------------------------------------------------------- go-megle

export function openGm(t: Target, address: Address, opts: { origin?: string; waitMs?: number; label?: string } = {}): Promise<WireClient> {
  return WireClient.open(`${t.webWs}/ws`, {
    channel: 'matching',
    label: `${opts.label ?? 'go-megle'}@${t.label}`,
    headers: via(address),
    schema: GmServerMessage,
    ...(opts.origin ? { origin: opts.origin } : {}),
    waitMs: opts.waitMs,
  });
}

export async function expectGm<E extends Gm['event']>(c: WireClient, event: E, opts: { skip?: readonly string[]; timeoutMs?: number } = {}): Promise<Of<Gm, E>> {
  return expectEvent<Gm, E>(c, event, opts);
}

export const gmFind = { event: 'find_match', data: {} } as const;
