// Steps every wire test repeats: register, open the matching socket, pair two
// sessions, join the signalling room. Each step checks what the contract
// promises at that point, so a test body only states what it is about.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { HttpError, RegisterResponse, type RegisterRequest } from '@dyad/protocol';
import { describeResponse, request } from './http.js';
import type { RunningServer } from './server.js';
import { WireClient, WAIT_MS, redact, type ConnectOptions, type Events, type Channel } from './ws-client.js';

export interface Session {
  id: string;
  token: string;
  /** The matching socket. */
  m: WireClient;
  /** The signalling socket, once joined. */
  s?: WireClient;
}

export interface Pair {
  a: Session;
  b: Session;
  ma: Events['matched'];
  mb: Events['matched'];
  room: string;
  initiator: Session;
  responder: Session;
}

let seq = 0;
/** A name no other test uses: tests never pair with each other's leftovers by name. */
export function uniqueName(prefix = 'u'): string {
  seq += 1;
  return `${prefix.slice(0, 14)}-${seq}-${randomBytes(4).toString('hex')}`;
}

export const matchingUrl = (server: RunningServer, id: string, token: string): string =>
  `${server.matchingWs}/ws/${encodeURIComponent(id)}?token=${encodeURIComponent(token)}`;

export const signallingUrl = (server: RunningServer, id: string, token: string): string =>
  `${server.signallingWs}/ws/${encodeURIComponent(id)}?token=${encodeURIComponent(token)}`;

export const oneTripUrl = (server: RunningServer, query: Record<string, string> = {}): string => {
  const qs = new URLSearchParams(query).toString();
  return `${server.matchingWs}/ws${qs ? `?${qs}` : ''}`;
};

/** Extra request headers, e.g. X-Forwarded-For to speak as another client address. */
export interface Via {
  headers?: Record<string, string>;
}

/** Speak as another client address: a server with TRUST_PROXY believes X-Forwarded-For. */
export const from = (address: string): Via => ({ headers: { 'x-forwarded-for': address } });

let lastOctet = 0;
/** A documentation address (RFC 5737, 192.0.2.0/24) that no other test of this file speaks from. */
export function freshAddress(): string {
  lastOctet += 1;
  assert.ok(lastOctet < 255, 'out of fresh addresses in 192.0.2.0/24');
  return `192.0.2.${lastOctet}`;
}

let lastBlock = 0;
/**
 * A documentation IPv6 /48 (RFC 3849, 2001:db8::/32) that no other test of
 * this file speaks from, as its first three groups: `${block}:0::1` and
 * `${block}:0::2` are two addresses of one /64 of it, `${block}:1::1` is in
 * the next /64.
 */
export function freshIpv6Block(): string {
  lastBlock += 1;
  assert.ok(lastBlock < 0xffff, 'out of fresh blocks in 2001:db8::/32');
  return `2001:db8:${lastBlock.toString(16)}`;
}

/** POST /register that must succeed. */
export async function register(
  server: RunningServer,
  body: Partial<RegisterRequest> | Record<string, unknown> = {},
  via: Via = {},
): Promise<{ id: string; token: string }> {
  const res = await request(`${server.matching}/register`, { method: 'POST', body, headers: via.headers ?? {} });
  assert.equal(res.status, 200, `POST /register ${JSON.stringify(body)}: expected 200, got ${describeResponse(res)}`);
  const parsed = RegisterResponse.safeParse(res.json());
  assert.ok(parsed.success, `POST /register: body breaks the contract: ${describeResponse(res)}`);
  return { id: parsed.data.id, token: parsed.data.token };
}

export async function openMatching(server: RunningServer, id: string, token: string, label = id, via: Via = {}): Promise<WireClient> {
  return WireClient.open(matchingUrl(server, id, token), { channel: 'matching', label: `${label}/matching`, ...via });
}

export async function openSignalling(server: RunningServer, id: string, token: string, label = id, via: Via = {}): Promise<WireClient> {
  return WireClient.open(signallingUrl(server, id, token), { channel: 'signalling', label: `${label}/signalling`, ...via });
}

/** Registers and opens the matching socket of a session that must wait (nobody eligible is in the pool). */
export async function enter(server: RunningServer, body: Record<string, unknown> = {}, via: Via = {}): Promise<Session> {
  const { id, token } = await register(server, { name: uniqueName(), ...body }, via);
  const m = await openMatching(server, id, token, id, via);
  await m.expect('waiting', { what: '"waiting" on first open (the pool had nobody eligible)' });
  return { id, token, m };
}

