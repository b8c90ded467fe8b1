// The signalling socket, row by row: join / verified / peer-joined, signal
// relay and the role rule, buffering before a join, buffer-full, leave, and
// the end of a room seen from the signalling side.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  expectUnauthorized,
  join,
  openSignalling,
  pair,
  pairJoined,
  register,
  signallingUrl,
  type Pair,
} from '../support/dyad.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient, type Events } from '../support/ws-client.js';

const SIGNAL_BUFFER = 8;
const QUIET_MS = 300;

let server: RunningServer;

before(async () => {
  server = await startServer({
    SIGNAL_BUFFER: String(SIGNAL_BUFFER),
    // 100 candidates in one burst is more than a person sends; the rate limits
    // have their own tests.
    MESSAGE_RATE_PER_SEC: '100000',
    MESSAGE_FLOOD_PER_SEC: '100000',
  });
});
after(async () => {
  await WireClient.closeAll();
  await server?.stop();
});
afterEach(() => WireClient.closeAll());

const offer = (room: string, n = 0) => ({ event: 'signal', room_code: room, type: 'offer', data: { type: 'offer', sdp: `v=0 offer ${n}` } });
const answer = (room: string, n = 0) => ({ event: 'signal', room_code: room, type: 'answer', data: { type: 'answer', sdp: `v=0 answer ${n}` } });
const candidate = (room: string, n: number) => ({
  event: 'signal',
  room_code: room,
  type: 'candidate',
  data: { candidate: `candidate:${n} 1 udp 2122260223 127.0.0.1 ${40000 + n} typ host`, sdpMid: '0', sdpMLineIndex: 0, n },
});

/** The next message must be the relayed form of `sent`, from `from`. */
async function expectRelayed(to: WireClient, sent: ReturnType<typeof candidate> | ReturnType<typeof offer>, from: string, what?: string): Promise<void> {
  const got: Events['signal'] = await to.expect('signal', { what: what ?? `signal ${sent.type} from ${from}` });
  assert.deepEqual(
    { room_code: got.room_code, from: got.from, type: got.type, data: got.data },
    { room_code: sent.room_code, from, type: sent.type, data: sent.data },
    `${to.label}: ${what ?? 'relayed signal'}`,
  );
}

/** Offer from the initiator and answer from the responder, both relayed. */
async function negotiate(p: Pair): Promise<void> {
  const o = offer(p.room);
  p.initiator.s!.send(o);
  await expectRelayed(p.responder.s!, o, p.initiator.id);
  const a = answer(p.room);
  p.responder.s!.send(a);
  await expectRelayed(p.initiator.s!, a, p.responder.id);
}

describe('join', () => {
  it('verified carries room_code, role (the matched initiator is "initiator"), peer and peer_joined; the first to join gets peer-joined', async () => {
    // pairJoined checks every field of both verified and of peer-joined.
    await pairJoined(server);
  });

  it('"target" and "type" on join are accepted and ignored', async () => {
    const p = await pair(server);
    p.initiator.s = await openSignalling(server, p.initiator.id, p.initiator.token);
    p.initiator.s.send({ event: 'join', room_code: p.room, target: p.responder.id, type: 'join' });
    const v = await p.initiator.s.expect('verified');
    assert.equal(v.role, 'initiator');
  });

  it('a room the session is not a member of gets invalid-room, and the socket stays usable', async () => {
    const p = await pair(server);
    const other = await pair(server);
    const s = await openSignalling(server, p.a.id, p.a.token);
    for (const room of ['no-such-room', other.room]) {
      s.send({ event: 'join', room_code: room });
      await s.expectError('invalid-room', { what: `invalid-room for joining ${room === other.room ? "another pair's room" : 'an unknown room'}` });
    }
    s.send({ event: 'join', room_code: p.room });
    await s.expect('verified');
  });

  it('signal or leave before joining: bad-request for the own room, invalid-room for another', async () => {
    const p = await pair(server);
    const other = await pair(server);
    const s = await openSignalling(server, p.initiator.id, p.initiator.token);
    s.send(offer(p.room));
    await s.expectError('bad-request', { what: 'bad-request for a signal from a member whose socket has not joined' });
    s.send({ event: 'leave', room_code: p.room });
    await s.expectError('bad-request', { what: 'bad-request for a leave from a member whose socket has not joined' });
    s.send(offer(other.room));
    await s.expectError('invalid-room', { what: 'invalid-room for a signal to a room of others' });
    s.send({ event: 'leave', room_code: other.room });
    await s.expectError('invalid-room', { what: 'invalid-room for a leave of a room of others' });
  });
});

