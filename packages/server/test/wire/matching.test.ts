// The matching socket, row by row: matched, chat, typing, next, stop, close,
// report, interest / lang / mode pairing, the no-re-pair and fairness rules,
// and the one-trip start.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { HttpError } from '@dyad/protocol';
import {
  arrive,
  enter,
  estimatedBits,
  expectMatched,
  expectUnauthorized,
  join,
  matchingUrl,
  oneTrip,
  oneTripUrl,
  pair,
  register,
  uniqueName,
} from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient, sleep } from '../support/ws-client.js';

const INTEREST_TIMEOUT_MS = 600;
/** Long enough to be sure nothing is on its way on loopback. */
const QUIET_MS = 300;

let server: RunningServer;
let rules: RunningServer; // long interest timeout and short fair wait, for the ordering rules
let shortCooldown: RunningServer;
let quickFallback: RunningServer;

before(async () => {
  [server, rules, shortCooldown, quickFallback] = await Promise.all([
    startServer({ INTEREST_TIMEOUT_MS: String(INTEREST_TIMEOUT_MS) }),
    startServer({ INTEREST_TIMEOUT_MS: '5000', FAIR_WAIT_MS: '300' }),
    startServer({ REPAIR_COOLDOWN_MS: '300' }),
    startServer({ INTEREST_TIMEOUT_MS: '100' }),
  ]);
});
after(async () => {
  await WireClient.closeAll();
  await Promise.all([server?.stop(), rules?.stop(), shortCooldown?.stop(), quickFallback?.stop()]);
});
// Any session left waiting would be paired with the next test's sessions.
afterEach(() => WireClient.closeAll());

const nowS = (): number => Date.now() / 1000;

describe('matched', () => {
  it('carries room_code (>= 128 bits), initiator (exactly one true), peer, common_interests, mode, ice_servers', async () => {
    const p = await pair(server);
    for (const m of [p.ma, p.mb]) {
      assert.ok(estimatedBits(m.room_code) >= 128, `room_code looks shorter than 128 random bits: length ${m.room_code.length}`);
      assert.deepEqual(m.common_interests, []);
      assert.equal(m.mode, 'video', 'mode defaults to video');
      assert.ok(Array.isArray(m.ice_servers));
      assert.notEqual(m.resumed, true, 'a first match is not "resumed"');
    }
    assert.ok(!p.room.includes(p.a.id) && !p.room.includes(p.b.id), 'room_code is not derived from the ids');
  });

  it('each room gets its own room_code', async () => {
    const rooms = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const p = await pair(server);
      rooms.add(p.room);
      await Promise.all([p.a.m.close(), p.b.m.close()]);
    }
    assert.equal(rooms.size, 3);
  });
});

