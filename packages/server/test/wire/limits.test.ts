// Frame rules and limits: MAX_FRAME_BYTES (1009), binary and malformed frames
// (bad-request, socket stays open), message rate (rate-limited, then 1008),
// and the registration rate (429 with retry_after) on both ways of registering.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { HttpError } from '@dyad/protocol';
import { oneTripUrl, openSignalling, pair, pairJoined, register, type Session } from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient, sleep, type Channel } from '../support/ws-client.js';

const MAX_FRAME_BYTES = 1024;
const REGISTER_LIMIT = 5;
const QUIET_MS = 300;

let server: RunningServer; // small frames, default message rates
let registerLimited: RunningServer;
let defaults: RunningServer; // the shipped registration limit

before(async () => {
  [server, registerLimited, defaults] = await Promise.all([
    startServer({ MAX_FRAME_BYTES: String(MAX_FRAME_BYTES), MESSAGE_RATE_PER_SEC: undefined, MESSAGE_FLOOD_PER_SEC: undefined }),
    startServer({ REGISTER_RATE_PER_MIN: String(REGISTER_LIMIT) }),
    startServer({ REGISTER_RATE_PER_MIN: undefined }),
  ]);
});
after(async () => {
  await WireClient.closeAll();
  await Promise.all([server?.stop(), registerLimited?.stop(), defaults?.stop()]);
});
afterEach(() => WireClient.closeAll());

/** A chat frame whose JSON text is exactly `bytes` long. */
function chatOfBytes(bytes: number): string {
  const empty = JSON.stringify({ event: 'chat', message: '' });
  return JSON.stringify({ event: 'chat', message: 'x'.repeat(bytes - empty.length) });
}

describe('MAX_FRAME_BYTES', () => {
  it('a frame of exactly MAX_FRAME_BYTES is accepted', async () => {
    const { a, b } = await pair(server);
    const frame = chatOfBytes(MAX_FRAME_BYTES);
    assert.equal(Buffer.byteLength(frame), MAX_FRAME_BYTES);
    a.m.send(frame);
    assert.equal((await b.m.expect('chat')).message.length, MAX_FRAME_BYTES - 29);
  });

  it('a larger frame closes the matching socket with 1009', async () => {
    const { a } = await pair(server);
    a.m.send(chatOfBytes(MAX_FRAME_BYTES + 1));
    await a.m.expectClose(1009);
  });

  it('a larger frame closes the signalling socket with 1009 (signal data has no limit of its own)', async () => {
    const p = await pairJoined(server);
    const sig = { event: 'signal', room_code: p.room, type: 'offer', data: { sdp: '' } };
    const pad = MAX_FRAME_BYTES + 1 - JSON.stringify(sig).length;
    p.initiator.s!.send(JSON.stringify({ ...sig, data: { sdp: 'v'.repeat(pad) } }));
    await p.initiator.s!.expectClose(1009);
  });

  it('a larger frame on a one-trip socket closes it with 1009', async () => {
    const m = await WireClient.open(oneTripUrl(server), { channel: 'matching', label: 'one-trip' });
    await m.expect('session');
    m.send('x'.repeat(MAX_FRAME_BYTES * 4));
    await m.expectClose(1009, undefined);
  });
});

describe('bad frames get bad-request and the socket stays open', () => {
  const common: [string, string | Buffer][] = [
    ['a binary frame', Buffer.from(JSON.stringify({ event: 'next' }))],
    ['invalid JSON', '{"event":'],
    ['a JSON array', '[{"event":"next"}]'],
    ['a JSON string', '"next"'],
    ['JSON null', 'null'],
    ['a JSON number', '42'],
    ['an object without event', '{}'],
    ['a numeric event', '{"event":5}'],
    ['a null event', '{"event":null}'],
    ['an unknown event', '{"event":"dance"}'],
    ['an empty frame', ''],
  ];

  async function checkAll(client: WireClient, frames: [string, string | Buffer][]): Promise<void> {
    for (const [what, frame] of frames) {
      client.send(frame);
      await client.expectError('bad-request', { what: `bad-request for ${what}` });
    }
    assert.ok(client.isOpen, `${client.label} stays open`);
  }

  it('on the matching socket', async () => {
    const { a, b } = await pair(server);
    await checkAll(a.m, [
      ...common,
      ['chat with a numeric message', '{"event":"chat","message":5}'],
      ['typing with a string', '{"event":"typing","typing":"yes"}'],
      ['report with a numeric reason', '{"event":"report","reason":1}'],
      ['a signalling event', '{"event":"join","room_code":"r"}'],
    ]);
    await b.m.expectSilence(0, { why: 'nothing bad is relayed' });
    // null counts as absent, and the socket still serves.
    a.m.send({ event: 'chat', message: 'still here', peer: null });
    assert.equal((await b.m.expect('chat')).message, 'still here');
  });

  it('on the signalling socket', async () => {
    const p = await pairJoined(server);
    const s = p.initiator.s!;
    await checkAll(s, [
      ...common,
      ['a signal of unknown type', JSON.stringify({ event: 'signal', room_code: p.room, type: 'x', data: {} })],
      ['a matching event', '{"event":"next"}'],
    ]);
    s.send({ event: 'join', room_code: p.room, target: null, type: null });
    assert.equal((await s.expect('verified')).room_code, p.room, 'a join with null target/type still works');
  });

  it('on a signalling socket that has not joined', async () => {
    const p = await pair(server);
    const s = await openSignalling(server, p.a.id, p.a.token);
    await checkAll(s, common);
  });
});