describe('signal', () => {
  it('the first offer must come from the initiator and the first answer from the responder (role-mismatch)', async () => {
    const p = await pairJoined(server);
    p.responder.s!.send(offer(p.room));
    await p.responder.s!.expectError('role-mismatch', { what: 'role-mismatch for a first offer from the responder' });
    p.initiator.s!.send(answer(p.room));
    await p.initiator.s!.expectError('role-mismatch', { what: 'role-mismatch for a first answer from the initiator' });
    await p.initiator.s!.expectSilence(QUIET_MS, { why: 'a refused signal is not relayed' });
    await p.responder.s!.expectSilence(0, { why: 'a refused signal is not relayed' });
  });

  it('after the first answer either side may offer (renegotiation, ICE restart)', async () => {
    const p = await pairJoined(server);
    await negotiate(p);
    const o = offer(p.room, 1);
    p.responder.s!.send(o);
    await expectRelayed(p.initiator.s!, o, p.responder.id, 'a renegotiation offer from the responder');
    const a = answer(p.room, 1);
    p.initiator.s!.send(a);
    await expectRelayed(p.responder.s!, a, p.initiator.id, 'its answer from the initiator');
  });

  it('100 candidates each way, sent at once from both sides, arrive complete and in order', async () => {
    const p = await pairJoined(server);
    await negotiate(p);
    const n = 100;
    const fromI = Array.from({ length: n }, (_, i) => candidate(p.room, i));
    const fromR = Array.from({ length: n }, (_, i) => candidate(p.room, 1000 + i));
    for (let i = 0; i < n; i++) {
      p.initiator.s!.send(fromI[i]!);
      p.responder.s!.send(fromR[i]!);
    }
    for (let i = 0; i < n; i++) {
      await expectRelayed(p.responder.s!, fromI[i]!, p.initiator.id, `candidate ${i} of ${n} from the initiator`);
      await expectRelayed(p.initiator.s!, fromR[i]!, p.responder.id, `candidate ${i} of ${n} from the responder`);
    }
  });

  it('signals sent before the partner joins are delivered, in order, right after its verified', async () => {
    const p = await pair(server);
    await join(server, p.initiator, p.room, { role: 'initiator', peer: p.responder.id, peerJoined: false });
    const sent = [offer(p.room), candidate(p.room, 1), candidate(p.room, 2), candidate(p.room, 3)];
    for (const s of sent) p.initiator.s!.send(s);
    await p.initiator.s!.expectSilence(QUIET_MS, { why: 'signals for a partner not yet joined are kept without complaint' });
    await join(server, p.responder, p.room, { role: 'responder', peer: p.initiator.id, peerJoined: true });
    for (const [i, s] of sent.entries()) await expectRelayed(p.responder.s!, s, p.initiator.id, `kept signal ${i}`);
    assert.equal((await p.initiator.s!.expect('peer-joined')).peer, p.responder.id);
  });

  it(`beyond SIGNAL_BUFFER (${SIGNAL_BUFFER}) kept signals the sender gets buffer-full and the item is dropped`, async () => {
    const p = await pair(server);
    await join(server, p.initiator, p.room, { role: 'initiator', peer: p.responder.id, peerJoined: false });
    const kept = [offer(p.room), ...Array.from({ length: SIGNAL_BUFFER - 1 }, (_, i) => candidate(p.room, i))];
    for (const s of kept) p.initiator.s!.send(s);
    await p.initiator.s!.expectSilence(QUIET_MS, { why: `the first ${SIGNAL_BUFFER} items are kept` });
    for (const n of [100, 101]) {
      p.initiator.s!.send(candidate(p.room, n));
      await p.initiator.s!.expectError('buffer-full', { what: `buffer-full for item ${n} beyond SIGNAL_BUFFER` });
    }
    await join(server, p.responder, p.room, { role: 'responder', peer: p.initiator.id, peerJoined: true });
    for (const [i, s] of kept.entries()) await expectRelayed(p.responder.s!, s, p.initiator.id, `kept item ${i}`);
    await p.initiator.s!.expect('peer-joined');
    // Once joined, nothing is buffered any more: the next one passes straight through.
    const live = candidate(p.room, 200);
    p.initiator.s!.send(live);
    await expectRelayed(p.responder.s!, live, p.initiator.id, 'a signal after the join (the dropped ones never arrive)');
  });

  it('malformed signals are bad-request and relay nothing', async () => {
    const p = await pairJoined(server);
    const bad: [string, unknown][] = [
      ['an unknown type', { event: 'signal', room_code: p.room, type: 'pranswer', data: { sdp: 'o' } }],
      ['data as a string', { event: 'signal', room_code: p.room, type: 'offer', data: 'sdp' }],
      ['data as an array', { event: 'signal', room_code: p.room, type: 'candidate', data: [] }],
      ['no data', { event: 'signal', room_code: p.room, type: 'offer' }],
      ['no room_code', { event: 'signal', type: 'offer', data: { sdp: 'o' } }],
      ['a numeric room_code', { event: 'signal', room_code: 1, type: 'offer', data: { sdp: 'o' } }],
      ['a join without room_code', { event: 'join' }],
      ['a leave without room_code', { event: 'leave' }],
      ['a matching-socket event', { event: 'chat', message: 'hi' }],
    ];
    for (const [what, frame] of bad) {
      p.initiator.s!.send(frame as object);
      await p.initiator.s!.expectError('bad-request', { what: `bad-request for ${what}` });
    }
    await p.responder.s!.expectSilence(QUIET_MS, { why: 'nothing malformed is relayed' });
  });
});

