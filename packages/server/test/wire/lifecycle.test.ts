// Lifecycle: resumption within the grace period on both sockets, what expiry
// does, missed news, replacement by a second socket (4002), clean leaves by
// close code, tokens, and the registration TTL.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  enter,
  expectEndedUnauthorized,
  expectMatched,
  expectUnauthorized,
  join,
  matchingUrl,
  openMatching,
  openSignalling,
  pair,
  pairJoined,
  register,
  uniqueName,
} from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient, sleep } from '../support/ws-client.js';

const GRACE_MS = 600;
const REGISTRATION_TTL_MS = 500;
/** Slack for a timer to fire and its news to cross loopback. */
const LATE_MS = 1_500;
const QUIET_MS = 200;

let server: RunningServer;

before(async () => {
  server = await startServer({
    GRACE_MS: String(GRACE_MS),
    REGISTRATION_TTL_MS: String(REGISTRATION_TTL_MS),
    SIGNAL_BUFFER: '8',
  });
});
after(async () => {
  await WireClient.closeAll();
  await server?.stop();
});
afterEach(() => WireClient.closeAll());

const candidate = (room: string, n: number) => ({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: `c${n}`, n } });

describe('resumption of the matching socket within GRACE_MS', () => {
  it('a matched session gets matched with resumed:true, then the chat sent meanwhile, in order (typing dropped); the partner is told nothing', async () => {
    const p = await pair(server);
    await p.a.m.drop();
    for (const message of ['one', 'two', 'three']) p.b.m.send({ event: 'chat', message });
    p.b.m.send({ event: 'typing', typing: true });
    await p.b.m.expectSilence(QUIET_MS, { why: 'the partner of a session in its grace period is told nothing' });
    const again = await openMatching(server, p.a.id, p.a.token);
    const m = await again.expect('matched', { what: '"matched" re-sent on resumption' });
    assert.equal(m.resumed, true);
    assert.deepEqual([m.room_code, m.peer, m.initiator], [p.room, p.b.id, p.ma.initiator], 'the same room, partner and role');
    for (const message of ['one', 'two', 'three']) {
      const c = await again.expect('chat', { what: `kept chat "${message}" (typing is not kept)` });
      assert.deepEqual([c.sender, c.message], [p.b.id, message]);
    }
    await again.expectSilence(QUIET_MS, { why: 'typing is dropped while away' });
    again.send({ event: 'chat', message: 'back' });
    assert.equal((await p.b.m.expect('chat')).message, 'back');
  });

  it('chat kept for an absent member stops at SIGNAL_BUFFER (buffer-full), counted apart from signals', async () => {
    const p = await pair(server);
    // The partner's signalling socket joins; the absent member's never does, so signals are kept for it too.
    await join(server, p.b, p.room, { role: p.mb.initiator ? 'initiator' : 'responder', peer: p.a.id, peerJoined: false });
    await p.a.m.drop();
    for (let i = 0; i < 8; i++) p.b.m.send({ event: 'chat', message: `kept ${i}` });
    await p.b.m.expectSilence(QUIET_MS, { why: 'the first SIGNAL_BUFFER (8) chat messages are kept' });
    p.b.m.send({ event: 'chat', message: 'one too many' });
    await p.b.m.expectError('buffer-full', { what: 'buffer-full for the 9th chat message kept for an absent member' });
    // Signals have their own 8.
    const first = p.mb.initiator ? 'offer' : 'candidate';
    p.b.s!.send({ event: 'signal', room_code: p.room, type: first, data: first === 'offer' ? { sdp: 'o', n: 0 } : { candidate: 'c0', n: 0 } });
    for (let i = 1; i < 8; i++) p.b.s!.send(candidate(p.room, i));
    await p.b.s!.expectSilence(QUIET_MS, { why: 'signals count separately from chat' });
    const again = await openMatching(server, p.a.id, p.a.token);
    await again.expect('matched');
    for (let i = 0; i < 8; i++) assert.equal((await again.expect('chat')).message, `kept ${i}`);
    await again.expectSilence(QUIET_MS, { why: 'the dropped chat message never arrives' });
  });

  it('a client close with 1001 starts the grace period too (only 1000 or no code is a leave)', async () => {
    const p = await pair(server);
    await p.a.m.close(1001);
    await p.b.m.expectSilence(QUIET_MS, { why: 'close 1001 is not a leave' });
    const again = await openMatching(server, p.a.id, p.a.token);
    assert.equal((await again.expect('matched')).resumed, true);
  });

  it('a waiting session gets waiting, is not paired while away, and is paired once back', async () => {
    const a = await enter(server);
    await a.m.drop();
    const c = await enter(server);
    await c.m.expectSilence(QUIET_MS, { why: 'a session in its grace period is not paired' });
    const again = await openMatching(server, a.id, a.token);
    await again.expect('waiting', { what: '"waiting" re-sent on resumption' });
    assert.equal((await again.expect('matched')).peer, c.id);
    assert.equal((await c.m.expect('matched')).peer, a.id);
  });

  it('an idle session gets idle', async () => {
    const a = await enter(server);
    a.m.send({ event: 'stop' });
    await a.m.expect('idle');
    await a.m.drop();
    const again = await openMatching(server, a.id, a.token);
    await again.expect('idle', { what: '"idle" re-sent on resumption' });
  });

  it('missed news: a room that ended while away gives peer-disconnected, then idle, on resumption', async () => {
    const p = await pair(server);
    await p.a.m.drop();
    p.b.m.send({ event: 'next' });
    await p.b.m.expect('waiting');
    const again = await openMatching(server, p.a.id, p.a.token);
    const pd = await again.expect('peer-disconnected', { what: 'the missed "peer-disconnected"' });
    assert.equal(pd.reason, 'skip');
    await again.drain(QUIET_MS);
    assert.deepEqual(
      again.history.map((m) => m.event),
      ['peer-disconnected', 'idle'],
      'on resumption: the missed peer-disconnected, then idle',
    );
  });
});