/** Registers and opens without reading anything yet. */
export async function arrive(server: RunningServer, body: Record<string, unknown> = {}, via: Via = {}): Promise<Session> {
  const { id, token } = await register(server, { name: uniqueName(), ...body }, via);
  return { id, token, m: await openMatching(server, id, token, id, via) };
}

/** One-trip start that must be accepted; returns after the `session` message. */
export async function oneTrip(server: RunningServer, query: Record<string, string> = {}): Promise<Session> {
  const m = await WireClient.open(oneTripUrl(server, query), { channel: 'matching', label: `one-trip ${query.name ?? ''}/matching` });
  const session = await m.expect('session', { what: '"session" as the first message of a one-trip start' });
  assert.ok(session.id.length > 0 && session.token.length > 0, 'session carries an id and a token');
  if (query.name !== undefined) assert.equal(session.id, query.name, 'the session id is the name asked for');
  return { id: session.id, token: session.token, m };
}

/**
 * A session that has just entered the pool and gets paired at once: the
 * contract sends `waiting` on open while in the pool, so a `waiting` right
 * before `matched` is allowed, but not required.
 */
export async function expectMatched(client: WireClient, timeoutMs = WAIT_MS): Promise<Events['matched']> {
  return client.expect('matched', { skip: ['waiting'], timeoutMs });
}

/** Checks what both halves of one pairing must agree on. */
export function checkPairing(a: { id: string }, ma: Events['matched'], b: { id: string }, mb: Events['matched']): void {
  assert.equal(ma.peer, b.id, `${a.id} was paired with ${ma.peer}, expected ${b.id}`);
  assert.equal(mb.peer, a.id, `${b.id} was paired with ${mb.peer}, expected ${a.id}`);
  assert.equal(ma.room_code, mb.room_code, 'both members get the same room_code');
  assert.notEqual(ma.initiator, mb.initiator, 'exactly one of the pair has initiator: true');
  assert.equal(ma.mode, mb.mode, 'both members get the same mode');
}

/** Two fresh sessions paired with each other (the first waits, the second arrives), each from its own `via`. */
export async function pair(
  server: RunningServer,
  bodyA: Record<string, unknown> = {},
  bodyB: Record<string, unknown> = {},
  via: [Via, Via] = [{}, {}],
): Promise<Pair> {
  const a = await enter(server, bodyA, via[0]);
  const b = await arrive(server, bodyB, via[1]);
  const mb = await expectMatched(b.m);
  const ma = await a.m.expect('matched', { what: '"matched" once a partner arrived' });
  checkPairing(a, ma, b, mb);
  return { a, b, ma, mb, room: ma.room_code, initiator: ma.initiator ? a : b, responder: ma.initiator ? b : a };
}

/** Opens the signalling socket and joins the room; returns `verified`, checked against the pairing. */
export async function join(
  server: RunningServer,
  s: Session,
  room: string,
  expected: { role: 'initiator' | 'responder'; peer: string; peerJoined: boolean },
  via: Via = {},
): Promise<Events['verified']> {
  s.s = await openSignalling(server, s.id, s.token, s.id, via);
  s.s.send({ event: 'join', room_code: room });
  const v = await s.s.expect('verified', { what: `"verified" for ${s.id}` });
  assert.equal(v.room_code, room);
  assert.equal(v.role, expected.role, `${s.id}: role`);
  assert.equal(v.peer, expected.peer, `${s.id}: peer`);
  assert.equal(v.peer_joined, expected.peerJoined, `${s.id}: peer_joined`);
  return v;
}

/** A pair with both signalling sockets joined (initiator first), each member from its own `via`. */
export async function pairJoined(server: RunningServer, via: [Via, Via] = [{}, {}]): Promise<Pair> {
  const p = await pair(server, {}, {}, via);
  const viaOf = (s: Session): Via => (s === p.a ? via[0] : via[1]);
  await join(server, p.initiator, p.room, { role: 'initiator', peer: p.responder.id, peerJoined: false }, viaOf(p.initiator));
  await join(server, p.responder, p.room, { role: 'responder', peer: p.initiator.id, peerJoined: true }, viaOf(p.responder));
  const pj = await p.initiator.s!.expect('peer-joined');
  assert.deepEqual({ room_code: pj.room_code, peer: pj.peer }, { room_code: p.room, peer: p.responder.id });
  return p;
}