describe('leave and the end of a room', () => {
  it('leave: the partner gets peer-disconnected "left" on both sockets, the leaver idle; the room is gone for both', async () => {
    const p = await pairJoined(server);
    const { initiator: leaver, responder: other } = p;
    leaver.s!.send({ event: 'leave', room_code: p.room });
    await leaver.m.expect('idle', { what: '"idle" on the matching socket of the member who left' });
    assert.equal((await other.m.expect('peer-disconnected')).reason, 'left');
    assert.equal((await other.s!.expect('peer-disconnected')).reason, 'left');
    for (const s of [leaver, other]) {
      s.s!.send({ event: 'join', room_code: p.room });
      await s.s!.expectError('invalid-room', { what: `invalid-room for joining an ended room (${s === leaver ? 'leaver' : 'partner'})` });
      s.s!.send(candidate(p.room, 1));
      await s.s!.expectError('invalid-room', { what: 'invalid-room for a signal to an ended room' });
    }
  });

  for (const [event, reason] of [
    ['next', 'skip'],
    ['stop', 'left'],
  ] as const) {
    it(`${event} on the matching socket ends the room: the joined partner's signalling socket gets "${reason}"`, async () => {
      const p = await pairJoined(server);
      p.a.m.send({ event });
      await p.a.m.expect(event === 'next' ? 'waiting' : 'idle');
      assert.equal((await p.b.m.expect('peer-disconnected')).reason, reason);
      assert.equal((await p.b.s!.expect('peer-disconnected')).reason, reason);
      p.b.s!.send({ event: 'join', room_code: p.room });
      await p.b.s!.expectError('invalid-room');
    });
  }

  it('a room that ended before a member joined: join gets invalid-room', async () => {
    const p = await pair(server);
    p.a.m.send({ event: 'next' });
    await p.a.m.expect('waiting');
    await p.b.m.expect('peer-disconnected');
    const s = await openSignalling(server, p.b.id, p.b.token);
    s.send({ event: 'join', room_code: p.room });
    await s.expectError('invalid-room');
  });

  it('a partner whose signalling socket is open but not joined is told on the matching socket only', async () => {
    const p = await pair(server);
    await join(server, p.initiator, p.room, { role: 'initiator', peer: p.responder.id, peerJoined: false });
    const idle = await openSignalling(server, p.responder.id, p.responder.token);
    p.initiator.s!.send({ event: 'leave', room_code: p.room });
    assert.equal((await p.responder.m.expect('peer-disconnected')).reason, 'left');
    await idle.expectSilence(QUIET_MS, { why: 'the socket never joined the room' });
  });
});

describe('authentication', () => {
  it('an upgrade without a valid token for that session is refused (401 or close 4001)', async () => {
    const a = await register(server);
    const b = await register(server);
    const base = signallingUrl(server, a.id, a.token).split('?')[0]!;
    await expectUnauthorized(base, 'signalling', 'signalling without a token');
    await expectUnauthorized(`${base}?token=`, 'signalling', 'signalling with an empty token');
    await expectUnauthorized(`${base}?token=${'A'.repeat(43)}`, 'signalling', 'signalling with a made-up token');
    await expectUnauthorized(signallingUrl(server, a.id, b.token), 'signalling', "signalling with another session's token");
    await expectUnauthorized(signallingUrl(server, 'nobody-here', a.token), 'signalling', 'signalling for an unknown id');
  });
});