describe('grace period running out', () => {
  it('of a matched session: the partner gets "timeout" after GRACE_MS, and the session has ended', async () => {
    const name = uniqueName('gone');
    const p = await pair(server, { name });
    const dropped = Date.now();
    await p.a.m.drop();
    await p.b.m.expectSilence(GRACE_MS - 200, { why: 'nothing before GRACE_MS' });
    const pd = await p.b.m.expect('peer-disconnected', { timeoutMs: LATE_MS, what: 'peer-disconnected "timeout" once GRACE_MS ran out' });
    assert.equal(pd.reason, 'timeout');
    assert.ok(Date.now() - dropped >= GRACE_MS - 50, 'not before GRACE_MS');
    await expectUnauthorized(matchingUrl(server, p.a.id, p.a.token), 'matching', 'reopening after the grace period ran out');
    await register(server, { name });
  });

  it('of a waiting session: it leaves the pool, its token is dead', async () => {
    const a = await enter(server);
    await a.m.drop();
    await sleep(GRACE_MS + 300);
    const c = await enter(server);
    await c.m.expectSilence(QUIET_MS, { why: 'the expired session is out of the pool' });
    await expectUnauthorized(matchingUrl(server, a.id, a.token), 'matching', 'reopening after the grace period ran out');
  });

  it('of the matching socket: an open signalling socket of that session gets unauthorized and close 4001; the partner gets "timeout" on both sockets', async () => {
    const p = await pairJoined(server);
    await p.initiator.m.drop();
    await expectEndedUnauthorized(p.initiator.s!, GRACE_MS + LATE_MS);
    assert.equal((await p.responder.m.expect('peer-disconnected', { timeoutMs: LATE_MS })).reason, 'timeout');
    assert.equal((await p.responder.s!.expect('peer-disconnected', { timeoutMs: LATE_MS })).reason, 'timeout');
  });

  it('of a joined signalling socket: the room ends, the partner gets "timeout" on both sockets, the session itself idle', async () => {
    const p = await pairJoined(server);
    await p.initiator.s!.drop();
    await p.responder.m.expectSilence(GRACE_MS - 200, { why: 'nothing before GRACE_MS' });
    assert.equal((await p.responder.m.expect('peer-disconnected', { timeoutMs: LATE_MS })).reason, 'timeout');
    assert.equal((await p.responder.s!.expect('peer-disconnected', { timeoutMs: LATE_MS })).reason, 'timeout');
    await p.initiator.m.expect('idle', { timeoutMs: LATE_MS, what: '"idle" on the matching socket when its own signalling grace ended the room' });
  });
});

