// The legacy protocols (docs/LEGACY.md), spoken exactly as their clients
// speak them, against two targets: one server twice (each store), or two
// processes on one Redis, each client where the case puts it. Run by
// wire/legacy.test.ts and redis/legacy.test.ts.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import WebSocket from 'ws';
import { RVC_INVALID_ROOM, RVC_NOT_CONNECTED } from '@dyad/protocol';
import {
  expectGm,
  expectRvcMatched,
  expectRvcSignalling,
  gmFind,
  openGm,
  openRvcMatching,
  openRvcSignalling,
  rvcJoin,
  rvcMatchingUrl,
  rvcPartner,
  rvcPost,
  rvcSignal,
  rvcSignallingUrl,
  rvcStart,
  type RvcClient,
  type Target,
} from '../support/legacy.js';
import { request } from '../support/http.js';
import { WireClient, sleep, type Events } from '../support/ws-client.js';

/** Long enough to see that nothing more comes. */
const QUIET_MS = 300;

let seq = 0;
/** A client no other case uses: an address in a /64 of its own (IPv6 documentation prefix), spoken through X-Forwarded-For. */
export const freshAddress = (): string => `2001:db8:0:${(++seq).toString(16)}::1`;
/** A random-video-chat name no other case uses (no `_`). */
export const freshName = (prefix: string): string => `${prefix}-${++seq}-${Math.random().toString(36).slice(2, 6)}`;

export interface CaseOptions {
  /** How long an expected message may take. */
  waitMs: number;
  /** The servers run with TRUST_PROXY, REPORT_BAN_THRESHOLD=1 and REPORT_MIN_ROOM_MS=0 (a ban takes one report). */
  bans: boolean;
}

/** A Dyad client's one-trip start on a target; resolves after `session`. */
async function dyadStart(t: Target, address: string, waitMs: number): Promise<{ id: string; token: string; m: WireClient }> {
  const m = await WireClient.open(`${t.matchingWs}/ws`, { channel: 'matching', label: `dyad/matching@${t.label}`, headers: { 'x-forwarded-for': address }, waitMs });
  const s = await m.expect('session');
  return { id: s.id, token: s.token, m };
}

async function dyadSignalling(t: Target, d: { id: string; token: string }, address: string, waitMs: number): Promise<WireClient> {
  return WireClient.open(`${t.signallingWs}/ws/${encodeURIComponent(d.id)}?token=${encodeURIComponent(d.token)}`, {
    channel: 'signalling',
    label: `dyad/signalling@${t.label}`,
    headers: { 'x-forwarded-for': address },
    waitMs,
  });
}

/** Two random-video-chat visitors paired and joined: alice on `a`, bob on `b` (POSTs to the other target than the socket when `crossed`). */
async function rvcPair(
  a: Target,
  b: Target,
  waitMs: number,
  crossed = false,
): Promise<{ alice: RvcClient; bob: RvcClient; room: string; ini: RvcClient; res: RvcClient }> {
  const alice = await rvcStart(freshName('alice'), freshAddress(), { socket: a, post: crossed ? b : a }, 'socket-first', waitMs);
  await expectEvent(alice.m, 'waiting');
  const bob = await rvcStart(freshName('bob'), freshAddress(), { socket: b, post: crossed ? a : b }, 'post-first', waitMs);
  const mb = await expectRvcMatched(bob.m);
  const ma = await expectRvcMatched(alice.m);
  assert.equal(ma.room_code, mb.room_code, 'one room code for both');
  assert.notEqual(ma.initiator, mb.initiator, 'exactly one initiator');
  const [ini, res] = ma.initiator ? [alice, bob] : [bob, alice];
  assert.equal(ma.room_code, `${ini.name}_${res.name}`, 'the room code is <initiator>_<responder>');
  assert.equal(rvcPartner(ma.room_code, alice.name), bob.name);
  assert.equal(rvcPartner(mb.room_code, bob.name), alice.name);
  await rvcJoin(a, alice, ma, waitMs);
  await rvcJoin(b, bob, mb, waitMs);
  return { alice, bob, room: ma.room_code, ini, res };
}

async function expectEvent(c: WireClient, event: string): Promise<unknown> {
  const m = await c.next(`"${event}"`);
  assert.equal(m.event, event, `${c.label}: expected "${event}", got ${JSON.stringify(m)}`);
  return m;
}

