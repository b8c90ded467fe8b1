// Message limits at the edge, on both stores: the token bucket that lets a
// browser's burst of ICE candidates through (PROTOCOL.md v1.2), the rate that
// follows the session and its address rather than the socket (a reopened
// socket, a flood, many sessions of one address), and the cap on what the
// server holds for a client that stops reading.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  expectEndedUnauthorized,
  expectRefused,
  freshAddress,
  from,
  matchingUrl,
  openSignalling,
  pair,
  pairJoined,
  signallingUrl,
  type Pair,
  type Session,
} from '../support/dyad.js';
import { request } from '../support/http.js';
import type { RunningServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import { WAIT_MS, WireClient, sleep, type AnyEvent, type Channel } from '../support/ws-client.js';

/** The shipped limits (README): MESSAGE_BURST, MESSAGE_RATE_PER_SEC. */
const BURST = 200;
const RATE_PER_SEC = 100;
/** Candidates a browser on a machine with many interfaces sends within a second (PROTOCOL.md v1.2). */
const CANDIDATES = 100;
/** Chats per socket before the attacker of finding W2 opens the next one. */
const CHATS_PER_SOCKET = 90;
const MAX_SOCKETS = 40;
/** Per-address limits of the `shared` server; each session alone could send more. */
const ADDR_BURST = 50;
const ADDR_RATE_PER_SEC = 50;
const SESSIONS_PER_ADDR = 3;
const CHATS_PER_SESSION = 40;
/** The `slow` server: what it may hold for one socket, and its SIGNAL_BUFFER. */
const SEND_BUFFER_BYTES = 256 * 1024;
const SLOW_SIGNAL_BUFFER = 8;
/** Signals the sender of the slow-reader test sends at most, about 15 KB each: far past any kernel buffer. */
const MAX_BIG_SIGNALS = 3_000;
const QUIET_MS = 300;
const MIB = 1024 * 1024;

after(() => stopPrivateRedis());
afterEach(() => WireClient.closeAll());

const candidate = (room: string, i: number, pad = '') => ({
  event: 'signal',
  room_code: room,
  type: 'candidate',
  data: { candidate: `candidate:${i} 1 udp 2122260223 192.0.2.${i % 250} ${50_000 + i} typ host${pad}`, sdpMid: '0', sdpMLineIndex: 0, i },
});

const isRateLimited = (m: AnyEvent): boolean => m.event === 'error' && m.code === 'rate-limited';

/** The signals a socket received, in order, and everything else it got meanwhile. */
async function collectSignals(client: WireClient, n: number, what: string): Promise<{ signals: AnyEvent[]; other: AnyEvent[] }> {
  const signals: AnyEvent[] = [];
  const other: AnyEvent[] = [];
  while (signals.length < n) {
    const m = await client.next(`${what}: signal ${signals.length + 1} of ${n}`);
    if (m.event === 'signal') signals.push(m);
    else other.push(m);
  }
  return { signals, other };
}

/** A counter of this process's /metrics, 0 when it has no sample yet. */
async function metric(server: RunningServer, name: string, labels: string): Promise<number> {
  const res = await request(`${server.matching}/metrics`);
  assert.equal(res.status, 200, `/metrics: HTTP ${res.status}`);
  const line = res.text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

for (const store of STORES) {
  describe(`message limits on the ${store} store`, () => {
    let defaults: RunningServer; // every shipped message limit, the per-address ones included
    let shared: RunningServer; // TRUST_PROXY; an address allows less than its sessions together would
    let slow: RunningServer; // a small send buffer cap; a sender may send fast
    let bytes: RunningServer; // an address's bytes: a burst of 1 MiB

    before(async () => {
      [defaults, shared, slow, bytes] = await Promise.all([
        startServerOn(store, {
          MESSAGE_RATE_PER_ADDR_PER_SEC: undefined,
          MESSAGE_BURST_PER_ADDR: undefined,
          MESSAGE_BYTES_PER_ADDR_PER_SEC: undefined,
          MESSAGE_BYTES_BURST_PER_ADDR: undefined,
        }),
        startServerOn(store, {
          TRUST_PROXY: 'true',
          MESSAGE_RATE_PER_SEC: String(ADDR_RATE_PER_SEC),
          MESSAGE_BURST: String(CHATS_PER_SESSION + 10),
          MESSAGE_FLOOD_PER_SEC: '200',
          MESSAGE_RATE_PER_ADDR_PER_SEC: String(ADDR_RATE_PER_SEC),
          MESSAGE_BURST_PER_ADDR: String(ADDR_BURST),
        }),
        startServerOn(store, {
          SIGNAL_BUFFER: String(SLOW_SIGNAL_BUFFER),
          SOCKET_SEND_BUFFER_BYTES: String(SEND_BUFFER_BYTES),
          MESSAGE_RATE_PER_SEC: '1000',
          MESSAGE_BURST: '1000',
          MESSAGE_FLOOD_PER_SEC: '2000',
          // Only the send buffer cap may drop the reader here, not a missed ping.
          PING_INTERVAL_MS: '120000',
        }),
        startServerOn(store, { MESSAGE_BYTES_PER_ADDR_PER_SEC: String(128 * 1024), MESSAGE_BYTES_BURST_PER_ADDR: String(MIB) }),
      ]);
    });
    after(async () => {
      await WireClient.closeAll();
      await Promise.all([defaults?.stop(), shared?.stop(), slow?.stop(), bytes?.stop()]);
    });

    it(`a browser's burst passes with the default limits: join, an offer and ${CANDIDATES} candidates from one side, an answer and ${CANDIDATES} from the other, all relayed in order, none rate-limited`, async () => {
      const p = await pair(defaults);
      const [ini, res] = [p.initiator, p.responder];
      res.s = await openSignalling(defaults, res.id, res.token);
      res.s.send({ event: 'join', room_code: p.room });
      await res.s.expect('verified');
      ini.s = await openSignalling(defaults, ini.id, ini.token);
      // At full speed, as a browser sends them: no waiting for `verified` or an answer.
      ini.s.send({ event: 'join', room_code: p.room });
      ini.s.send({ event: 'signal', room_code: p.room, type: 'offer', data: { type: 'offer', sdp: 'v=0 offer' } });
      for (let i = 0; i < CANDIDATES; i++) ini.s.send(candidate(p.room, i));
      await res.s.expect('peer-joined');
      assert.equal((await res.s.expect('signal', { what: 'the offer' })).type, 'offer');
      res.s.send({ event: 'signal', room_code: p.room, type: 'answer', data: { type: 'answer', sdp: 'v=0 answer' } });
      for (let i = 0; i < CANDIDATES; i++) res.s.send(candidate(p.room, i));

      const toRes = await collectSignals(res.s, CANDIDATES, 'the responder');
      assert.deepEqual(toRes.other, [], 'nothing but signals reaches the responder');
      assert.deepEqual(toRes.signals.map((m) => (m.event === 'signal' ? m.data.i : undefined)), [...Array(CANDIDATES).keys()]);
      await ini.s.expect('verified');
      const toIni = await collectSignals(ini.s, CANDIDATES + 1, 'the initiator');
      assert.deepEqual(toIni.other, [], 'nothing but signals reaches the initiator');
      assert.equal(toIni.signals[0]?.event === 'signal' && toIni.signals[0].type, 'answer');
      assert.deepEqual(toIni.signals.slice(1).map((m) => (m.event === 'signal' ? m.data.i : undefined)), [...Array(CANDIDATES).keys()]);
      await ini.s.expectSilence(QUIET_MS, { why: 'no rate-limited for a browser burst' });
      await res.s.expectSilence(0, { why: 'no rate-limited for a browser burst' });
    });

    it(`reopening the matching socket after every ${CHATS_PER_SOCKET} chats gets no more chats to the partner than MESSAGE_BURST + MESSAGE_RATE_PER_SEC x elapsed (finding W2)`, async () => {
      const { a, b } = await pair(defaults);
      const sockets = [a.m];
      let m = a.m;
      let sent = 0;
      const relayed = (): number => b.m.history.filter((e) => e.event === 'chat').length;
      const refused = (): number => sockets.reduce((n, c) => n + c.history.filter(isRateLimited).length, 0);
      const started = Date.now();
      for (;;) {
        for (let i = 0; i < CHATS_PER_SOCKET && m.isOpen; i++, sent++) m.send({ event: 'chat', message: `chat ${sent}` });
        // Every chat is either relayed or refused: once all are, the socket has nothing left that a replacement would cut off.
        const deadline = Date.now() + WAIT_MS;
        while (relayed() + refused() < sent && m.isOpen && Date.now() < deadline) await sleep(5);
        if (sockets.length >= MAX_SOCKETS) break;
        // A new socket for the same session: the old one is replaced (4002), and with it went the old per-socket count.
        const attempt = await WireClient.connect(matchingUrl(defaults, a.id, a.token), { channel: 'matching', label: `${a.id}/matching #${sockets.length + 1}` });
        if (attempt.kind === 'refused') {
          assert.equal(attempt.status, 401, `reopening: HTTP ${attempt.status} ${attempt.body}`);
          break; // the session ended: it flooded
        }
        m = attempt.client;
        sockets.push(m);
        // Once the server has taken the new socket (it re-sends the state), every chat on it is the session's own.
        const first = await m.next('the state re-sent to the new socket');
        if (first.event !== 'matched') break;
      }
      await b.m.drain(QUIET_MS);
      const chats = relayed();
      const elapsedSec = (Date.now() - started) / 1_000;
      const bound = BURST + RATE_PER_SEC * elapsedSec + 10;
      assert.ok(chats > 0, 'chats within the limit reach the partner');
      assert.ok(
        chats <= bound,
        `${chats} of ${sent} chats sent over ${sockets.length} sockets reached the partner in ${elapsedSec.toFixed(2)} s: more than ${BURST} + ${RATE_PER_SEC}/s x elapsed (${Math.floor(bound)})`,
      );
    });

    for (const channel of ['matching', 'signalling'] as Channel[]) {
      it(`a flood on the ${channel} socket gets rate-limited, then close 1008, and ends the session as a clean leave: the partner gets "left", the token opens nothing more (401)`, async () => {
        const p = await pairJoined(defaults);
        const [flooder, other] = channel === 'matching' ? [p.a.m, p.a.s!] : [p.a.s!, p.a.m];
        const frame = channel === 'matching' ? '{"event":"typing","typing":true}' : '{"event":"bogus"}';
        for (let i = 0; i < 1_000 && flooder.isOpen; i++) flooder.send(frame);
        const closed = await flooder.expectClose(1008, 3_000);
        assert.ok(closed.before.some(isRateLimited), `rate-limited errors come before close 1008, got ${JSON.stringify(closed.before.slice(-3))}`);
        // The session's other socket is told its session ended.
        await expectEndedUnauthorized(other);
        assert.equal((await p.b.m.expect('peer-disconnected', { skip: ['typing'] })).reason, 'left');
        assert.equal((await p.b.s!.expect('peer-disconnected')).reason, 'left');
        await expectRefused(matchingUrl(defaults, p.a.id, p.a.token), { channel: 'matching', label: 'reopening after a flood' }, 401);
        await expectRefused(signallingUrl(defaults, p.a.id, p.a.token), { channel: 'signalling', label: 'signalling after a flood' }, 401);
        // The partner carries on.
        p.b.m.send({ event: 'next' });
        await p.b.m.expect('waiting');
      });
    }

    it('an address is counted in bytes too (MESSAGE_BYTES_BURST_PER_ADDR, here 1 MiB): 120 signals of 12 KB at once get about 1 MiB through, the rest rate-limited (fifth review, H2)', async () => {
      const p = await pairJoined(bytes);
      const [ini, res] = [p.initiator.s!, p.responder.s!];
      const big = 'x'.repeat(12_000);
      const n = 120;
      for (let i = 0; i < n; i++) ini.send(candidate(p.room, i, big));
      const relayed = (): number => res.history.filter((m) => m.event === 'signal').length;
      const refused = (): AnyEvent[] => ini.history.filter(isRateLimited);
      const deadline = Date.now() + 2 * WAIT_MS;
      while (relayed() + refused().length < n && Date.now() < deadline) await sleep(10);
      const through = relayed();
      assert.ok(through * big.length <= 1.1 * MIB, `${through} signals of 12 KB got through at once: more than MESSAGE_BYTES_BURST_PER_ADDR`);
      assert.ok(through * big.length >= 0.8 * MIB, `${through} signals of 12 KB got through: the burst lets about 1 MiB through`);
      assert.equal(through + refused().length, n, 'every signal refused got rate-limited');
      for (const e of refused()) assert.match((e as { message: string }).message, /MESSAGE_BYTES_PER_ADDR_PER_SEC/);
    });

    it(`sessions of one address share MESSAGE_RATE_PER_ADDR_PER_SEC: ${SESSIONS_PER_ADDR} sessions with room in their own buckets get no more through than the address's`, async () => {
      const via = from(freshAddress());
      const pairs: Pair[] = [];
      for (let i = 0; i < SESSIONS_PER_ADDR; i++) pairs.push(await pair(shared, {}, {}, [via, from(freshAddress())]));
      const started = Date.now();
      for (const p of pairs) for (let i = 0; i < CHATS_PER_SESSION; i++) p.a.m.send({ event: 'chat', message: `chat ${i}` });
      const count = (pick: (p: Pair) => WireClient, keep: (m: AnyEvent) => boolean): number =>
        pairs.reduce((n, p) => n + pick(p).history.filter(keep).length, 0);
      const relayed = (): number => count((p) => p.b.m, (m) => m.event === 'chat');
      const refused = (): number => count((p) => p.a.m, isRateLimited);
      // Every chat is either relayed or refused; wait (bounded) until all are accounted for.
      const deadline = Date.now() + 2 * WAIT_MS;
      while (relayed() + refused() < SESSIONS_PER_ADDR * CHATS_PER_SESSION && Date.now() < deadline) await sleep(10);
      await sleep(QUIET_MS);
      const [chats, limited] = [relayed(), refused()];
      const elapsedSec = (Date.now() - started) / 1_000;
      const bound = ADDR_BURST + ADDR_RATE_PER_SEC * elapsedSec + 5;
      assert.ok(
        chats <= bound,
        `${chats} of ${SESSIONS_PER_ADDR * CHATS_PER_SESSION} chats from one address got through in ${elapsedSec.toFixed(2)} s: more than ${ADDR_BURST} + ${ADDR_RATE_PER_SEC}/s x elapsed (${Math.floor(bound)})`,
      );
      assert.equal(chats + limited, SESSIONS_PER_ADDR * CHATS_PER_SESSION, 'every chat refused got rate-limited');

      // Another address is not held back by it.
      const q = await pair(shared, {}, {}, [from(freshAddress()), from(freshAddress())]);
      for (let i = 0; i < CHATS_PER_SESSION; i++) q.a.m.send({ event: 'chat', message: `chat ${i}` });
      for (let i = 0; i < CHATS_PER_SESSION; i++) assert.equal((await q.b.m.expect('chat')).message, `chat ${i}`);
      await q.a.m.expectSilence(0, { why: 'another address is not rate-limited' });
    });

    it(`a reader that stops reading is dropped once the server holds SOCKET_SEND_BUFFER_BYTES (${SEND_BUFFER_BYTES}) for it, and the sender is never held up (finding W3)`, async () => {
      const p = await pairJoined(slow);
      const sender = p.initiator.s!;
      const reader: Session = p.responder;
      const readerTcp = (reader.s!.ws as unknown as { _socket: Socket })._socket;
      readerTcp.pause();
      const pad = ' '.repeat(15_000);
      const before = await metric(slow, 'dyad_rejected_total', 'code="send-buffer-full"');
      let sent = 0;
      let dropped = false;
      // 50 signals every 100 ms: half the sender's MESSAGE_RATE_PER_SEC, about 7.5 MB a second.
      while (!dropped && sent < MAX_BIG_SIGNALS) {
        assert.ok(sender.isOpen, `the sender's socket closed after ${sent} signals`);
        for (let i = 0; i < 50; i++, sent++) sender.send(candidate(p.room, sent, pad));
        await sleep(100);
        dropped = (await metric(slow, 'dyad_rejected_total', 'code="send-buffer-full"')) > before;
      }
      assert.ok(dropped, `the server kept buffering for a reader that reads nothing: ${sent} signals of 15 KB sent, no socket dropped`);

      // The sender was never held up: open, never rate-limited (past the drop it hears buffer-full, as for any absent member).
      const toSender = await sender.drain(QUIET_MS);
      assert.ok(sender.isOpen, "the sender's socket stays open");
      assert.deepEqual(toSender.filter((m) => !(m.event === 'error' && m.code === 'buffer-full')), [], 'the sender gets nothing but buffer-full');
      sender.send({ event: 'join', room_code: p.room });
      assert.equal((await sender.expect('verified', { skip: ['error'] })).peer_joined, true, 'the reader keeps its place in its grace period');

      // The server ended the reader's connection: once it reads again, what was on the way drains, then it ends without a close frame.
      readerTcp.resume();
      await reader.s!.expectClose(1006, 10_000, 'the connection ended by the server (1006)');
      const ready = await request(`${slow.matching}/readyz`);
      assert.equal(ready.status, 200, 'the server stays ready');

      // Its grace period started as for any drop: the reader resumes and gets what was kept for it.
      reader.s = await openSignalling(slow, reader.id, reader.token);
      reader.s.send({ event: 'join', room_code: p.room });
      assert.equal((await reader.s.expect('verified')).peer_joined, true);
      const kept = await reader.s.drain(QUIET_MS);
      assert.ok(kept.length <= SLOW_SIGNAL_BUFFER && kept.every((m) => m.event === 'signal'), `at most SIGNAL_BUFFER kept signals, got ${kept.length}`);
      sender.send(candidate(p.room, MAX_BIG_SIGNALS));
      assert.equal((await reader.s.expect('signal')).type, 'candidate');
    });

    /**
     * Pairs whose responders stop reading (their TCP sockets paused), each
     * sent the same stream of 15 KB candidates by its initiator, in turn, until
     * the server drops one of them (bounded). Returns the drop counters then.
     */
    const starve = async (server: RunningServer, readers: string[]): Promise<{ pairs: Pair[]; sent: number; drops: Record<string, number> }> => {
      const pairs: Pair[] = [];
      for (const addr of readers) pairs.push(await pairJoined(server, [from(addr), from(addr)]));
      for (const p of pairs) (p.responder.s!.ws as unknown as { _socket: Socket })._socket.pause();
      const codes = ['send-buffer-full', 'address-send-buffer-full', 'send-buffers-full'];
      const drops = async (): Promise<Record<string, number>> =>
        Object.fromEntries(await Promise.all(codes.map(async (c) => [c, await metric(server, 'dyad_rejected_total', `code="${c}"`)] as const)));
      const pad = ' '.repeat(15_000);
      let sent = 0;
      for (;;) {
        for (let i = 0; i < 10; i++, sent++) for (const p of pairs) p.initiator.s!.send(candidate(p.room, sent, pad));
        await sleep(50);
        const now = await drops();
        if (Object.values(now).some((n) => n > 0)) return { pairs, sent, drops: now };
        assert.ok(sent < MAX_BIG_SIGNALS, `no reader dropped after ${sent} signals of 15 KB to each`);
      }
    };
    const BACKLOG_ENV = {
      TRUST_PROXY: 'true',
      SIGNAL_BUFFER: String(SLOW_SIGNAL_BUFFER),
      SOCKET_SEND_BUFFER_BYTES: String(MIB),
      MESSAGE_RATE_PER_SEC: '1000',
      MESSAGE_BURST: '1000',
      MESSAGE_FLOOD_PER_SEC: '2000',
      PING_INTERVAL_MS: '120000',
    };

    it('the sockets of one address that do not read are dropped once the server holds SOCKET_SEND_BUFFER_PER_ADDR_BYTES for them together, though each holds less than its own cap; another address is not', async () => {
      // Two readers of one address, one of another, the same stream to each: the address's pair
      // passes 1.25 MiB together when each holds about 0.63 MiB, well under the 1 MiB of one socket.
      const server = await startServerOn(store, { ...BACKLOG_ENV, SOCKET_SEND_BUFFER_PER_ADDR_BYTES: String(1.25 * MIB) });
      try {
        const [x, y] = [freshAddress(), freshAddress()];
        const { pairs, sent, drops } = await starve(server, [x, x, y]);
        assert.deepEqual(drops, { 'send-buffer-full': 0, 'address-send-buffer-full': drops['address-send-buffer-full'], 'send-buffers-full': 0 }, `after ${sent} signals to each`);
        assert.ok(drops['address-send-buffer-full']! >= 1 && drops['address-send-buffer-full']! <= 2, `the address's readers dropped: ${JSON.stringify(drops)}`);
        // The reader of the other address was never dropped: reading again, it gets every signal, in order.
        const other = pairs[2]!.responder.s!;
        (other.ws as unknown as { _socket: Socket })._socket.resume();
        const { signals } = await collectSignals(other, sent, 'the other address');
        assert.deepEqual(signals.map((m) => (m.event === 'signal' ? (m.data as { i: number }).i : -1)), [...Array(sent).keys()]);
        assert.ok(other.isOpen, "the other address's reader stays connected");
      } finally {
        await server.stop();
      }
    });

    it('sockets that do not read are dropped once the server holds SOCKET_SEND_BUFFER_TOTAL_BYTES for all of them, though each address holds less than its budget', async () => {
      // Three readers of three addresses: together past 1.5 MiB when each holds about 0.5 MiB.
      const server = await startServerOn(store, { ...BACKLOG_ENV, SOCKET_SEND_BUFFER_PER_ADDR_BYTES: String(MIB), SOCKET_SEND_BUFFER_TOTAL_BYTES: String(1.5 * MIB) });
      try {
        const { sent, drops } = await starve(server, [freshAddress(), freshAddress(), freshAddress()]);
        assert.deepEqual({ ...drops, 'send-buffers-full': drops['send-buffers-full']! > 0 }, { 'send-buffer-full': 0, 'address-send-buffer-full': 0, 'send-buffers-full': true }, `after ${sent} signals to each`);
        const ready = await request(`${server.matching}/readyz`);
        assert.equal(ready.status, 200, 'the server stays ready');
      } finally {
        await server.stop();
      }
    });
  });
}