describe('resumption of the signalling socket', () => {
  it('rejoin within GRACE_MS: verified with peer_joined true, then the signals kept meanwhile, in order; the partner is told nothing', async () => {
    const p = await pairJoined(server);
    p.initiator.s!.send({ event: 'signal', room_code: p.room, type: 'offer', data: { sdp: 'o' } });
    await p.responder.s!.expect('signal');
    p.responder.s!.send({ event: 'signal', room_code: p.room, type: 'answer', data: { sdp: 'a' } });
    await p.initiator.s!.expect('signal');

    await p.initiator.s!.drop();
    const kept = [1, 2, 3].map((n) => candidate(p.room, n));
    for (const c of kept) p.responder.s!.send(c);
    await p.responder.s!.expectSilence(QUIET_MS, { why: 'signals for a member in its grace period are kept' });

    const s = await openSignalling(server, p.initiator.id, p.initiator.token);
    s.send({ event: 'join', room_code: p.room });
    const v = await s.expect('verified');
    assert.deepEqual([v.role, v.peer, v.peer_joined], ['initiator', p.responder.id, true]);
    for (const c of kept) {
      const got = await s.expect('signal', { what: `kept candidate ${c.data.n}` });
      assert.deepEqual([got.from, got.type, got.data], [p.responder.id, 'candidate', c.data]);
    }
    // An ICE restart offer is allowed once the first answer has passed.
    s.send({ event: 'signal', room_code: p.room, type: 'offer', data: { sdp: 'restart' } });
    const restart = await p.responder.s!.expect('signal', { what: 'the ICE restart offer (the rejoin itself is not announced)' });
    assert.deepEqual(restart.data, { sdp: 'restart' });
    await p.responder.m.expectSilence(0);
  });

  it('peer_joined stays true while the partner is in its grace period', async () => {
    const p = await pairJoined(server);
    await p.responder.s!.drop();
    const s = await openSignalling(server, p.initiator.id, p.initiator.token); // replaces the first (4002)
    await p.initiator.s!.expectClose(4002);
    s.send({ event: 'join', room_code: p.room });
    assert.equal((await s.expect('verified')).peer_joined, true);
  });
});

describe('a second socket for the same session and role', () => {
  it('matching: replaces the first (closed with 4002), gets the current state, the partner is told nothing', async () => {
    const p = await pair(server);
    const second = await openMatching(server, p.a.id, p.a.token, 'a-second');
    await p.a.m.expectClose(4002, undefined, 'close 4002 (replaced by a second socket)');
    const m = await second.expect('matched');
    assert.deepEqual([m.resumed, m.room_code], [true, p.room]);
    await p.b.m.expectSilence(QUIET_MS, { why: 'replacement is not news for the partner' });
    p.b.m.send({ event: 'chat', message: 'to the new socket' });
    assert.equal((await second.expect('chat')).message, 'to the new socket');
  });

  it('matching while waiting: the second socket gets waiting', async () => {
    const a = await enter(server);
    const second = await openMatching(server, a.id, a.token, 'a-second');
    await a.m.expectClose(4002);
    await second.expect('waiting');
  });

  it('signalling: replaces the first (4002); the new socket joins again and the partner is told nothing', async () => {
    const p = await pairJoined(server);
    const s = await openSignalling(server, p.initiator.id, p.initiator.token, 'initiator-second');
    await p.initiator.s!.expectClose(4002);
    s.send({ event: 'join', room_code: p.room });
    assert.equal((await s.expect('verified')).peer_joined, true);
    await p.responder.s!.expectSilence(QUIET_MS, { why: 'replacement is not news for the partner' });
    const c = candidate(p.room, 9);
    p.responder.s!.send(c);
    assert.deepEqual((await s.expect('signal')).data, c.data);
  });
});

