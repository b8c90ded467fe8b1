// The legacy protocols (docs/LEGACY.md) on one server, on each store: the
// cases of legacy.cases.ts with both clients of a case on that server. Two
// processes on one Redis: redis/legacy.test.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { request } from '../support/http.js';
import { runUntilExit, startServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import type { Target } from '../support/legacy.js';
import { WireClient, upgradeRequest } from '../support/ws-client.js';
import { expectRefused } from '../support/dyad.js';
import type { RunningServer } from '../support/server.js';
import { freshAddress, freshName, legacyCases } from './legacy.cases.js';
import { expectGm, expectRvcMatched, gmFind, openGm, rvcStart, via } from '../support/legacy.js';

/** The settings the cases expect: both protocols, client addresses from X-Forwarded-For, a ban from one report. */
export const LEGACY_ENV = {
  LEGACY_PROTOCOLS: 'random-video-chat,go-megle',
  TRUST_PROXY: 'true',
  REPORT_BAN_THRESHOLD: '1',
  REPORT_MIN_ROOM_MS: '0',
} as const;

const targetOf = (s: RunningServer, label: string): Target => ({
  matching: s.matching,
  matchingWs: s.matchingWs,
  signallingWs: s.signallingWs,
  webWs: s.web.replace(/^http/, 'ws'),
  label,
});

after(() => stopPrivateRedis());
afterEach(() => WireClient.closeAll());

describe('LEGACY_PROTOCOLS', () => {
  it('is off by default: no random-video-chat route or socket, no go-megle socket', async () => {
    const server = await startServer();
    try {
      const posted = await request(`${server.matching}/registerForMatching`, { method: 'POST', body: { name: 'alice' } });
      assert.equal(posted.status, 404);
      // Dyad's own POST /register is untouched: a token for the session, which the socket needs.
      const registered = await request(`${server.matching}/register`, { method: 'POST', body: { name: 'alice' } });
      assert.equal(registered.status, 200);
      for (const url of [`${server.matchingWs}/ws/alice`, `${server.signallingWs}/ws/alice`, `${server.web.replace(/^http/, 'ws')}/ws`]) {
        const attempt = await WireClient.connect(url, { channel: 'matching' });
        assert.equal(attempt.kind, 'refused', url);
      }
    } finally {
      await server.stop();
    }
  });

  it('names only protocols it knows', async () => {
    const run = await runUntilExit({ LEGACY_PROTOCOLS: 'random-video-chat,omegle' });
    assert.equal(run.code, 2);
    assert.match(run.output, /LEGACY_PROTOCOLS: unknown protocol "omegle"/);
  });
});

for (const store of STORES) {
  describe(`legacy protocols on the ${store} store`, () => {
    let server: RunningServer;
    before(async () => {
      server = await startServerOn(store, LEGACY_ENV);
    });
    after(() => server?.stop());
    legacyCases(() => [targetOf(server, store), targetOf(server, store)], { waitMs: 2_000, bans: true });
  });
}

/** A masked client frame (RFC 6455): opcode, payload of under 126 bytes. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
}

/** A go-megle page that sends find_match and its close in one write (so the server reads both at once); true once upgraded and closed. */
function findAndClose(web: string, address: string): Promise<boolean> {
  const u = new URL(web);
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname, () => {
      socket.write(upgradeRequest(`${web.replace(/^http/, 'ws')}/ws`, { Origin: web, 'X-Forwarded-For': address }));
    });
    let upgraded = false;
    socket.on('data', (d) => {
      if (upgraded || !d.toString('latin1').startsWith('HTTP/1.1 101')) return;
      upgraded = true;
      socket.write(Buffer.concat([clientFrame(1, Buffer.from(JSON.stringify(gmFind))), clientFrame(8, Buffer.from([0x03, 0xe8]))]));
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(upgraded));
    setTimeout(() => socket.destroy(), 3_000);
  });
}