describe('chat and typing', () => {
  it('chat is relayed to the partner with sender, message and timestamp, in order, both ways; "peer" is ignored', async () => {
    const { a, b } = await pair(server);
    const lines = ['hi', 'how are you?', 'ünïcødé ✓', '  spaces kept  ', 'last'];
    for (const message of lines) a.m.send({ event: 'chat', message, peer: 'someone-else' });
    for (const message of lines) {
      const got = await b.m.expect('chat', { what: `chat "${message}"` });
      assert.equal(got.sender, a.id);
      assert.equal(got.message, message);
      assert.ok(Math.abs(got.timestamp - nowS()) < 5, `timestamp is Unix seconds, got ${got.timestamp}`);
    }
    b.m.send({ event: 'chat', message: 'back' });
    const back = await a.m.expect('chat');
    assert.deepEqual([back.sender, back.message], [b.id, 'back']);
  });

  it('chat of 2000 code points passes intact; 2001, empty, missing or non-string message is bad-request', async () => {
    const { a, b } = await pair(server);
    const longest = '😀'.repeat(2000); // 2000 code points, 4000 UTF-16 units, 8000 bytes
    a.m.send({ event: 'chat', message: longest });
    assert.equal((await b.m.expect('chat')).message, longest);
    for (const [what, frame] of [
      ['2001 code points', { event: 'chat', message: 'x'.repeat(2001) }],
      ['an empty message', { event: 'chat', message: '' }],
      ['no message', { event: 'chat' }],
      ['a number', { event: 'chat', message: 5 }],
    ] as const) {
      a.m.send(frame);
      await a.m.expectError('bad-request', { what: `bad-request for chat with ${what}` });
    }
    await b.m.expectSilence(QUIET_MS, { why: 'nothing invalid is relayed' });
  });

  it('typing is relayed with sender; a non-boolean typing is bad-request', async () => {
    const { a, b } = await pair(server);
    a.m.send({ event: 'typing', typing: true });
    assert.deepEqual(await b.m.expect('typing'), { event: 'typing', sender: a.id, typing: true });
    a.m.send({ event: 'typing', typing: false });
    assert.deepEqual(await b.m.expect('typing'), { event: 'typing', sender: a.id, typing: false });
    a.m.send({ event: 'typing', typing: 'yes' });
    await a.m.expectError('bad-request');
  });

  it('chat carries seq (1, 2… per sender and room); a resumption with chat_seen=<room>:<seq> is not sent the kept lines up to it; a malformed chat_seen is refused with 400', async () => {
    const { a, b, room: roomCode } = await pair(server);
    b.m.send({ event: 'chat', message: 'one' });
    const one = await a.m.expect('chat');
    assert.equal(one.seq, 1);
    await a.m.drop();
    for (const message of ['two', 'three']) b.m.send({ event: 'chat', message });
    await sleep(QUIET_MS);
    const again = await WireClient.open(`${matchingUrl(server, a.id, a.token)}&chat_seen=${roomCode}:2`, { channel: 'matching', label: 'resumed with chat_seen' });
    assert.equal((await again.expect('matched')).resumed, true);
    const three = await again.expect('chat');
    assert.deepEqual([three.message, three.seq], ['three', 3], 'line 2 is not sent again');
    await again.expectSilence(QUIET_MS, { why: 'nothing else was kept' });
    for (const bad of ['x', `${roomCode}:`, `${roomCode}:-1`, `${roomCode}:01`, `:3`, `${roomCode}:1e3`, `a b:1`]) {
      const attempt = await WireClient.connect(`${matchingUrl(server, a.id, a.token)}&chat_seen=${encodeURIComponent(bad)}`, { channel: 'matching', label: `chat_seen ${bad}` });
      if (attempt.kind === 'open') {
        await attempt.client.close();
        assert.fail(`chat_seen=${bad}: expected HTTP 400, the upgrade was accepted`);
      }
      assert.equal(attempt.status, 400, `chat_seen=${bad}`);
    }
  });

  it('chat with no partner gets no-partner (waiting and idle); typing with no partner is ignored', async () => {
    const a = await enter(server);
    a.m.send({ event: 'typing', typing: true });
    await a.m.expectSilence(QUIET_MS, { why: 'typing with no partner is ignored' });
    a.m.send({ event: 'chat', message: 'anyone?' });
    await a.m.expectError('no-partner', { what: 'no-partner while waiting' });
    a.m.send({ event: 'stop' });
    await a.m.expect('idle');
    a.m.send({ event: 'chat', message: 'anyone?' });
    await a.m.expectError('no-partner', { what: 'no-partner while idle' });
  });
});

describe('next and stop', () => {
  it('next: the sender gets waiting, the partner peer-disconnected "skip" and is idle (not queued again)', async () => {
    const { a, b } = await pair(server);
    a.m.send({ event: 'next' });
    await a.m.expect('waiting');
    const pd = await b.m.expect('peer-disconnected');
    assert.equal(pd.reason, 'skip');
    assert.equal(typeof pd.message, 'string');
    // Idle: a newcomer is paired with a, never with b.
    const c = await arrive(server);
    const mc = await expectMatched(c.m);
    assert.equal(mc.peer, a.id, 'the newcomer pairs with the session that sent next');
    await a.m.expect('matched');
    b.m.send({ event: 'chat', message: 'still there?' });
    await b.m.expectError('no-partner', { what: 'no-partner: b is idle after the skip' });
  });

  it('stop: the sender gets idle, the partner peer-disconnected "left"; neither is in the pool', async () => {
    const { a, b } = await pair(server);
    a.m.send({ event: 'stop' });
    await a.m.expect('idle');
    assert.equal((await b.m.expect('peer-disconnected')).reason, 'left');
    const c = await enter(server);
    await c.m.expectSilence(QUIET_MS, { why: 'both idle sessions are out of the pool' });
    await a.m.expectSilence(0);
    await b.m.expectSilence(0);
  });

  it('stop while waiting leaves the pool', async () => {
    const a = await enter(server);
    a.m.send({ event: 'stop' });
    await a.m.expect('idle');
    const c = await enter(server);
    await c.m.expectSilence(QUIET_MS, { why: 'the stopped session is out of the pool' });
  });

  it('next from idle queues again and pairs with the next arrival', async () => {
    const { a, b } = await pair(server);
    a.m.send({ event: 'stop' });
    await a.m.expect('idle');
    await b.m.expect('peer-disconnected');
    b.m.send({ event: 'next' });
    await b.m.expect('waiting');
    const c = await arrive(server);
    assert.equal((await expectMatched(c.m)).peer, b.id);
    assert.equal((await b.m.expect('matched')).peer, c.id);
  });
});