describe('clean leaves by close code', () => {
  it('a `next` still queued when its socket closes is not run: the partner hears of a leave, and nobody is paired with the one who left', async () => {
    const p = await pair(server, { lang: 'x-closing' }, { lang: 'x-closing' });
    const w = await enter(server, { lang: 'x-closing' });
    await p.a.m.sendThenClose({ event: 'next' });
    assert.equal((await p.b.m.expect('peer-disconnected')).reason, 'left', 'a left: it did not skip');
    await w.m.expectSilence(QUIET_MS, { why: 'nobody is paired with a member who has left' });
  });

  it('matching closed with 1000: an open signalling socket of that session gets unauthorized and 4001', async () => {
    const p = await pairJoined(server);
    await p.initiator.m.close(1000);
    await expectEndedUnauthorized(p.initiator.s!);
    assert.equal((await p.responder.m.expect('peer-disconnected')).reason, 'left');
    assert.equal((await p.responder.s!.expect('peer-disconnected')).reason, 'left');
  });

  for (const [what, code] of [
    ['1000', 1000],
    ['no code', null],
  ] as const) {
    it(`signalling closed with ${what} is a leave of its room`, async () => {
      const p = await pairJoined(server);
      await p.initiator.s!.close(code);
      assert.equal((await p.responder.m.expect('peer-disconnected')).reason, 'left');
      assert.equal((await p.responder.s!.expect('peer-disconnected')).reason, 'left');
      await p.initiator.m.expect('idle', { what: '"idle" for the member whose signalling close left the room' });
    });
  }
});

describe('tokens and registration', () => {
  it('an upgrade with another session\'s token, a made-up one, or none is refused (401 or 4001)', async () => {
    const a = await register(server);
    const b = await register(server);
    await expectUnauthorized(matchingUrl(server, a.id, b.token), 'matching', "another session's token");
    await expectUnauthorized(matchingUrl(server, a.id, a.token.toUpperCase() === a.token ? a.token.toLowerCase() : a.token.toUpperCase()), 'matching', 'the token in another case');
    await expectUnauthorized(matchingUrl(server, a.id, ''), 'matching', 'an empty token');
    await expectUnauthorized(`${server.matchingWs}/ws/${a.id}`, 'matching', 'no token');
    await expectUnauthorized(matchingUrl(server, 'nobody-here', a.token), 'matching', 'an unknown id');
  });

  it('a registration whose matching socket never opens expires after REGISTRATION_TTL_MS', async () => {
    const name = uniqueName('ttl');
    const r = await register(server, { name });
    await sleep(REGISTRATION_TTL_MS + 500);
    await expectUnauthorized(matchingUrl(server, r.id, r.token), 'matching', 'opening after REGISTRATION_TTL_MS');
    const ice = await request(`${server.matching}/ice-servers`, { headers: { authorization: `Bearer ${r.token}` } });
    assert.equal(ice.status, 401, `GET /ice-servers with an expired registration: ${describeResponse(ice)}`);
    await register(server, { name });
  });

  it('a session whose matching socket opened in time does not expire', async () => {
    const a = await enter(server);
    await a.m.expectSilence(REGISTRATION_TTL_MS * 2, { why: 'an open session outlives REGISTRATION_TTL_MS' });
    const b = await register(server);
    const mb = await expectMatched(await openMatching(server, b.id, b.token));
    assert.equal(mb.peer, a.id);
  });

  it('the grace period of a resumed socket starts again from zero (a second drop is survivable)', async () => {
    const p = await pair(server);
    let m = p.a.m;
    for (let i = 0; i < 3; i++) {
      await m.drop();
      await sleep(GRACE_MS / 2);
      m = await openMatching(server, p.a.id, p.a.token);
      assert.equal((await m.expect('matched')).resumed, true, `resumption ${i + 1}`);
    }
    await p.b.m.expectSilence(QUIET_MS, { why: 'every drop was within its grace period' });
  });
});