for (const store of STORES) {
  it(`go-megle: a page that closes right behind its find_match leaves no socket behind in the process (${store})`, async () => {
    const server = await startServerOn(store, LEGACY_ENV);
    try {
      const PAGES = 20;
      const done = await Promise.all(Array.from({ length: PAGES }, () => findAndClose(server.web, freshAddress())));
      assert.equal(done.filter(Boolean).length, PAGES, 'every page was upgraded, then closed');
      const sockets = async () => {
        const res = await request(`${server.matching}/metrics`);
        const m = /^dyad_sockets\{channel="signalling"\} (\d+)$/m.exec(res.text);
        return Number(m?.[1]);
      };
      let held = -1;
      for (let i = 0; i < 40 && held !== 0; i++) {
        held = await sockets();
        if (held !== 0) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(held, 0, 'dyad_sockets{channel="signalling"}: every closed page taken out of the hub');
    } finally {
      await server.stop();
    }
  });
}

for (const store of STORES) {
  describe(`NEXT_RATE_PER_MIN and REGISTER_RATE_PER_MIN over every protocol, on the ${store} store`, () => {
    const waitMs = 2_000;
    let server: RunningServer;
    before(async () => {
      // Each test's address is its own: the next test registers three times from its address, the limit.
      server = await startServerOn(store, { ...LEGACY_ENV, NEXT_RATE_PER_MIN: '3', REGISTER_RATE_PER_MIN: '3' });
    });
    after(() => server?.stop());

    it('nexts from one address count together over Dyad, random-video-chat and go-megle; past the limit each refuses in its own words and changes nothing', async () => {
      const t = targetOf(server, store);
      const here = freshAddress();
      // A go-megle page at this address in a call with someone elsewhere: its find_match is no next yet.
      const p = await openGm(t, here, { waitMs, label: 'p' });
      p.send(gmFind);
      await expectGm(p, 'waiting');
      const q = await openGm(t, freshAddress(), { waitMs, label: 'q' });
      q.send(gmFind);
      await expectGm(q, 'match_found', { skip: ['waiting'] });
      const found = await expectGm(p, 'match_found');
      // Next 1: a Dyad client of the address.
      const d = await WireClient.open(`${t.matchingWs}/ws`, { channel: 'matching', label: 'dyad', headers: via(here), waitMs });
      await d.expect('session');
      await d.expect('waiting');
      d.send({ event: 'next' });
      await d.expect('waiting');
      // Next 2: a random-video-chat visitor of the address asks again (a re-POST); it had met the Dyad client.
      const alice = await rvcStart(freshName('alice'), here, { socket: t, post: t }, 'together', waitMs);
      await d.expect('matched');
      assert.equal((await request(`${t.matching}/registerForMatching`, { method: 'POST', body: { name: alice.name }, headers: via(here) })).status, 200);
      // Next 3: the Dyad client again.
      await d.expect('peer-disconnected');
      d.send({ event: 'next' });
      await d.expect('matched', { skip: ['waiting'] });
      // Past the limit: Dyad gets rate-limited ...
      d.send({ event: 'next' });
      await d.expectError('rate-limited', { what: 'the fourth next of the address' });
      // ... random-video-chat a 429 with retry_after ...
      const refused = await request(`${t.matching}/registerForMatching`, { method: 'POST', body: { name: alice.name }, headers: via(here) });
      assert.equal(refused.status, 429);
      const body = refused.json() as { status: string; retry_after: number };
      assert.equal(body.status, 'error');
      assert.ok(body.retry_after >= 1 && body.retry_after <= 60, `retry_after ${body.retry_after}`);
      // ... and go-megle an error, its call going on: the partner hears of no leaving, and signals still pass.
      p.send(gmFind);
      assert.equal((await expectGm(p, 'error')).data.code, 'rate-limited');
      await q.expectSilence(300, { why: 'a refused find_match skips nobody' });
      // The first offer is the initiator's to send (whichever of the two p is); a candidate either may.
      const candidate = { candidate: 'candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host', sdpMLineIndex: 0, sdpMid: '0' };
      p.send({ event: 'signal', data: { target_id: found.data.partner_id, type: 'candidate', payload: candidate } });
      assert.deepEqual((await expectGm(q, 'signal')).data.payload, candidate);
      await d.expectSilence(300, { why: 'a refused next changes nothing' });
    });

    it('registrations from one address count together over Dyad, random-video-chat and go-megle; past the limit each refuses in its own words and makes nothing', async () => {
      const t = targetOf(server, store);
      const here = freshAddress();
      // 1: a Dyad one-trip start; 2: a random-video-chat visitor; 3: a go-megle page's first find_match.
      const d = await WireClient.open(`${t.matchingWs}/ws`, { channel: 'matching', label: 'dyad', headers: via(here), waitMs });
      await d.expect('session');
      await d.expect('waiting');
      const alice = await rvcStart(freshName('alice'), here, { socket: t, post: t }, 'together', waitMs);
      await d.expect('matched');
      const p = await openGm(t, here, { waitMs, label: 'p' });
      p.send(gmFind);
      await expectGm(p, 'waiting');
      // Past the limit: Dyad's start gets 429 with retry_after ...
      const refused = await expectRefused(`${t.matchingWs}/ws`, { channel: 'matching', label: 'the fourth start', headers: via(here), waitMs }, 429);
      assert.match(refused.message, /registrations/);
      assert.ok(refused.retry_after !== undefined && refused.retry_after >= 1 && refused.retry_after <= 60, `retry_after ${refused.retry_after}`);
      // ... random-video-chat a 429 with retry_after ...
      const posted = await request(`${t.matching}/registerForMatching`, { method: 'POST', body: { name: freshName('bob') }, headers: via(here) });
      assert.equal(posted.status, 429);
      assert.ok((posted.json() as { retry_after: number }).retry_after >= 1);
      // ... and a second go-megle page an error, without entering the pool.
      const g = await openGm(t, here, { waitMs, label: 'g' });
      g.send(gmFind);
      assert.equal((await expectGm(g, 'error')).data.code, 'rate-limited');
      await p.expectSilence(300, { why: 'the refused start made nobody to pair with' });
      // Another address is not held back, and meets the one waiting: p (the refused page never entered the pool).
      const e = await WireClient.open(`${t.matchingWs}/ws`, { channel: 'matching', label: 'elsewhere', headers: via(freshAddress()), waitMs });
      await e.expect('session');
      await e.expect('matched', { skip: ['waiting'] });
      await expectGm(p, 'match_found');
      await Promise.all([d.close(1000), e.close(1000), alice.m.close(1000), p.close(1000), g.close(1000)]);
    });
  });
}

describe('legacy starts carry no proof of work', () => {
  it('while POW_MODE asks for one, an address makes at most POW_RATE_PER_MIN legacy starts a minute, over both protocols together; Dyad\'s own start still needs its proof', async () => {
    const server = await startServerOn('memory', { ...LEGACY_ENV, POW_MODE: 'always', POW_RATE_PER_MIN: '2' });
    try {
      const t = targetOf(server, 'pow');
      const here = freshAddress();
      const post = (name: string, address = here) =>
        request(`${t.matching}/registerForMatching`, { method: 'POST', body: { name }, headers: via(address) });
      // Two starts without a proof: a random-video-chat visitor, then a go-megle page.
      assert.equal(((await post(freshName('a'))).json() as { status: string }).status, 'queued');
      const g = await openGm(t, here, { waitMs: 2_000, label: 'g' });
      g.send(gmFind);
      await expectGm(g, 'waiting');
      // The third of the minute is refused, on either protocol.
      const third = await post(freshName('b'));
      assert.equal(third.status, 429, third.text);
      assert.match(third.text, /proof of work/);
      const h = await openGm(t, here, { waitMs: 2_000, label: 'h' });
      h.send(gmFind);
      assert.equal((await expectGm(h, 'error')).data.code, 'rate-limited');
      // Another address has its own; Dyad's own start without a proof is refused as before.
      assert.equal(((await post(freshName('c'), freshAddress())).json() as { status: string }).status, 'queued');
      assert.equal((await request(`${t.matching}/register`, { method: 'POST', body: { mode: 'video' }, headers: via(freshAddress()) })).status, 428);
      await Promise.all([g.close(1000), h.close(1000)]);
    } finally {
      await server.stop();
    }
  });
});

describe('random-video-chat chat passes the chat guards', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServerOn('memory', { ...LEGACY_ENV, CHAT_RATE_PER_MIN: '3', CHAT_MASK_WORDS: 'badword' });
  });
  after(() => server?.stop());

  it("the operator's words are masked, and past CHAT_RATE_PER_MIN a chat is refused with rate-limited and reaches no one", async () => {
    const t = targetOf(server, 'memory');
    const alice = await rvcStart(freshName('alice'), freshAddress(), { socket: t, post: t }, 'socket-first');
    const bob = await rvcStart(freshName('bob'), freshAddress(), { socket: t, post: t }, 'post-first');
    await expectRvcMatched(bob.m);
    await expectRvcMatched(alice.m);
    alice.m.send({ event: 'chat', peer: bob.name, message: 'a BadWord here' });
    assert.equal(((await bob.m.next('the chat')) as { message?: string }).message, 'a ******* here');
    for (let i = 1; i < 3; i++) alice.m.send({ event: 'chat', peer: bob.name, message: `line ${i}` });
    for (let i = 1; i < 3; i++) assert.equal(((await bob.m.next(`line ${i}`)) as { message?: string }).message, `line ${i}`);
    alice.m.send({ event: 'chat', peer: bob.name, message: 'one too many' });
    const refused = (await alice.m.next('the refusal')) as { event: string; message?: string };
    assert.equal(refused.event, 'error');
    assert.match(refused.message ?? '', /chat messages a minute/);
    await bob.m.expectSilence(300, { why: 'the chat beyond the rate is dropped' });
  });
});