const offer = (n = 0) => ({ type: 'offer', sdp: `v=0 offer ${n}` });
const answer = () => ({ type: 'answer', sdp: 'v=0 answer' });
const candidate = (i: number) => ({ candidate: `candidate:${i} 1 udp 2122260223 192.0.2.1 ${50000 + i} typ host`, sdpMLineIndex: 0, sdpMid: '0' });

/** The cases; `targets` gives the two targets once they are up. */
export function legacyCases(targets: () => [Target, Target], opts: CaseOptions): void {
  const { waitMs } = opts;

  // ------------------------------------------------------- random-video-chat

  it('random-video-chat: pairs by the POST, whichever comes first, with the room code <initiator>_<responder>; verified; signals in order, type null; chat both ways', async () => {
    const [a, b] = targets();
    const { alice, bob, room, ini, res } = await rvcPair(a, b, waitMs);
    ini.s!.send(rvcSignal(room, res.name, '', offer()));
    const got = await expectRvcSignalling(res.s!, 'signal');
    assert.deepEqual(got, { event: 'signal', room_code: room, from: ini.name, type: null, data: offer() });
    for (let i = 0; i < 20; i++) ini.s!.send(rvcSignal(room, res.name, ini.name, { type: 'candidate', candidate: candidate(i) }));
    for (let i = 0; i < 20; i++) {
      const c = await expectRvcSignalling(res.s!, 'signal');
      assert.deepEqual(c.data, { type: 'candidate', candidate: candidate(i) }, `candidate ${i} in order, as simple-peer sent it`);
    }
    res.s!.send(rvcSignal(room, ini.name, '', answer()));
    assert.deepEqual((await expectRvcSignalling(ini.s!, 'signal')).data, answer());
    res.s!.send(rvcSignal(room, ini.name, '', { renegotiate: true }));
    assert.deepEqual((await expectRvcSignalling(ini.s!, 'signal')).data, { renegotiate: true }, "simple-peer's own requests are relayed as they are");

    alice.m.send({ event: 'chat', peer: bob.name, message: 'hi bob' });
    const chat = await expectEventOf(bob.m, 'chat');
    assert.equal(chat.sender, alice.name);
    assert.equal(chat.message, 'hi bob');
    assert.equal(typeof chat.timestamp, 'number');
    bob.m.send({ event: 'chat', peer: alice.name, message: 'hi alice' });
    assert.equal((await expectEventOf(alice.m, 'chat')).message, 'hi alice');
    // Each went once.
    await res.s!.expectSilence(QUIET_MS);
    await ini.s!.expectSilence(QUIET_MS);
  });

  it('random-video-chat: POST /register with just a name works the same (and answers the session, as Dyad does)', async () => {
    const [a, b] = targets();
    const name = freshName('carol');
    const address = freshAddress();
    const m = await openRvcMatching(a, name, address, waitMs);
    const posted = await request(`${b.matching}/register`, { method: 'POST', body: { name }, headers: { 'x-forwarded-for': address } });
    assert.equal(posted.status, 200);
    assert.equal((posted.json() as { status: string }).status, 'queued');
    await expectEvent(m, 'waiting');
  });

  it('random-video-chat: Skip closes the signalling socket and re-POSTs; the partner gets peer-disconnected there; Find Next Match re-POSTs; both are matched again on their matching sockets', async () => {
    const [a, b] = targets();
    const { alice, bob } = await rvcPair(a, b, waitMs, true);
    alice.s!.ws.close();
    assert.equal((await rvcPost(b, alice.name, alice.address)).body.status, 'queued');
    const gone = await expectRvcSignalling(bob.s!, 'peer-disconnected');
    assert.equal(gone.message, `${alice.name} has disconnected`);
    assert.equal((await rvcPost(a, bob.name, bob.address)).body.status, 'queued');
    const ma = await expectRvcMatched(alice.m);
    const mb = await expectRvcMatched(bob.m);
    assert.equal(ma.room_code, mb.room_code);
    await rvcJoin(a, alice, ma, waitMs);
    await rvcJoin(b, bob, mb, waitMs);
  });

  it('random-video-chat: a re-POST during a call is next: the partner is told at once', async () => {
    const [a, b] = targets();
    const { alice, bob } = await rvcPair(a, b, waitMs);
    assert.equal((await rvcPost(a, alice.name, alice.address)).body.status, 'queued');
    await expectRvcSignalling(bob.s!, 'peer-disconnected');
  });

  it('random-video-chat: a dropped socket leaves at once (no grace): the partner is told without waiting', async () => {
    const [a, b] = targets();
    const { alice, bob } = await rvcPair(a, b, waitMs);
    alice.m.ws.terminate();
    alice.s!.ws.terminate();
    const gone = await expectRvcSignalling(bob.s!, 'peer-disconnected');
    assert.match(gone.message, /has disconnected/);
  });

  it('random-video-chat meets a Dyad client of the same pool: matched both ways, signals translated each way, chat', async () => {
    const [a, b] = targets();
    const alice = await rvcStart(freshName('alice'), freshAddress(), { socket: a, post: a }, 'together', waitMs);
    await expectEvent(alice.m, 'waiting');
    const dAddress = freshAddress();
    const d = await dyadStart(b, dAddress, waitMs);
    const md = await d.m.expect('matched', { skip: ['waiting'] });
    assert.equal(md.peer, alice.name);
    const ma = await expectRvcMatched(alice.m);
    const shown = rvcPartner(ma.room_code, alice.name);
    assert.ok(!shown.includes('_'));
    await rvcJoin(a, alice, ma, waitMs);
    const ds = await dyadSignalling(b, d, dAddress, waitMs);
    ds.send({ event: 'join', room_code: md.room_code });
    await ds.expect('verified');
    const [first, second] = md.initiator ? (['dyad', 'rvc'] as const) : (['rvc', 'dyad'] as const);
    const fromRvc = async (data: Record<string, unknown>): Promise<Events['signal']> => {
      alice.s!.send(rvcSignal(ma.room_code, shown, alice.name, data));
      return ds.expect('signal', { skip: ['peer-joined'] });
    };
    const fromDyad = async (type: 'offer' | 'answer' | 'candidate', data: Record<string, unknown>) => {
      ds.send({ event: 'signal', room_code: md.room_code, type, data });
      return expectRvcSignalling(alice.s!, 'signal');
    };
    if (first === 'rvc') {
      const o = await fromRvc(offer());
      assert.deepEqual([o.type, o.data, o.from], ['offer', offer(), alice.name]);
      const ans = await fromDyad('answer', answer());
      assert.deepEqual([ans.type, ans.data, ans.from], [null, answer(), shown]);
    } else {
      const o = await fromDyad('offer', offer());
      assert.deepEqual([o.type, o.data], [null, offer()]);
      const ans = await fromRvc(answer());
      assert.deepEqual([ans.type, ans.data], ['answer', answer()]);
    }
    void second;
    const c1 = await fromRvc({ type: 'candidate', candidate: candidate(1) });
    assert.deepEqual([c1.type, c1.data], ['candidate', candidate(1)], 'a simple-peer candidate reaches Dyad unwrapped');
    const c2 = await fromDyad('candidate', candidate(2));
    assert.deepEqual(c2.data, { type: 'candidate', candidate: candidate(2) }, "a Dyad candidate reaches simple-peer in its wrapper");
    d.m.send({ event: 'chat', message: 'from dyad' });
    const chat = await expectEventOf(alice.m, 'chat');
    assert.deepEqual([chat.sender, chat.message], [shown, 'from dyad']);
    alice.m.send({ event: 'chat', peer: shown, message: 'from rvc' });
    const back = await d.m.expect('chat');
    assert.deepEqual([back.sender, back.message], [alice.name, 'from rvc']);
  });

  it("random-video-chat: someone else's name: its socket and signalling socket are refused, its POST is `exists` and skips nobody", async () => {
    const [a, b] = targets();
    const { alice, bob } = await rvcPair(a, b, waitMs);
    const mallory = freshAddress();
    for (const t of [a, b]) {
      const m = await WireClient.connect(rvcMatchingUrl(t, alice.name), { channel: 'matching', headers: { 'x-forwarded-for': mallory } });
      if (t === a) assert.equal(m.kind === 'refused' && m.status, 409, 'a second matching socket for a name held on this process is refused');
      // On another process the socket may open, but only the POST of its own address would let it in: it gets nothing.
      else if (m.kind === 'open') m.client.send({ event: 'chat', peer: bob.name, message: 'as alice' });
      const s = await WireClient.connect(rvcSignallingUrl(t, alice.name), { channel: 'signalling', headers: { 'x-forwarded-for': mallory } });
      assert.equal(s.kind, 'refused', 'a signalling socket for a name not held from this address is refused');
      if (s.kind === 'refused') assert.equal(s.status, 401);
      const posted = await rvcPost(t, alice.name, mallory);
      assert.equal(posted.body.status, 'exists');
    }
    // The same name from its own address, a second socket on either process: refused too.
    const again = await WireClient.connect(rvcMatchingUrl(b, alice.name), { channel: 'matching', headers: { 'x-forwarded-for': alice.address } });
    assert.equal(again.kind === 'refused' && again.status, 409);
    await bob.s!.expectSilence(QUIET_MS);
    await bob.m.expectSilence(QUIET_MS);
    await alice.s!.expectSilence(QUIET_MS);
  });

  it("random-video-chat: a socket from another address that holds a name without its registration gives way to the registrant's socket", async () => {
    const [a] = targets();
    const name = freshName('alice');
    const mallory = await openRvcMatching(a, name, freshAddress(), waitMs);
    const address = freshAddress();
    const posted = await rvcPost(a, name, address);
    assert.equal(posted.body.status, 'queued');
    // Before: 409, "that name is held by another socket", for as long as mallory kept reopening.
    const alice = await openRvcMatching(a, name, address, waitMs);
    await mallory.expectClose(4001, waitMs, "the squatter's socket");
    await expectEvent(alice, 'waiting');
    // A second socket of alice's own is still refused, and a squatter cannot take the name back.
    const again = await WireClient.connect(rvcMatchingUrl(a, name), { channel: 'matching', headers: { 'x-forwarded-for': freshAddress() } });
    assert.equal(again.kind === 'refused' && again.status, 409, 'the registrant holds the name');
    const bob = await rvcStart(freshName('bob'), freshAddress(), { socket: a, post: a }, 'post-first', waitMs);
    const ma = await expectRvcMatched(alice, waitMs);
    assert.equal(rvcPartner(ma.room_code, name), bob.name, 'the registrant is paired');
  });

  it('random-video-chat: a guessed room code grants nothing: join, signal and chat outside the own room are refused and reach nobody', async () => {
    const [a, b] = targets();
    const { alice, bob, room, ini, res } = await rvcPair(a, b, waitMs);
    const { alice: carol, bob: dave } = await rvcPair(b, a, waitMs);
    // Carol, in a room of her own, names alice and bob's room.
    const mallory = await openRvcSignalling(b, carol.name, carol.address, waitMs);
    mallory.send({ event: 'join', room_code: room, target: bob.name, role: 'initiator' });
    assert.deepEqual(await expectRvcSignalling(mallory, 'error'), { event: 'error', message: RVC_INVALID_ROOM });
    mallory.send(rvcSignal(room, res.name, ini.name, offer(9)));
    assert.equal((await expectRvcSignalling(mallory, 'error')).message, RVC_INVALID_ROOM);
    carol.m.send({ event: 'chat', peer: bob.name, message: 'not yours' });
    assert.equal((await expectEventOf(carol.m, 'error')).message, RVC_NOT_CONNECTED);
    // Signalling one's own room but naming another target.
    ini.s!.send(rvcSignal(room, dave.name, ini.name, offer(8)));
    assert.equal((await expectRvcSignalling(ini.s!, 'error')).message, RVC_NOT_CONNECTED);
    for (const c of [alice.s!, bob.s!, dave.s!]) await c.expectSilence(QUIET_MS);
    await expectSilenceOn(bob.m, dave.m);
  });

  it('random-video-chat: bad frames and bad names are refused; the socket stays', async () => {
    const [a, b] = targets();
    const { alice } = await rvcPair(a, b, waitMs);
    for (const frame of ['{not json', JSON.stringify({ event: 'join' }), JSON.stringify({ event: 'signal', room_code: 'x_y', target: 'y', data: { type: 'offer' } })]) {
      alice.s!.send(frame);
      assert.equal((await expectRvcSignalling(alice.s!, 'error')).event, 'error', frame);
    }
    alice.s!.send(Buffer.from('binary'));
    await expectRvcSignalling(alice.s!, 'error');
    alice.m.send({ event: 'next' });
    await expectEventOf(alice.m, 'error');
    const deep = { type: 'offer', sdp: 'x', n: [[[[[[[[[1]]]]]]]]] };
    alice.s!.send(rvcSignal('a_b', 'b', '', deep));
    await expectRvcSignalling(alice.s!, 'error');
    assert.ok(alice.s!.isOpen && alice.m.isOpen);
    const bad = await rvcPost(a, 'has_underscore', freshAddress());
    assert.equal(bad.body.status, 'error');
    const refused = await WireClient.connect(rvcMatchingUrl(a, 'has_underscore'), { channel: 'matching', headers: { 'x-forwarded-for': freshAddress() } });
    assert.equal(refused.kind === 'refused' && refused.status, 400);
    const big = await openRvcMatching(a, freshName('big'), freshAddress(), waitMs);
    big.send('x'.repeat(20_000));
    await big.expectClose(1009);
  });

  it('random-video-chat: the Origin is checked on the POST (CORS) and on both upgrades', async () => {
    const [a] = targets();
    // The client's page is on another origin (another port of this host: allowed without ALLOWED_ORIGINS).
    const page = 'http://127.0.0.1:3000';
    const pre = await request(`${a.matching}/registerForMatching`, { method: 'OPTIONS', headers: { origin: page } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], page);
    const ok = await request(`${a.matching}/registerForMatching`, { method: 'POST', body: { name: freshName('o') }, headers: { origin: page, 'x-forwarded-for': freshAddress() } });
    assert.equal((ok.json() as { status: string }).status, 'queued');
    assert.equal(ok.headers['access-control-allow-origin'], page);
    const evil = 'http://evil.example';
    const posted = await request(`${a.matching}/registerForMatching`, { method: 'POST', body: { name: freshName('e') }, headers: { origin: evil } });
    assert.equal(posted.status, 403);
    for (const url of [rvcMatchingUrl(a, freshName('e')), rvcSignallingUrl(a, freshName('e'))]) {
      const r = await WireClient.connect(url, { channel: 'matching', origin: evil });
      assert.equal(r.kind === 'refused' && r.status, 403, url);
    }
  });

  if (opts.bans) {
    it('random-video-chat and go-megle: a banned address is refused on the POST and every upgrade', async () => {
      const [a, b] = targets();
      const suspect = freshAddress();
      const s = await dyadStart(a, suspect, waitMs);
      await s.m.expect('waiting');
      const r = await dyadStart(b, freshAddress(), waitMs);
      await r.m.expect('matched', { skip: ['waiting'] });
      await s.m.expect('matched');
      r.m.send({ event: 'report' });
      await s.m.expectError('banned');
      const posted = await rvcPost(a, freshName('ban'), suspect);
      assert.equal(posted.status, 403);
      assert.equal(posted.body.status, 'banned');
      for (const [url, channel] of [
        [rvcMatchingUrl(b, freshName('ban')), 'matching'],
        [rvcSignallingUrl(b, freshName('ban')), 'signalling'],
        [`${b.webWs}/ws`, 'matching'],
      ] as const) {
        const attempt = await WireClient.connect(url, { channel, headers: { 'x-forwarded-for': suspect } });
        assert.equal(attempt.kind === 'refused' && attempt.status, 403, url);
      }
    });
  }

  // ---------------------------------------------------------------- go-megle

  /** Two go-megle pages paired: the first waits, the second's find_match finds it. */
  async function gmPair(a: Target, b: Target): Promise<{ p: WireClient; q: WireClient; pid: string; qid: string; ini: WireClient; res: WireClient; iniId: string; resId: string }> {
    const p = await openGm(a, freshAddress(), { waitMs, label: 'p' });
    p.send(gmFind);
    assert.deepEqual(await expectGm(p, 'waiting'), { event: 'waiting', data: { message: 'Searching for partner...' } });
    const q = await openGm(b, freshAddress(), { waitMs, label: 'q' });
    q.send(gmFind);
    const fq = await expectGm(q, 'match_found', { skip: ['waiting'] });
    const fp = await expectGm(p, 'match_found');
    assert.notEqual(fp.data.initiator, fq.data.initiator, 'exactly one initiator');
    assert.equal(fp.data.match_id, fq.data.match_id, 'one match id for both');
    assert.notEqual(fp.data.partner_id, fq.data.partner_id);
    const pid = fq.data.partner_id;
    const qid = fp.data.partner_id;
    const [ini, res, iniId, resId] = fp.data.initiator ? [p, q, pid, qid] : [q, p, qid, pid];
    return { p, q, pid, qid, ini, res, iniId, resId };
  }

  const gmSignal = (target: string, type: 'offer' | 'answer' | 'candidate', payload: Record<string, unknown>) => ({ event: 'signal', data: { target_id: target, type, payload } });

  it('go-megle: find_match, waiting, match_found; the page opening, closing and reopening its socket is harmless; each signal arrives once, in order', async () => {
    const [a, b] = targets();
    // The page's first socket, closed a moment later: it never asked for anything.
    const first = await openGm(a, freshAddress(), { waitMs });
    await sleep(50);
    await first.close(1000);
    const { ini, res, iniId, resId } = await gmPair(a, b);
    ini.send(gmSignal(resId, 'offer', offer()));
    for (let i = 0; i < 20; i++) ini.send(gmSignal(resId, 'candidate', candidate(i)));
    assert.deepEqual(await expectGm(res, 'signal'), { event: 'signal', data: { sender_id: iniId, type: 'offer', payload: offer() } });
    for (let i = 0; i < 20; i++) assert.deepEqual((await expectGm(res, 'signal')).data.payload, candidate(i));
    res.send(gmSignal(iniId, 'answer', answer()));
    assert.deepEqual((await expectGm(ini, 'signal')).data, { sender_id: resId, type: 'answer', payload: answer() });
    await res.expectSilence(QUIET_MS, { why: 'each signal is delivered once' });
    await ini.expectSilence(QUIET_MS, { why: 'each signal is delivered once' });
  });

  it('go-megle: Next is leave then find_match: the partner gets partner_left, re-queues a second later, and both are matched again', async () => {
    const [a, b] = targets();
    const { p, q, pid, qid } = await gmPair(a, b);
    p.send({ event: 'leave', data: { target_id: qid } });
    p.send(gmFind);
    await expectGm(p, 'waiting');
    assert.deepEqual(await expectGm(q, 'partner_left'), { event: 'partner_left', data: { from: pid } });
    q.send(gmFind);
    const fq = await expectGm(q, 'match_found', { skip: ['waiting'] });
    const fp = await expectGm(p, 'match_found');
    assert.deepEqual([fq.data.partner_id, fp.data.partner_id], [pid, qid]);
  });

  it('go-megle: find_match during a call (without leave) skips the partner too', async () => {
    const [a, b] = targets();
    const { p, q, pid } = await gmPair(a, b);
    p.send(gmFind);
    await expectGm(p, 'waiting');
    assert.deepEqual((await expectGm(q, 'partner_left')).data, { from: pid });
  });

  it('go-megle: a closed socket leaves at once: partner_left', async () => {
    const [a, b] = targets();
    const { p, q, pid } = await gmPair(a, b);
    p.ws.terminate();
    assert.deepEqual((await expectGm(q, 'partner_left')).data, { from: pid });
  });

  it("go-megle: someone else's target_id: signal and leave are refused and reach nobody", async () => {
    const [a, b] = targets();
    const one = await gmPair(a, b);
    const two = await gmPair(b, a);
    one.ini.send(gmSignal(two.resId, 'offer', offer()));
    assert.equal((await expectGm(one.ini, 'error')).event, 'error');
    one.ini.send({ event: 'leave', data: { target_id: two.iniId } });
    await expectGm(one.ini, 'error');
    for (const c of [one.res, two.ini, two.res]) await c.expectSilence(QUIET_MS);
  });

  it('go-megle meets a Dyad client and a random-video-chat client of the same pool', async () => {
    const [a, b] = targets();
    const g = await openGm(a, freshAddress(), { waitMs });
    g.send(gmFind);
    await expectGm(g, 'waiting');
    const dAddress = freshAddress();
    const d = await dyadStart(b, dAddress, waitMs);
    const md = await d.m.expect('matched', { skip: ['waiting'] });
    const fg = await expectGm(g, 'match_found');
    assert.equal(fg.data.partner_id, d.id);
    const ds = await dyadSignalling(b, d, dAddress, waitMs);
    ds.send({ event: 'join', room_code: md.room_code });
    await ds.expect('verified');
    if (md.initiator) {
      ds.send({ event: 'signal', room_code: md.room_code, type: 'offer', data: offer() });
      assert.deepEqual((await expectGm(g, 'signal')).data, { sender_id: d.id, type: 'offer', payload: offer() });
      g.send(gmSignal(d.id, 'answer', answer()));
      const got = await ds.expect('signal', { skip: ['peer-joined'] });
      assert.deepEqual([got.type, got.data], ['answer', answer()]);
    } else {
      g.send(gmSignal(d.id, 'offer', offer()));
      const got = await ds.expect('signal', { skip: ['peer-joined'] });
      assert.deepEqual([got.type, got.data, got.from], ['offer', offer(), md.peer]);
      ds.send({ event: 'signal', room_code: md.room_code, type: 'answer', data: answer() });
      assert.deepEqual((await expectGm(g, 'signal')).data.payload, answer());
    }
    // Dyad's next: the page is told its partner left.
    d.m.send({ event: 'stop' });
    assert.deepEqual((await expectGm(g, 'partner_left')).data, { from: d.id });
    // A random-video-chat visitor arrives while the page queues again.
    g.send(gmFind);
    await expectGm(g, 'waiting');
    const alice = await rvcStart(freshName('alice'), freshAddress(), { socket: b, post: b }, 'together', waitMs);
    const ma = await expectRvcMatched(alice.m);
    const fg2 = await expectGm(g, 'match_found');
    assert.equal(fg2.data.partner_id, alice.name);
    await rvcJoin(b, alice, ma, waitMs);
    const shown = rvcPartner(ma.room_code, alice.name);
    if (ma.initiator) {
      alice.s!.send(rvcSignal(ma.room_code, shown, '', offer()));
      assert.deepEqual((await expectGm(g, 'signal')).data, { sender_id: alice.name, type: 'offer', payload: offer() });
    } else {
      g.send(gmSignal(alice.name, 'offer', offer()));
      assert.deepEqual((await expectRvcSignalling(alice.s!, 'signal')).data, offer());
    }
  });

  it('go-megle: bad frames are refused and the socket stays; an oversized frame closes it with 1009; a foreign Origin is refused', async () => {
    const [a] = targets();
    const g = await openGm(a, freshAddress(), { waitMs });
    for (const frame of ['{not json', JSON.stringify({ event: 'dance', data: {} }), JSON.stringify({ event: 'signal', data: { target_id: 'x', type: 'offer', payload: {} } })]) {
      g.send(frame);
      assert.equal((await expectGm(g, 'error')).event, 'error', frame);
    }
    g.send(Buffer.from('bin'));
    await expectGm(g, 'error');
    assert.ok(g.isOpen);
    g.send('x'.repeat(20_000));
    await g.expectClose(1009);
    const refused = await WireClient.connect(`${a.webWs}/ws`, { channel: 'matching', origin: 'http://evil.example' });
    assert.equal(refused.kind === 'refused' && refused.status, 403);
    const other = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${a.webWs}/elsewhere`);
      ws.on('unexpected-response', (_req, r) => resolve(r.statusCode ?? 0));
      ws.on('error', () => resolve(0));
    });
    assert.equal(other, 404);
  });
}

async function expectEventOf(c: WireClient, event: 'chat' | 'error'): Promise<{ event: string; sender: string; message: string; timestamp: number }> {
  const m = (await c.waitFor((x) => x.event === event || x.event !== 'waiting', `"${event}"`)) as unknown as { event: string; sender: string; message: string; timestamp: number };
  assert.equal(m.event, event, `${c.label}: expected "${event}", got ${JSON.stringify(m)}`);
  return m;
}

async function expectSilenceOn(...clients: WireClient[]): Promise<void> {
  for (const c of clients) await c.expectSilence(QUIET_MS);
}