describe('closing the matching socket', () => {
  for (const [what, code] of [
    ['code 1000', 1000],
    ['no code (1005)', null],
  ] as const) {
    it(`close with ${what} is a leave: the partner gets "left", the token opens nothing more, the name is free`, async () => {
      const name = uniqueName('leaver');
      const p = await pair(server, { name });
      await p.a.m.close(code);
      assert.equal((await p.b.m.expect('peer-disconnected')).reason, 'left');
      await expectUnauthorized(matchingUrl(server, p.a.id, p.a.token), 'matching', 'reopening a session that left');
      const ice = await request(`${server.matching}/ice-servers`, { headers: { authorization: `Bearer ${p.a.token}` } });
      assert.equal(ice.status, 401, `GET /ice-servers with the token of a session that left: ${describeResponse(ice)}`);
      await register(server, { name });
    });
  }

  // The close handshake completing is all a client can observe of its leave, so
  // from then on the session must be gone; ten rounds, as a late leave is a race.
  it('a session that closed with 1000 is gone once the close handshake completes: a next right after never pairs with it', async () => {
    for (let round = 0; round < 10; round++) {
      const { a, b } = await pair(server);
      a.m.send({ event: 'next' });
      await a.m.expect('waiting');
      await b.m.expect('peer-disconnected');
      await a.m.close(1000);
      b.m.send({ event: 'next' });
      await b.m.expect('waiting');
      await b.m.expectSilence(150, { why: `round ${round}: the only other session in the pool had already closed with 1000` });
      await WireClient.closeAll();
    }
  });

  it('close 1000 while waiting leaves the pool', async () => {
    const a = await enter(server);
    await a.m.close(1000);
    const c = await enter(server);
    await c.m.expectSilence(QUIET_MS, { why: 'the closed session is out of the pool' });
  });
});