/** A normal pair end to end: pair, join, offer / answer, a candidate, chat both ways. */
export async function normalSession(server: RunningServer): Promise<Pair> {
  const p = await pairJoined(server);
  p.initiator.s!.send({ event: 'signal', room_code: p.room, type: 'offer', data: { sdp: 'o' } });
  assert.equal((await p.responder.s!.expect('signal')).type, 'offer');
  p.responder.s!.send({ event: 'signal', room_code: p.room, type: 'answer', data: { sdp: 'a' } });
  assert.equal((await p.initiator.s!.expect('signal')).type, 'answer');
  p.responder.s!.send({ event: 'signal', room_code: p.room, type: 'candidate', data: { candidate: 'c' } });
  assert.equal((await p.initiator.s!.expect('signal')).type, 'candidate');
  p.a.m.send({ event: 'chat', message: 'ping' });
  assert.equal((await p.b.m.expect('chat')).message, 'ping');
  p.b.m.send({ event: 'chat', message: 'pong' });
  assert.equal((await p.a.m.expect('chat')).message, 'pong');
  return p;
}

/**
 * An upgrade without a valid token must be refused: HTTP 401, or accepted and
 * closed at once with 4001 (an `error` "unauthorized" may come first).
 */
export async function expectUnauthorized(url: string, channel: Channel, what: string): Promise<string> {
  const attempt = await WireClient.connect(url, { channel, label: what });
  if (attempt.kind === 'refused') {
    assert.equal(attempt.status, 401, `${what} (${redact(url)}): expected HTTP 401 or close 4001, got HTTP ${attempt.status} ${attempt.body.slice(0, 200)}`);
    return 'HTTP 401';
  }
  const closed = await attempt.client.expectClose(4001, WAIT_MS, `HTTP 401 or close 4001 for ${what}`);
  for (const m of closed.before) {
    assert.ok(m.event === 'error' && m.code === 'unauthorized', `${what}: only an "unauthorized" error may come before close 4001, got ${JSON.stringify(m)}`);
  }
  return 'close 4001';
}

/** An upgrade that must be refused with HTTP `status` and a JSON body of the contract's shape, which it returns. */
export async function expectRefused(url: string, opts: ConnectOptions, status: number): Promise<HttpError> {
  const what = opts.label ?? redact(url);
  const attempt = await WireClient.connect(url, opts);
  if (attempt.kind === 'open') {
    await attempt.client.close();
    assert.fail(`${what}: expected HTTP ${status}, the upgrade was accepted`);
  }
  assert.equal(attempt.status, status, `${what}: expected HTTP ${status}, got HTTP ${attempt.status} ${attempt.body.slice(0, 200)}`);
  // The status line carries the standard reason phrase (RFC 9110, RFC 6585), not a made-up one.
  assert.equal(attempt.reason, STATUS_CODES[status], `${what}: HTTP ${status} with reason phrase ${JSON.stringify(attempt.reason)}`);
  const body = HttpError.safeParse(JSON.parse(attempt.body));
  assert.ok(body.success, `${what}: the refusal body breaks the contract: ${attempt.body.slice(0, 200)}`);
  return body.data;
}

/** A live socket whose session ended: `error` "unauthorized", then close 4001. */
export async function expectEndedUnauthorized(client: WireClient, timeoutMs = WAIT_MS): Promise<void> {
  await client.expectError('unauthorized', { timeoutMs, what: `error "unauthorized" on ${client.label} (its session ended)` });
  await client.expectClose(4001, timeoutMs);
}

/** Closes both sockets of every given session with 1000 (a clean leave). */
export async function leaveAll(...sessions: (Session | undefined)[]): Promise<void> {
  await Promise.all(sessions.flatMap((s) => (s ? [s.s?.close(1000), s.m.close(1000)] : [])));
}

/** Estimated randomness of an opaque string, from its length and apparent alphabet. */
export function estimatedBits(s: string): number {
  // A UUID v4 carries 122 random bits whatever its length suggests.
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(s)) return 122;
  if (/^[0-9a-f]+$/i.test(s)) return s.length * 4;
  if (/^[A-Za-z0-9_-]+$/.test(s) || /^[A-Za-z0-9+/]+=*$/.test(s)) return s.replace(/=+$/, '').length * 6;
  return s.length * 5; // unknown alphabet: be generous but not absurd
}
