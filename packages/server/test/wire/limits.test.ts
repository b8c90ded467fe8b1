// Frame rules and limits, on both stores: MAX_FRAME_BYTES (1009), binary and
// malformed frames (bad-request, socket stays open), message rate
// (rate-limited, then 1008), and the per-address limits: registrations (429
// with retry_after on both ways of registering), open sockets, and `next`.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { HttpError } from '@dyad/protocol';
import {
  arrive,
  enter,
  expectMatched,
  expectRefused,
  freshAddress,
  freshIpv6Block,
  from,
  join,
  matchingUrl,
  oneTripUrl,
  openMatching,
  openSignalling,
  pair,
  pairJoined,
  register,
  signallingUrl,
  type Via,
} from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import type { RunningServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import { WireClient, sleep, type Channel } from '../support/ws-client.js';

const MAX_FRAME_BYTES = 1024;
const REGISTER_LIMIT = 5;
const SOCKET_LIMIT = 4;
const NEXT_LIMIT = 3;
const QUIET_MS = 300;
/** How long a freed socket place may take to show: the server counts a socket until its TCP connection has closed. */
const RELEASE_MS = 2_000;

after(() => stopPrivateRedis());
afterEach(() => WireClient.closeAll());

/** A chat frame whose JSON text is exactly `bytes` long. */
function chatOfBytes(bytes: number): string {
  const empty = JSON.stringify({ event: 'chat', message: '' });
  return JSON.stringify({ event: 'chat', message: 'x'.repeat(bytes - empty.length) });
}

const COMMON_BAD_FRAMES: [string, string | Buffer][] = [
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

async function expectBadRequests(client: WireClient, frames: [string, string | Buffer][]): Promise<void> {
  for (const [what, frame] of frames) {
    client.send(frame);
    await client.expectError('bad-request', { what: `bad-request for ${what}` });
  }
  assert.ok(client.isOpen, `${client.label} stays open`);
}

/** A 429 refusal: the contract's error body, with retry_after in whole seconds, at least 1. */
function check429(body: HttpError, what: string): void {
  assert.equal(body.status, 'error', `${what}: status`);
  assert.ok(Number.isInteger(body.retry_after) && (body.retry_after ?? 0) >= 1, `${what}: retry_after is whole seconds >= 1, got ${body.retry_after}`);
}

/** POST /register that must get 429. */
async function expectRegister429(srv: RunningServer, via: Via, what: string): Promise<void> {
  const res = await request(`${srv.matching}/register`, { method: 'POST', body: {}, headers: via.headers ?? {} });
  assert.equal(res.status, 429, `${what}: expected HTTP 429, got ${describeResponse(res)}`);
  const body = HttpError.safeParse(res.json());
  assert.ok(body.success, `${what}: ${describeResponse(res)}`);
  check429(body.data, what);
}

/** A one-trip start that must get 429. */
async function expectOneTrip429(srv: RunningServer, via: Via, what: string): Promise<void> {
  check429(await expectRefused(oneTripUrl(srv), { channel: 'matching', label: what, ...via }, 429), what);
}

for (const store of STORES) {
  describe(`limits on the ${store} store`, () => {
    let server: RunningServer; // small frames, default message rates
    let registerLimited: RunningServer; // few registrations a minute; X-Forwarded-For not believed
    let limited: RunningServer; // TRUST_PROXY, so each test speaks from addresses of its own; low limits
    let defaults: RunningServer; // the shipped registration limit
    let wideIpv6: RunningServer; // as limited, with IPv6 clients counted by their /48
    let fewPending: RunningServer; // TRUST_PROXY, PENDING_REGISTRATIONS_MAX 2

    before(async () => {
      [server, registerLimited, limited, defaults, wideIpv6, fewPending] = await Promise.all([
        startServerOn(store, {
          MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
          MESSAGE_RATE_PER_SEC: undefined,
          MESSAGE_BURST: undefined,
          MESSAGE_FLOOD_PER_SEC: undefined,
          MESSAGE_RATE_PER_ADDR_PER_SEC: undefined,
          MESSAGE_BURST_PER_ADDR: undefined,
        }),
        startServerOn(store, { REGISTER_RATE_PER_MIN: String(REGISTER_LIMIT) }),
        startServerOn(store, {
          TRUST_PROXY: 'true',
          REGISTER_RATE_PER_MIN: String(REGISTER_LIMIT),
          MAX_SOCKETS_PER_ADDR: String(SOCKET_LIMIT),
          NEXT_RATE_PER_MIN: String(NEXT_LIMIT),
        }),
        startServerOn(store, { REGISTER_RATE_PER_MIN: undefined }),
        startServerOn(store, { TRUST_PROXY: 'true', REGISTER_RATE_PER_MIN: String(REGISTER_LIMIT), IPV6_PREFIX_LENGTH: '48' }),
        startServerOn(store, { TRUST_PROXY: 'true', PENDING_REGISTRATIONS_MAX: '2' }),
      ]);
    });
    after(async () => {
      await WireClient.closeAll();
      await Promise.all([server?.stop(), registerLimited?.stop(), limited?.stop(), defaults?.stop(), wideIpv6?.stop(), fewPending?.stop()]);
    });

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

      it('a larger frame closes the signalling socket with 1009 (signal data has no byte limit of its own)', async () => {
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
      it('on the matching socket', async () => {
        const { a, b } = await pair(server);
        await expectBadRequests(a.m, [
          ...COMMON_BAD_FRAMES,
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
        await expectBadRequests(s, [
          ...COMMON_BAD_FRAMES,
          ['a signal of unknown type', JSON.stringify({ event: 'signal', room_code: p.room, type: 'x', data: {} })],
          ['a matching event', '{"event":"next"}'],
        ]);
        s.send({ event: 'join', room_code: p.room, target: null, type: null });
        assert.equal((await s.expect('verified')).room_code, p.room, 'a join with null target/type still works');
      });

      it('on a signalling socket that has not joined', async () => {
        const p = await pair(server);
        const s = await openSignalling(server, p.a.id, p.a.token);
        await expectBadRequests(s, COMMON_BAD_FRAMES);
      });
    });

    describe('message rate', () => {
      it('a burst over MESSAGE_BURST gets rate-limited errors, and the socket stays open below the flood limit', async () => {
        const { a, b } = await pair(server);
        // 290 at once: past the burst of 200 unless the server took 0.9 s to read them (100/s refill), below the flood (300 in a second).
        for (let i = 0; i < 290; i++) a.m.send({ event: 'typing', typing: i % 2 === 0 });
        // On a loaded machine the answer may take a while: wait for it, not a fixed time.
        const refused = await a.m.expectError('rate-limited', { timeoutMs: 5_000, what: 'rate-limited for 290 frames at once (a burst of 200, then 100/s)' });
        assert.match(refused.message, /messages at once/);
        await a.m.drain(200);
        assert.ok(a.m.isOpen, '290 frames is not a flood (300 in a second)');
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

      it("a real person's pace passes with the default limits: an answer and 100 candidates at once, typing at keystroke rate", async () => {
        const p = await pairJoined(server);
        p.initiator.s!.send({ event: 'signal', room_code: p.room, type: 'offer', data: { sdp: 'o' } });
        await p.responder.s!.expect('signal');
        p.responder.s!.send({ event: 'signal', room_code: p.room, type: 'answer', data: { sdp: 'a' } });
        for (let i = 0; i < 100; i++) {
          p.responder.s!.send({ event: 'signal', room_code: p.room, type: 'candidate', data: { candidate: `c${i}`, i } });
        }
        assert.equal((await p.initiator.s!.expect('signal', { what: 'the answer' })).type, 'answer');
        for (let i = 0; i < 100; i++) {
          assert.equal((await p.initiator.s!.expect('signal', { what: `candidate ${i} of 100` })).data.i, i);
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
      it(`POST /register and one-trip starts count together; beyond ${REGISTER_LIMIT}/min both get 429 with retry_after, whatever X-Forwarded-For says (TRUST_PROXY off)`, async () => {
        for (let i = 0; i < REGISTER_LIMIT; i++) {
          if (i % 2 === 0) await register(registerLimited);
          else await (await WireClient.open(oneTripUrl(registerLimited), { channel: 'matching', label: `one-trip ${i}` })).expect('session');
        }
        await expectRegister429(registerLimited, {}, `POST /register number ${REGISTER_LIMIT + 1}`);
        await expectOneTrip429(registerLimited, {}, 'one-trip over the limit');
        // Without TRUST_PROXY the header is anyone's to write: it must not make a new address.
        for (const forged of ['203.0.113.1', '203.0.113.2, 203.0.113.3', 'garbage']) {
          await expectRegister429(registerLimited, from(forged), `POST /register with a forged X-Forwarded-For: ${forged}`);
          await expectOneTrip429(registerLimited, from(forged), `one-trip with a forged X-Forwarded-For: ${forged}`);
        }
      });

      it('with TRUST_PROXY each forwarded address has a limit of its own, and only the entry the proxy added counts', async () => {
        const [spent, other] = [freshAddress(), freshAddress()];
        for (let i = 0; i < REGISTER_LIMIT; i++) await register(limited, {}, from(spent));
        await expectRegister429(limited, from(spent), `registration ${REGISTER_LIMIT + 1} from ${spent}`);
        // A proxy that appends puts the address it saw last: entries before it are the client's own words.
        await expectRegister429(limited, from(`${other}, ${spent}`), 'an entry written before the one the proxy added');
        await register(limited, {}, from(other));
        await register(limited, {}, from(`${spent}, ${freshAddress()}`));
      });

      it(`an IPv6 client counts as its /64 (IPV6_PREFIX_LENGTH): ${REGISTER_LIMIT} addresses of one /64, however written, spend its limit, the next /64 has its own; an IPv4-mapped address is its IPv4 address`, async () => {
        const block = freshIpv6Block();
        // One subscriber's /64: each start from an address never used before.
        const ownNetwork = [`${block}:0::1`, `${block.toUpperCase()}:0:0:0:0:2`, `${block}:0:ffff:ffff:ffff:ffff`, `${block}:0:abcd::9`, `${block}:0::5`];
        for (const address of ownNetwork.slice(0, REGISTER_LIMIT)) await register(limited, {}, from(address));
        await expectRegister429(limited, from(`${block}:0:1234::77`), 'POST /register from a new address of a /64 that spent its limit');
        await expectOneTrip429(limited, from(`${block}:0:1234::78`), 'one-trip from a new address of a /64 that spent its limit');
        await register(limited, {}, from(`${block}:1::1`));

        const v4 = freshAddress();
        for (let i = 0; i < REGISTER_LIMIT; i++) await register(limited, {}, from(i % 2 === 0 ? v4 : `::ffff:${v4}`));
        await expectRegister429(limited, from(v4), 'an IPv4 address that spent its limit, partly written IPv4-mapped');
        await expectRegister429(limited, from(`::ffff:${v4}`), 'the same address written IPv4-mapped');
        // A proxy that writes the client's port: each port is still that address.
        await expectRegister429(limited, from(`${v4}:20001`), 'the same address with a port');
        await expectRegister429(limited, from(`[${block}:0::9]:443`), 'an address of the spent /64 in brackets with a port');
      });

      it('IPV6_PREFIX_LENGTH=48: two /64s of one /48 share a limit, the next /48 has its own', async () => {
        const block = freshIpv6Block();
        for (let i = 0; i < REGISTER_LIMIT; i++) await register(wideIpv6, {}, from(`${block}:${i}::1`));
        await expectRegister429(wideIpv6, from(`${block}:ffff::1`), 'another /64 of a /48 that spent its limit');
        await register(wideIpv6, {}, from(`${freshIpv6Block()}:0::1`));
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

    describe('registrations waiting for their socket, from all addresses', () => {
      it('past PENDING_REGISTRATIONS_MAX (2) of them, POST /register gets 503 with retry_after; a one-trip start is served; a socket that opens frees a place', async () => {
        const first = await register(fewPending, {}, from(freshAddress()));
        await register(fewPending, {}, from(freshAddress()));
        const res = await request(`${fewPending.matching}/register`, { method: 'POST', body: {}, headers: from(freshAddress()).headers ?? {} });
        assert.equal(res.status, 503, describeResponse(res));
        const body = HttpError.parse(res.json());
        assert.ok((body.retry_after ?? 0) >= 1, 'retry_after in whole seconds');
        const started = await WireClient.open(oneTripUrl(fewPending), { channel: 'matching', label: 'one-trip while registrations wait' });
        await started.expect('session');
        const m = await openMatching(fewPending, first.id, first.token);
        await m.expect('waiting');
        await register(fewPending, {}, from(freshAddress()));
      });
    });

    describe('open sockets per client address', () => {
      it(`matching and signalling sockets count together; beyond MAX_SOCKETS_PER_ADDR (${SOCKET_LIMIT}) the upgrade gets 429 with retry_after; a closed socket frees its place`, async () => {
        const via = from(freshAddress());
        // A pair from one address, both joined: 2 matching + 2 signalling sockets.
        const a = await enter(limited, {}, via);
        const b = await arrive(limited, {}, via);
        const mb = await expectMatched(b.m);
        await a.m.expect('matched');
        const [initiator, responder] = mb.initiator ? [b, a] : [a, b];
        await join(limited, initiator, mb.room_code, { role: 'initiator', peer: responder.id, peerJoined: false }, via);
        await join(limited, responder, mb.room_code, { role: 'responder', peer: initiator.id, peerJoined: true }, via);

        const c = await register(limited, {}, via);
        const over = (what: string) => ({ label: `${what} over the socket limit`, ...via });
        check429(await expectRefused(matchingUrl(limited, c.id, c.token), { channel: 'matching', ...over('matching') }, 429), 'matching');
        check429(await expectRefused(signallingUrl(limited, c.id, c.token), { channel: 'signalling', ...over('signalling') }, 429), 'signalling');
        check429(await expectRefused(oneTripUrl(limited), { channel: 'matching', ...over('one-trip') }, 429), 'one-trip');

        // Another address is not affected, and the refusals took no place of their own.
        const elsewhere = await enter(limited, {}, from(freshAddress()));
        await elsewhere.m.close(1000);
        await a.s!.close(1000);
        const deadline = Date.now() + RELEASE_MS;
        for (;;) {
          const attempt = await WireClient.connect(matchingUrl(limited, c.id, c.token), { channel: 'matching', ...via });
          if (attempt.kind === 'open') break;
          assert.equal(attempt.status, 429, `after a socket closed: HTTP ${attempt.status} ${attempt.body}`);
          assert.ok(Date.now() < deadline, `the place of a closed socket was not freed within ${RELEASE_MS} ms`);
          await sleep(50);
        }
      });
    });

    describe('next rate per client address', () => {
      it(`beyond NEXT_RATE_PER_MIN (${NEXT_LIMIT}) a next gets rate-limited and changes nothing; the count is per address, not per session`, async () => {
        const via = from(freshAddress());
        const a = await enter(limited, {}, via);
        for (let i = 0; i < NEXT_LIMIT; i++) {
          a.m.send({ event: 'next' });
          await a.m.expect('waiting', { what: `"waiting" for next ${i + 1} of ${NEXT_LIMIT}` });
        }
        a.m.send({ event: 'next' });
        await a.m.expectError('rate-limited', { what: `rate-limited for next ${NEXT_LIMIT + 1}` });
        assert.ok(a.m.isOpen, 'a refused next leaves the socket open');

        // Still in the pool: someone from another address is paired with it.
        const b = await arrive(limited, {}, from(freshAddress()));
        assert.equal((await expectMatched(b.m)).peer, a.id);
        await a.m.expect('matched');

        // A new session from the same address shares the count; it stays matched.
        b.m.send({ event: 'next' });
        await b.m.expect('waiting', { what: 'the other address is not limited' });
        assert.equal((await a.m.expect('peer-disconnected')).reason, 'skip');
        const again = await register(limited, {}, via);
        const a2 = await openMatching(limited, again.id, again.token, again.id, via);
        assert.equal((await expectMatched(a2)).peer, b.id);
        await b.m.expect('matched');
        a2.send({ event: 'next' });
        await a2.expectError('rate-limited', { what: 'rate-limited for a new session of the same address' });
        a2.send({ event: 'chat', message: 'still together' });
        assert.equal((await b.m.expect('chat')).message, 'still together');
      });
    });
  });
}