describe('report', () => {
  it('while matched: no answer, the room goes on; reason optional, up to 200 characters', async () => {
    const { a, b } = await pair(server);
    for (const frame of [
      { event: 'report', reason: 'spam' },
      { event: 'report' },
      { event: 'report', reason: null },
      { event: 'report', reason: 'r'.repeat(200) },
    ]) {
      a.m.send(frame);
    }
    await a.m.expectSilence(QUIET_MS, { why: 'a report has no answer' });
    await b.m.expectSilence(0, { why: 'the reported is told nothing' });
    a.m.send({ event: 'chat', message: 'after report' });
    assert.equal((await b.m.expect('chat')).message, 'after report', 'a report does not end the room');
  });

  it('a reason over 200 characters, or not a string, is bad-request', async () => {
    const { a } = await pair(server);
    a.m.send({ event: 'report', reason: 'r'.repeat(201) });
    await a.m.expectError('bad-request');
    a.m.send({ event: 'report', reason: 3 });
    await a.m.expectError('bad-request');
  });

  it('with no current or last partner: no-partner (waiting and idle)', async () => {
    const a = await enter(server);
    a.m.send({ event: 'report', reason: 'nobody' });
    await a.m.expectError('no-partner', { what: 'no-partner for a report while waiting, never matched' });
    a.m.send({ event: 'stop' });
    await a.m.expect('idle');
    a.m.send({ event: 'report' });
    await a.m.expectError('no-partner', { what: 'no-partner for a report while idle, never matched' });
  });

  it('after the room ended (within REPAIR_COOLDOWN_MS) the last partner can be reported, from waiting or idle', async () => {
    const { a, b } = await pair(server);
    a.m.send({ event: 'next' });
    await a.m.expect('waiting');
    await b.m.expect('peer-disconnected');
    a.m.send({ event: 'report', reason: 'from waiting' });
    b.m.send({ event: 'report', reason: 'from idle' });
    await a.m.expectSilence(QUIET_MS, { why: 'the report of the last partner is accepted' });
    await b.m.expectSilence(0, { why: 'the report of the last partner is accepted' });
  });

  it('after REPAIR_COOLDOWN_MS the last partner cannot be reported any more: no-partner', async () => {
    const { a, b } = await pair(shortCooldown);
    a.m.send({ event: 'stop' });
    await a.m.expect('idle');
    await b.m.expect('peer-disconnected');
    await sleep(600);
    a.m.send({ event: 'report' });
    await a.m.expectError('no-partner', { what: 'no-partner once REPAIR_COOLDOWN_MS (300 ms) passed' });
  });

  it('the reporter and the reported are never paired again, even with nobody else waiting', async () => {
    const { a, b } = await pair(server);
    a.m.send({ event: 'report', reason: 'rude' });
    a.m.send({ event: 'next' });
    await a.m.expect('waiting');
    await b.m.expect('peer-disconnected');
    b.m.send({ event: 'next' });
    await b.m.expect('waiting');
    await a.m.expectSilence(INTEREST_TIMEOUT_MS, { why: 'reporter and reported stay apart' });
    await b.m.expectSilence(0, { why: 'reporter and reported stay apart' });
    // Both are still in the pool, for anyone else.
    const c = await arrive(server);
    const first = (await expectMatched(c.m)).peer;
    const d = await arrive(server);
    const second = (await expectMatched(d.m)).peer;
    assert.deepEqual([first, second].sort(), [a.id, b.id].sort());
  });
});