describe('message rate', () => {
  it('a burst over MESSAGE_RATE_PER_SEC gets rate-limited errors, and the socket stays open below the flood limit', async () => {
    const { a, b } = await pair(server);
    for (let i = 0; i < 150; i++) a.m.send({ event: 'typing', typing: i % 2 === 0 });
    const got = await a.m.drain(800);
    const limited = got.filter((m) => m.event === 'error' && m.code === 'rate-limited').length;
    assert.ok(limited >= 1, `150 frames at once (limit 100/s): expected rate-limited errors, got ${JSON.stringify(got.slice(0, 3))}`);
    assert.ok(a.m.isOpen, '150 frames is not a flood (300/s)');
    await b.m.drain(0);
    await sleep(1_100);
    a.m.send({ event: 'chat', message: 'calm again' });
    assert.equal((await b.m.expect('chat', { skip: ['typing'] })).message, 'calm again');
  });

  for (const channel of ['matching', 'signalling'] as Channel[]) {
    it(`a flood on the ${channel} socket gets rate-limited, then close 1008`, async () => {
      const p = await pairJoined(server);
      const c = channel === 'matching' ? p.a.m : p.a.s!;
      const frame = channel === 'matching' ? '{"event":"typing","typing":true}' : '{"event":"bogus"}';
      for (let i = 0; i < 1_000 && c.isOpen; i++) c.send(frame);
      const closed = await c.expectClose(1008, 3_000);
      assert.ok(
        closed.before.some((m) => m.event === 'error' && m.code === 'rate-limited'),
        `expected rate-limited errors before close 1008, got ${closed.before.length} messages: ${JSON.stringify(closed.before.slice(-3))}`,
      );
    });
  }

  it("a real person's pace passes with the default limits: 50 candidates in a second, typing at keystroke rate", async () => {
    const p = await pairJoined(server);
    p.initiator.s!.send({ event: 'signal', room_code: p.room, type: 'offer', data: {} });
    await p.responder.s!.expect('signal');
    for (let i = 0; i < 50; i++) {
      p.responder.s!.send({ event: 'signal', room_code: p.room, type: 'candidate', data: { i } });
    }
    for (let i = 0; i < 50; i++) {
      assert.equal((await p.initiator.s!.expect('signal', { what: `candidate ${i} of 50` })).data.i, i);
    }
    for (let i = 0; i < 15; i++) {
      p.a.m.send({ event: 'typing', typing: true });
      await sleep(60);
    }
    const relayed = await p.b.m.drain(QUIET_MS);
    assert.equal(relayed.filter((m) => m.event === 'typing').length, 15);
    await p.responder.s!.expectSilence(0, { why: 'no rate-limited at a person\'s pace' });
    await p.a.m.expectSilence(0, { why: 'no rate-limited at a person\'s pace' });
  });
});

describe('registration rate per client address', () => {
  async function expect429(res: { status: number; body: string }, what: string): Promise<void> {
    assert.equal(res.status, 429, `${what}: expected HTTP 429, got HTTP ${res.status} ${res.body.slice(0, 200)}`);
    const body = JSON.parse(res.body) as unknown;
    assert.ok(HttpError.safeParse(body).success, `${what}: ${res.body}`);
    const { status, retry_after } = body as { status: string; retry_after?: number };
    assert.equal(status, 'error');
    assert.ok(Number.isInteger(retry_after) && (retry_after ?? 0) >= 1, `${what}: retry_after is whole seconds >= 1, got ${retry_after}`);
  }

  it(`POST /register and one-trip starts count together; beyond ${REGISTER_LIMIT}/min both get 429 with retry_after`, async () => {
    const opened: Session[] = [];
    for (let i = 0; i < REGISTER_LIMIT; i++) {
      if (i % 2 === 0) await register(registerLimited);
      else {
        const m = await WireClient.open(oneTripUrl(registerLimited), { channel: 'matching', label: `one-trip ${i}` });
        const s = await m.expect('session');
        opened.push({ id: s.id, token: s.token, m });
      }
    }
    const res = await request(`${registerLimited.matching}/register`, { method: 'POST', body: {} });
    await expect429({ status: res.status, body: res.text }, `POST /register number ${REGISTER_LIMIT + 1}`);
    const attempt = await WireClient.connect(oneTripUrl(registerLimited), { channel: 'matching', label: 'one-trip over the limit' });
    if (attempt.kind === 'open') {
      await attempt.client.close();
      assert.fail('one-trip over the registration limit: expected HTTP 429, the upgrade was accepted');
    }
    await expect429(attempt, 'one-trip over the limit');
  });

  it('the default limit lets 20 registrations a minute from one address through, and stops 500', async () => {
    let accepted = 0;
    let first429 = 0;
    for (let i = 0; i < 500 && first429 === 0; i++) {
      const res = await request(`${defaults.matching}/register`, { method: 'POST', body: {} });
      if (res.status === 200) accepted++;
      else if (res.status === 429) first429 = i + 1;
      else assert.fail(`POST /register: ${describeResponse(res)}`);
    }
    assert.ok(accepted >= 20, `only ${accepted} registrations accepted before 429`);
    assert.ok(first429 > 0, 'no 429 within 500 registrations in a minute');
  });
});