describe('interests, lang and mode', () => {
  it('a shared interest pairs at once; common_interests lists it (compared case-insensitively, trimmed)', async () => {
    const a = await enter(server, { interests: ['Music', ' Go '] });
    const b = await arrive(server, { interests: ['go', 'art'] });
    const mb = await expectMatched(b.m, 500);
    const ma = await a.m.expect('matched');
    assert.equal(mb.peer, a.id);
    for (const m of [ma, mb]) {
      assert.deepEqual(m.common_interests.map((s) => s.trim().toLowerCase()), ['go'], `common_interests: ${JSON.stringify(m.common_interests)}`);
    }
  });

  it('no shared interest: no pairing before INTEREST_TIMEOUT_MS, then anyone of the mode, with common_interests []', async () => {
    await enter(server, { interests: ['chess'] });
    const started = Date.now();
    const b = await arrive(server, { interests: ['surfing'] });
    await b.m.expectSilence(INTEREST_TIMEOUT_MS - 250, { skip: ['waiting'], why: 'interests narrow pairing until the timeout' });
    const mb = await expectMatched(b.m, 2_000);
    const waited = Date.now() - started;
    assert.ok(waited >= INTEREST_TIMEOUT_MS - 100, `paired after ${waited} ms, before INTEREST_TIMEOUT_MS`);
    assert.deepEqual(mb.common_interests, []);
  });

  it('a session with interests does not accept one without until its timeout, though the other accepts anyone', async () => {
    const a = await enter(server, { interests: ['knitting'] });
    const b = await arrive(server);
    await b.m.expectSilence(INTEREST_TIMEOUT_MS - 250, { skip: ['waiting'], why: 'both sides must accept each other' });
    assert.equal((await expectMatched(b.m, 2_000)).peer, a.id);
  });

  it('during the interest window, a newcomer sharing an interest is preferred', async () => {
    const a = await enter(server, { interests: ['chess'] });
    const b = await enter(server, { interests: ['surfing'] });
    const c = await arrive(server, { interests: ['CHESS'] });
    const mc = await expectMatched(c.m, 500);
    assert.equal(mc.peer, a.id, 'the newcomer pairs with the session sharing its interest');
    assert.deepEqual(mc.common_interests.map((s) => s.toLowerCase()), ['chess']);
    await b.m.expectSilence(QUIET_MS, { why: 'the other session keeps waiting' });
  });

  it('lang narrows pairing to the same language, compared case-insensitively', async () => {
    const a = await enter(server, { lang: 'pt-BR' });
    const b = await enter(server, { lang: 'fr' });
    await b.m.expectSilence(QUIET_MS, { why: 'pt-BR and fr do not pair within the timeout' });
    const c = await arrive(server, { lang: 'PT-br' });
    assert.equal((await expectMatched(c.m, 500)).peer, a.id);
    await b.m.expectSilence(0);
  });

  it('different languages pair after INTEREST_TIMEOUT_MS', async () => {
    await enter(server, { lang: 'de' });
    const b = await arrive(server, { lang: 'ja' });
    await b.m.expectSilence(INTEREST_TIMEOUT_MS - 250, { skip: ['waiting'], why: 'lang narrows pairing until the timeout' });
    await expectMatched(b.m, 2_000);
  });

  // The fallback hangs on a timer; one that fires a hair early by the clock the
  // rule reads must not leave two sessions waiting forever. Many short rounds.
  it('the fallback always happens: 25 rounds of two sessions that accept nobody until their timeouts (100 ms)', async () => {
    const stuck: string[] = [];
    for (let round = 0; round < 25; round++) {
      const a = await enter(quickFallback, { lang: 'de' });
      await sleep((round % 4) * 15);
      const b = await arrive(quickFallback, { interests: ['x'] });
      try {
        assert.equal((await expectMatched(b.m, 1_000)).peer, a.id);
      } catch {
        stuck.push(`round ${round} (arrived ${(round % 4) * 15} ms apart)`);
      }
      await WireClient.closeAll();
    }
    assert.deepEqual(stuck, [], `${stuck.length} of 25 pairs were never paired within 1 s of arrival (INTEREST_TIMEOUT_MS=100)`);
  });

  it('only sessions of the same mode are paired; matched.mode tells which', async () => {
    const video = await enter(server, { mode: 'video' });
    const text = await enter(server, { mode: 'text' });
    await video.m.expectSilence(QUIET_MS, { why: 'video and text never pair' });
    const t2 = await arrive(server, { mode: 'text' });
    const mt = await expectMatched(t2.m);
    assert.deepEqual([mt.peer, mt.mode], [text.id, 'text']);
    assert.equal((await text.m.expect('matched')).mode, 'text');
    const v2 = await arrive(server);
    const mv = await expectMatched(v2.m);
    assert.deepEqual([mv.peer, mv.mode], [video.id, 'video']);
  });

  it('the interest fallback never crosses modes', async () => {
    const video = await enter(server, { interests: ['a1'] });
    await enter(server, { mode: 'text', interests: ['b1'] });
    await video.m.expectSilence(INTEREST_TIMEOUT_MS + 500, { why: 'different modes, even after the interest timeout' });
  });
});

describe('pairing order: no re-pair within REPAIR_COOLDOWN_MS, fairness after FAIR_WAIT_MS', () => {
  // Interests make the other two waiting sessions unacceptable to each other,
  // so the arriving session has exactly two eligible choices; a random server
  // picks the "wrong" one half of the time, so five rounds catch it 31 times in 32.
  it('a session just paired is not paired again with its last partner while someone else is eligible', async () => {
    for (let round = 0; round < 5; round++) {
      const [x, y] = [`x${round}`, `y${round}`];
      const a = await enter(rules, { interests: [x] });
      const b = await arrive(rules, { interests: [x, y] });
      await expectMatched(b.m);
      await a.m.expect('matched');
      a.m.send({ event: 'next' });
      await a.m.expect('waiting');
      await b.m.expect('peer-disconnected');
      const c = await enter(rules, { interests: [y] }); // shares nothing with a: both wait
      b.m.send({ event: 'next' });
      const mb = await expectMatched(b.m);
      assert.equal(mb.peer, c.id, `round ${round}: paired again with the last partner while another was eligible`);
      await a.m.expectSilence(0);
      await WireClient.closeAll();
    }
  });

  it('a session waiting longer than FAIR_WAIT_MS is paired before a newer one', async () => {
    for (let round = 0; round < 5; round++) {
      const [x, y] = [`p${round}`, `q${round}`];
      const old = await enter(rules, { interests: [x] });
      await sleep(450);
      const young = await enter(rules, { interests: [y] });
      const c = await arrive(rules, { interests: [x, y] });
      const mc = await expectMatched(c.m);
      assert.equal(mc.peer, old.id, `round ${round}: the newer session was paired before one waiting longer than FAIR_WAIT_MS`);
      await young.m.expectSilence(0);
      await WireClient.closeAll();
    }
  });
});

describe('one-trip start: GET /ws?name=&mode=&interests=&lang=', () => {
  it('sends session {id, token} first, then waiting; a second one pairs with it', async () => {
    const name = uniqueName('ot');
    const a = await oneTrip(server, { name, mode: 'text', interests: 'Music, go', lang: 'en' });
    assert.ok(estimatedBits(a.token) >= 128, 'token has at least 128 random bits');
    await a.m.expect('waiting');
    const b = await oneTrip(server, { mode: 'text', interests: 'GO', lang: 'EN' });
    const mb = await expectMatched(b.m);
    const ma = await a.m.expect('matched');
    assert.deepEqual([ma.peer, mb.peer, ma.mode], [b.id, a.id, 'text']);
    assert.deepEqual(mb.common_interests.map((s) => s.toLowerCase()), ['go'], 'interests are comma-separated, trimmed');
  });

  it('without a query: a server-made id and token', async () => {
    const a = await oneTrip(server);
    assert.ok(a.id.length > 0);
    await a.m.expect('waiting');
  });

  it('the token serves as ever: /ice-servers, the signalling socket, resumption', async () => {
    const a = await oneTrip(server);
    await a.m.expect('waiting');
    const b = await oneTrip(server);
    const mb = await expectMatched(b.m);
    await a.m.expect('matched');
    const ice = await request(`${server.matching}/ice-servers`, { headers: { authorization: `Bearer ${a.token}` } });
    assert.equal(ice.status, 200, describeResponse(ice));
    const aIsInitiator = !mb.initiator;
    await join(server, a, mb.room_code, { role: aIsInitiator ? 'initiator' : 'responder', peer: b.id, peerJoined: false });
    // A dropped socket (no close frame) keeps the session; the token reopens it.
    await a.m.drop();
    const again = await WireClient.open(matchingUrl(server, a.id, a.token), { channel: 'matching', label: 'resumed one-trip' });
    const resumed = await again.expect('matched');
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.room_code, mb.room_code);
  });

  it('refusals are the HTTP answer to the upgrade with the POST /register status and body (400, 409)', async () => {
    const taken = uniqueName('taken');
    await register(server, { name: taken });
    const cases: [string, Record<string, string>, number, string][] = [
      ['a bad name', { name: 'no spaces' }, 400, 'error'],
      ['a name too long', { name: 'n'.repeat(33) }, 400, 'error'],
      ['an unknown mode', { mode: 'audio' }, 400, 'error'],
      ['a bad lang', { lang: 'e' }, 400, 'error'],
      ['11 interests', { interests: Array.from({ length: 11 }, (_, i) => `i${i}`).join(',') }, 400, 'error'],
      ['a taken name', { name: taken }, 409, 'exists'],
    ];
    for (const [what, query, status, bodyStatus] of cases) {
      const attempt = await WireClient.connect(oneTripUrl(server, query), { channel: 'matching', label: `one-trip with ${what}` });
      if (attempt.kind === 'open') {
        const first = await attempt.client.next('anything').catch(() => undefined);
        await attempt.client.close();
        assert.fail(`one-trip with ${what}: expected HTTP ${status}, the upgrade was accepted (first message ${JSON.stringify(first && { ...first, token: undefined })})`);
      }
      assert.equal(attempt.status, status, `one-trip with ${what}: HTTP status`);
      let body: unknown;
      try {
        body = JSON.parse(attempt.body);
      } catch {
        assert.fail(`one-trip with ${what}: the refusal body is not JSON: ${attempt.body.slice(0, 200)}`);
      }
      assert.ok(HttpError.safeParse(body).success, `one-trip with ${what}: body ${attempt.body}`);
      assert.equal((body as { status: string }).status, bodyStatus, `one-trip with ${what}: body.status`);
    }
  });

  it('a one-trip name is taken for POST /register too', async () => {
    const name = uniqueName('ot');
    await oneTrip(server, { name });
    const res = await request(`${server.matching}/register`, { method: 'POST', body: { name } });
    assert.equal(res.status, 409, describeResponse(res));
  });
});

