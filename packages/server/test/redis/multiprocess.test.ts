// Several real processes on one private Redis (ROLES=matching and
// ROLES=signalling, two of each), real WebSocket clients: the contract holds
// across processes, through a rolling restart, a crash and a Redis restart.
// All of it again on a Redis Cluster of three primaries, where the stall and
// the restart are those of the shard that holds the store's state.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { BACKENDS, type Backend } from './support/backends.js';
import { DyadProcess } from './support/dyad-process.js';
import { placesFromDb } from '../support/places.js';
import { regionOf } from '../../src/geo/regions.js';
import { WireClient, eventually, sleep, upgradeRequest, type Channel, type Events } from '../support/ws-client.js';

const GRACE_MS = 3_000;
/** How long an expected message may take: several processes and a Redis share two cores. */
const WAIT_MS = 5_000;

interface Session {
  id: string;
  token: string;
  m: WireClient;
  s?: WireClient;
}

let redis: Backend;
let env: Record<string, string>;
let m1: DyadProcess;
let m2: DyadProcess;
let s1: DyadProcess;
let s2: DyadProcess;
const extra: DyadProcess[] = [];

const open = (url: string, channel: Channel, label: string): Promise<WireClient> => WireClient.open(url, { channel, label, waitMs: WAIT_MS });

/** One-trip start on a process's matching role; `lang` keeps each test's sessions among themselves. */
async function start(proc: DyadProcess, lang: string, query: Record<string, string> = {}): Promise<Session> {
  const qs = new URLSearchParams({ lang, ...query }).toString();
  const m = await open(`${proc.ws('matching')}/ws?${qs}`, 'matching', `${proc.name}/matching`);
  const s = await m.expect('session');
  return { id: s.id, token: s.token, m };
}

const matchingUrl = (proc: DyadProcess, s: Session): string =>
  `${proc.ws('matching')}/ws/${encodeURIComponent(s.id)}?token=${encodeURIComponent(s.token)}`;
const signallingUrl = (proc: DyadProcess, s: Session): string =>
  `${proc.ws('signalling')}/ws/${encodeURIComponent(s.id)}?token=${encodeURIComponent(s.token)}`;

/** One-trip start from a client `address` (TRUST_PROXY), with a `lang` of its test's own in the query. */
async function startFrom(proc: DyadProcess, address: string, query: Record<string, string>): Promise<Session> {
  const qs = new URLSearchParams({ lang: 'region', ...query }).toString();
  const m = await WireClient.open(`${proc.ws('matching')}/ws?${qs}`, { channel: 'matching', label: `${proc.name}/matching`, waitMs: WAIT_MS, headers: { 'x-forwarded-for': address } });
  const s = await m.expect('session');
  return { id: s.id, token: s.token, m };
}

/** Two sessions started on the two given processes, paired with each other. */
async function pair(
  pa: DyadProcess,
  pb: DyadProcess,
  lang: string,
): Promise<{ a: Session; b: Session; room: string; ma: Events['matched']; mb: Events['matched'] }> {
  const a = await start(pa, lang);
  await a.m.expect('waiting');
  const b = await start(pb, lang);
  const mb = await b.m.expect('matched', { skip: 'any' });
  const ma = await a.m.expect('matched');
  assert.equal(ma.room_code, mb.room_code);
  return { a, b, room: ma.room_code, ma, mb };
}

/** `s` comes back on `proc` within the grace period: the same room, resumed. */
async function resumeOn(proc: DyadProcess, s: Session, room: string, label: string): Promise<WireClient> {
  const again = await open(matchingUrl(proc, s), 'matching', label);
  const resumed = await again.expect('matched');
  assert.equal(resumed.resumed, true);
  assert.equal(resumed.room_code, room);
  return again;
}

type Joined = Session & { s: WireClient };

/**
 * A pair whose members' signalling sockets join on `sIni` (the initiator's)
 * and `sRes`; the offer goes through a script, `n` candidates right behind it
 * straight to the partner's process, and must arrive after it; then the answer.
 */
async function offerAnswer(
  p: Awaited<ReturnType<typeof pair>>,
  sIni: DyadProcess,
  sRes: DyadProcess,
  n: number,
): Promise<{ ini: Joined; res: Joined }> {
  const { a, b, room, ma } = p;
  const [ini, res] = ma.initiator ? [a, b] : [b, a];
  const si = await open(signallingUrl(sIni, ini), 'signalling', `${sIni.name}/signalling`);
  const sr = await open(signallingUrl(sRes, res), 'signalling', `${sRes.name}/signalling`);
  ini.s = si;
  res.s = sr;
  si.send({ event: 'join', room_code: room });
  await si.expect('verified');
  sr.send({ event: 'join', room_code: room });
  await sr.expect('verified');
  await si.expect('peer-joined');
  si.send({ event: 'signal', room_code: room, type: 'offer', data: { sdp: 'v=0 offer' } });
  for (let i = 0; i < n; i++) si.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: `o${i}`, i } });
  assert.equal((await sr.expect('signal')).type, 'offer', 'the offer first');
  for (let i = 0; i < n; i++) assert.equal(Number(((await sr.expect('signal')).data as { i: number }).i), i);
  sr.send({ event: 'signal', room_code: room, type: 'answer', data: { sdp: 'v=0 answer' } });
  assert.equal((await si.expect('signal')).type, 'answer');
  return { ini: { ...ini, s: si }, res: { ...res, s: sr } };
}

/** Both members send `n` candidates at once; each gets all of the other's, in the order sent. */
async function trickleBoth(ini: Joined, res: Joined, room: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    ini.s.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: `a${i}`, i } });
    res.s.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: `b${i}`, i } });
  }
  for (const [to, from] of [
    [res, ini],
    [ini, res],
  ] as const) {
    const got: number[] = [];
    for (let i = 0; i < n; i++) {
      const m = await to.s.expect('signal');
      assert.equal(m.from, from.id);
      got.push(Number((m.data as { i: number }).i));
    }
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => i), 'every candidate, in the order sent');
  }
}

/** Once the grace period is over, `s` was never told its partner left. */
async function toldNothingAfterGrace(s: Session): Promise<void> {
  await sleep(GRACE_MS + 500);
  assert.equal(s.m.history.filter((m) => m.event === 'peer-disconnected').length, 0, 'the partner was told nothing');
}

async function status(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
  await res.arrayBuffer();
  return res.status;
}

/** Waiting sessions of a mode as the store counts them (every process reads the same Redis). */
async function waitingCount(proc: DyadProcess): Promise<number> {
  const text = await (await fetch(`${proc.http('matching')}/metrics`)).text();
  const m = /^dyad_waiting_sessions\{mode="video"\} (\d+)/m.exec(text);
  return Number(m?.[1] ?? NaN);
}

for (const backend of BACKENDS) describe(`two matching and two signalling processes on ${backend.name}`, { timeout: 150_000 }, () => {
  before(async () => {
    redis = await backend.start();
    // TRUST_PROXY: the region test speaks from addresses of the shipped IP-to-country database.
    // ONLINE_CACHE_MS 0: the waiting count is read from /metrics right after a change.
    env = { ...redis.env, GRACE_MS: String(GRACE_MS), INTEREST_TIMEOUT_MS: '600000', TRUST_PROXY: 'true', ONLINE_CACHE_MS: '0' };
    [m1, m2, s1, s2] = await Promise.all([
      DyadProcess.start('m1', { ...env, ROLES: 'matching' }),
      DyadProcess.start('m2', { ...env, ROLES: 'matching' }),
      DyadProcess.start('s1', { ...env, ROLES: 'signalling' }),
      DyadProcess.start('s2', { ...env, ROLES: 'signalling' }),
    ]);
  });

  after(async () => {
    await WireClient.closeAll();
    await Promise.all([m1, m2, s1, s2, ...extra].filter(Boolean).map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  it('pairs sessions on different processes; signals (offer, answer, 100 candidates each way) and chat arrive in order', async () => {
    const { a, b, room, ma, mb } = await pair(m1, m2, 'x-pair');
    assert.notEqual(ma.initiator, mb.initiator);
    assert.equal(ma.peer, b.id);
    assert.equal(mb.peer, a.id);
    const [ini, res] = ma.initiator ? [a, b] : [b, a];
    ini.s = await open(signallingUrl(s1, ini), 'signalling', 's1/signalling');
    res.s = await open(signallingUrl(s2, res), 'signalling', 's2/signalling');
    ini.s.send({ event: 'join', room_code: room });
    assert.equal((await ini.s.expect('verified')).peer_joined, false);
    res.s.send({ event: 'join', room_code: room });
    const verified = await res.s.expect('verified');
    assert.equal(verified.role, 'responder');
    assert.equal(verified.peer_joined, true);
    assert.equal((await ini.s.expect('peer-joined')).peer, res.id);

    ini.s.send({ event: 'signal', room_code: room, type: 'offer', data: { sdp: 'v=0 offer', n: -1 } });
    const offer = await res.s.expect('signal');
    assert.deepEqual(offer, { event: 'signal', room_code: room, from: ini.id, type: 'offer', data: { sdp: 'v=0 offer', n: -1 } });
    res.s.send({ event: 'signal', room_code: room, type: 'answer', data: { sdp: 'v=0 answer' } });
    assert.equal((await ini.s.expect('signal')).type, 'answer');
    const before = await redis.commandCalls();
    // Both sides trickle at once, each through a different pair of processes.
    await trickleBoth(ini as Joined, res as Joined, room, 100);
    // Both members joined and the answer passed: each process appended its member's candidates to the
    // other's inbox itself (several to an entry), with no script per frame (heartbeats and reapers run a few meanwhile).
    const calls = await redis.commandCalls();
    const delta = (cmd: string): number => (calls[cmd] ?? 0) - (before[cmd] ?? 0);
    assert.ok(delta('xadd') >= 2, `relayed by XADD, both ways: ${delta('xadd')}`);
    assert.ok(delta('evalsha') < 100, `scripts run while 200 candidates were relayed: ${delta('evalsha')}`);

    for (let i = 0; i < 20; i++) {
      a.m.send({ event: 'chat', message: `from a ${i}` });
      b.m.send({ event: 'chat', message: `from b ${i}` });
    }
    a.m.send({ event: 'typing', typing: true });
    for (const [to, from, tag] of [
      [b, a, 'a'],
      [a, b, 'b'],
    ] as const) {
      for (let i = 0; i < 20; i++) {
        const m = await to.m.expect('chat');
        assert.equal(m.sender, from.id);
        assert.equal(m.message, `from ${tag} ${i}`);
      }
    }
    assert.deepEqual(await b.m.expect('typing'), { event: 'typing', sender: a.id, typing: true });

    a.m.send({ event: 'next' });
    assert.equal((await b.m.expect('peer-disconnected')).reason, 'skip');
    const told = ini === b ? ini.s : res.s;
    assert.equal((await told.expect('peer-disconnected', { skip: 'any' })).reason, 'skip', 'on its joined signalling socket too');
    // The skipper's own signalling socket is in that room no more: a signal there is refused, never relayed.
    // Its process hears of the room's end through its own inbox, which may lag the partner's news: until
    // then a signal is relayed and dropped at the partner's process; either way it never reaches the partner.
    const skipper = ini === a ? ini.s : res.s;
    await eventually(async () => {
      skipper.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: 'late' } });
      return (await skipper.expect('error', { skip: 'any', timeoutMs: 300 }).catch(() => undefined))?.code === 'invalid-room' ? true : undefined;
    }, 'invalid-room for a signal to the room skipped');
    await sleep(200);
    assert.equal(told.history.filter((m) => m.event === 'signal' && (m.data as { candidate?: string }).candidate === 'late').length, 0);
    assert.equal((await a.m.expect('waiting')).event, 'waiting');
    a.m.close();
    b.m.close();
  });

  it('keeps a signal relayed without a script behind what a script sent before it, and ahead of what one sends after', async () => {
    const p = await pair(m1, m2, 'x-order');
    const { a, b, room } = p;
    const { ini, res } = await offerAnswer(p, s1, s2, 50);
    // The last candidates, then the sender leaves: the partner gets every candidate before the news.
    for (let i = 50; i < 80; i++) ini.s.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: `c${i}`, i } });
    ini.s.send({ event: 'leave', room_code: room });
    for (let i = 50; i < 80; i++) assert.equal(Number(((await res.s.expect('signal')).data as { i: number }).i), i);
    assert.equal((await res.s.expect('peer-disconnected')).reason, 'left');
    a.m.close();
    b.m.close();
  });

  it('pairs by region across processes: "near" waits for its own country; the opted-in country reaches only the partner', async () => {
    const { X1, X2, Z } = await placesFromDb(regionOf);
    const a = await startFrom(m1, X1.address, { region: 'near', show_country: 'true' });
    await a.m.expect('waiting');
    const far = await startFrom(m2, Z.address, {});
    await far.m.expect('waiting');
    await far.m.expectSilence(300, { why: `${Z.country} is not near ${X1.country}` });
    await far.m.close();
    const b = await startFrom(m2, X2.address, {});
    const mb = await b.m.expect('matched', { skip: 'any' });
    const ma = await a.m.expect('matched');
    assert.equal(ma.peer, b.id);
    assert.equal(mb.country, X1.country, 'the partner of one who opted in is told its country');
    assert.equal(ma.country, undefined, 'one who did not opt in shows nothing');
    assert.equal(ma.region, X1.region);
    assert.equal(mb.region, X1.region);
  });

  it('registers over HTTP on one process and opens the socket on another; names are unique across processes', async () => {
    const reg = async (proc: DyadProcess, body: object): Promise<{ status: number; json: Record<string, unknown> }> => {
      const res = await fetch(`${proc.http('matching')}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const first = await reg(m1, { name: 'mp-alice', lang: 'x-http' });
    assert.equal(first.status, 200);
    assert.equal((await reg(m2, { name: 'mp-alice' })).status, 409);
    const token = String(first.json.token);
    const ice = await fetch(`${m2.http('matching')}/ice-servers`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ice.status, 409, 'no TURN credentials before the matching socket opens');
    await ice.arrayBuffer();
    const m = await open(matchingUrl(m2, { id: 'mp-alice', token, m: undefined as never }), 'matching', 'mp-alice on m2');
    await m.expect('waiting');
    // Registered on one process, its socket open on the other: either process sees it there.
    for (const proc of [m1, m2]) {
      const opened = await fetch(`${proc.http('matching')}/ice-servers`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(opened.status, 200);
      await opened.arrayBuffer();
    }
    await m.close(1000);
    // A clean close ends the session everywhere: the name is free again.
    await eventually(async () => ((await reg(m1, { name: 'mp-alice' })).status === 200 ? true : undefined), 'the name to be free');
  });

  it('resumes on another process within the grace period, with the chat kept meanwhile, in order', async () => {
    const { a, b, room } = await pair(m1, m2, 'x-resume');
    await a.m.drop();
    b.m.send({ event: 'chat', message: 'one' });
    b.m.send({ event: 'chat', message: 'two' });
    await sleep(200);
    const again = await resumeOn(m2, a, room, 'a again on m2');
    assert.equal((await again.expect('chat')).message, 'one');
    assert.equal((await again.expect('chat')).message, 'two');
    await toldNothingAfterGrace(b);
    again.close();
    b.m.close();
  });

  it('a rolling restart loses no room: SIGTERM closes with 1001 and the client resumes on another process', async () => {
    const m3 = await DyadProcess.start('m3', { ...env, ROLES: 'matching' });
    extra.push(m3);
    const { a, b, room } = await pair(m3, m2, 'x-rolling');
    const stopping = m3.stop('SIGTERM');
    await a.m.expectClose(1001);
    assert.equal((await stopping).code, 0);
    const again = await resumeOn(m1, a, room, 'a on m1');
    b.m.send({ event: 'chat', message: 'still here?' });
    assert.equal((await again.expect('chat')).message, 'still here?');
    await toldNothingAfterGrace(b);
    again.close();
    b.m.close();
  });

  it('SIGKILL: the dead process’s sessions leave the pool within 10 s, their partners get timeout, no ghost is paired', async () => {
    const k = await DyadProcess.start('k', { ...env, ROLES: 'matching' });
    extra.push(k);
    const ghost = await start(k, 'x-ghost');
    await ghost.m.expect('waiting');
    const lost = await pair(k, m2, 'x-lost');
    const kept = await pair(k, m1, 'x-kept');
    const before = await waitingCount(m1);
    const killedAt = Date.now();
    await k.stop('SIGKILL');
    // A client of the dead process that reconnects elsewhere keeps its room.
    const back = await open(matchingUrl(m2, kept.a), 'matching', 'kept.a on m2');
    assert.equal((await back.expect('matched')).resumed, true);
    await eventually(async () => ((await waitingCount(m1)) === before - 1 ? true : undefined), 'the ghost to leave the pool', 10_000);
    assert.ok(Date.now() - killedAt <= 10_000);
    const newcomer = await start(m1, 'x-ghost');
    await newcomer.m.expect('waiting');
    // The one that did not come back ends with its grace period: its partner is told.
    const gone = await lost.b.m.expect('peer-disconnected', { timeoutMs: 10_000 + GRACE_MS });
    assert.equal(gone.reason, 'timeout');
    assert.equal(newcomer.m.history.filter((m) => m.event === 'matched').length, 0, 'never paired with the ghost');
    kept.b.m.send({ event: 'chat', message: 'after the crash' });
    assert.equal((await back.expect('chat')).message, 'after the crash');
    assert.equal(kept.b.m.history.filter((m) => m.event === 'peer-disconnected').length, 0);
    for (const s of [back, newcomer.m, lost.b.m, kept.b.m]) s.close();
  });

  it('a one-trip start whose client goes before its upgrade (its registration held up by a stalled Redis) leaves nobody in the pool', async () => {
    const lang = 'x-gone-before-upgrade';
    const { hostname, port } = new URL(m1.http('matching'));
    redis.pause();
    try {
      // The start is registered, with its socket opened, only once Redis is back: by then its client has gone.
      const client = net.connect(Number(port), hostname);
      await new Promise<void>((done) => client.once('connect', done));
      client.write(upgradeRequest(`${m1.http('matching')}/ws?lang=${lang}`));
      await sleep(150);
      client.destroy();
      await sleep(150);
    } finally {
      redis.resume();
    }
    await sleep(500);
    const newcomer = await start(m2, lang);
    await newcomer.m.expect('waiting');
    await newcomer.m.expectSilence(1_000, { why: 'the start whose client went is in no pool: nobody to be matched with' });
    newcomer.m.close();
  });

  it('Redis stall: /readyz says 503 and a message gets an error, not silence; then the room carries on', async () => {
    const { a, b } = await pair(m1, m2, 'x-stall');
    redis.pause();
    try {
      await eventually(async () => ((await status(`${m1.http('matching')}/readyz`)) === 503 ? true : undefined), 'm1 /readyz 503');
      a.m.send({ event: 'chat', message: 'during the stall' });
      // The chat's own counts wait REDIS_CALL_TIMEOUT_MS for Redis, then the transition does: two of them.
      assert.equal((await a.m.expect('error', { timeoutMs: 8_000 })).code, 'rate-limited');
      // A registration checks the shared per-address limit first: that check must not wait for Redis forever either.
      const reg = await fetch(`${m2.http('matching')}/register`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(8_000) });
      await reg.arrayBuffer();
      assert.ok(reg.status >= 500, `registration refused during the stall (got ${reg.status})`);
    } finally {
      redis.resume();
    }
    await eventually(async () => ((await status(`${m1.http('matching')}/readyz`)) === 200 ? true : undefined), 'm1 /readyz 200');
    a.m.send({ event: 'chat', message: 'after the stall' });
    await b.m.waitFor((m) => m.event === 'chat' && m.message === 'after the stall', 'the chat after the stall');
    assert.equal(b.m.history.filter((m) => m.event === 'peer-disconnected').length, 0, 'the room survived');
    a.m.close();
    b.m.close();
  });

  it('Redis restart: /readyz says 503 and clients get errors meanwhile; afterwards sessions are back in the pool, their region kept', async () => {
    const { X1, X2 } = await placesFromDb(regionOf);
    // Its country, its region choice and its opt-in are made again from what its process holds.
    const waiter = await startFrom(m1, X1.address, { lang: 'x-redis', region: 'near', show_country: 'true' });
    await waiter.m.expect('waiting');
    const { a, b } = await pair(m1, m2, 'x-redis-pair');
    await redis.kill();
    for (const p of [m1, m2, s1, s2]) {
      await eventually(async () => ((await status(`${p.http(p === s1 || p === s2 ? 'signalling' : 'matching')}/readyz`)) === 503 ? true : undefined), `${p.name} /readyz 503`);
    }
    const started = Date.now();
    const reg = await fetch(`${m2.http('matching')}/register`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(5_000) });
    await reg.arrayBuffer();
    assert.ok(reg.status >= 500, `registration refused while Redis is down (got ${reg.status})`);
    a.m.send({ event: 'chat', message: 'anyone?' });
    const failed = await a.m.expect('error');
    assert.equal(failed.code, 'rate-limited', 'a clear error, not silence');
    assert.ok(Date.now() - started < 5_000);

    await redis.run();
    for (const p of [m1, m2, s1, s2]) {
      await eventually(async () => ((await status(`${p.http(p === s1 || p === s2 ? 'signalling' : 'matching')}/readyz`)) === 200 ? true : undefined), `${p.name} /readyz 200`, 10_000);
    }
    // Redis came back empty: the waiting session is queued again, the pair was lost.
    await waiter.m.expect('waiting', { timeoutMs: 10_000 });
    assert.equal((await a.m.expect('peer-disconnected', { timeoutMs: 10_000 })).reason, 'timeout');
    assert.equal((await b.m.expect('peer-disconnected', { skip: 'any', timeoutMs: 10_000 })).reason, 'timeout');
    const newcomer = await startFrom(m2, X2.address, { lang: 'x-redis', region: 'near' });
    const toNewcomer = await newcomer.m.expect('matched', { skip: 'any' });
    assert.equal(toNewcomer.peer, waiter.id);
    assert.equal(toNewcomer.country, X1.country, 'the waiter still shows its country');
    assert.equal((await waiter.m.expect('matched')).peer, newcomer.id);
    a.m.send({ event: 'next' });
    await a.m.expect('waiting', { skip: 'any' });
    for (const s of [waiter.m, a.m, b.m, newcomer.m]) s.close();
  });
});

// With REDIS_RELAY_LANES on a Cluster, a signal relayed without a script goes
// to a lane of the receiving process, in a slot of its own: the relayed
// signals spread over the shards, and order holds across the two streams.
describe('relay lanes on a Redis Cluster of three primaries', { timeout: 90_000 }, () => {
  let cluster: Backend;
  let p1: DyadProcess;
  let p2: DyadProcess;
  before(async () => {
    const backend = BACKENDS.find((b) => b.name.includes('Cluster'));
    assert.ok(backend);
    cluster = await backend.start();
    const lanes = { ...cluster.env, GRACE_MS: String(GRACE_MS), REDIS_RELAY_LANES: '3', ROLES: 'matching,signalling' };
    [p1, p2] = await Promise.all([DyadProcess.start('l1', lanes), DyadProcess.start('l2', lanes)]);
  });

  after(async () => {
    await WireClient.closeAll();
    await Promise.all([p1, p2].filter(Boolean).map((p) => p.stop('SIGKILL')));
    await cluster?.stop();
  });

  /** A pair on the two processes with both signalling sockets joined and the first answer passed. */
  async function joined(lang: string): Promise<{ a: Session; b: Session; ini: Joined; res: Joined; room: string }> {
    const p = await pair(p1, p2, lang);
    const { ini, res } = await offerAnswer(p, p.ma.initiator ? p1 : p2, p.ma.initiator ? p2 : p1, 20);
    return { a: p.a, b: p.b, ini, res, room: p.room };
  }

  it('puts each process’s lanes on every shard and relays candidates through them, in order both ways', async () => {
    const lanes = await cluster.nodeKeys('dyad:{dyad-*}:relay');
    assert.deepEqual(
      lanes.map((keys) => keys.length),
      [2, 2, 2],
      'one lane per process on each shard',
    );
    const { a, b, ini, res, room } = await joined('x-lanes');
    const before = await cluster.nodeCalls();
    await trickleBoth(ini, res, room, 100);
    const after = await cluster.nodeCalls();
    const xadds = after.map((n, i) => (n.xadd ?? 0) - (before[i]?.xadd ?? 0));
    const evals = after.map((n, i) => (n.fcall ?? 0) + (n.evalsha ?? 0) - (before[i]?.fcall ?? 0) - (before[i]?.evalsha ?? 0));
    assert.ok(xadds.reduce((x, y) => x + y, 0) >= 2, `relayed by XADD: ${xadds.join(', ')}`);
    assert.ok(evals.reduce((x, y) => x + y, 0) < 100, `no script per candidate: ${evals.join(', ')}`);
    a.m.close();
    b.m.close();
  });

  it('keeps the last candidates ahead of a leave that follows them, even while their shard stalls', async () => {
    const { a, b, ini, res, room } = await joined('x-lanes-stall');
    assert.ok(cluster.pauseOthers && cluster.resumeOthers);
    // The room's lane is on a stalled shard (or, a third of the time, on the state's own): the candidates'
    // write waits, and the leave behind them must not reach the partner first. Shorter than the longest wait for order.
    cluster.pauseOthers();
    try {
      for (let i = 0; i < 10; i++) ini.s.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: `c${i}`, i } });
      ini.s.send({ event: 'leave', room_code: room });
      await sleep(150);
    } finally {
      cluster.resumeOthers();
    }
    for (let i = 0; i < 10; i++) assert.equal(Number(((await res.s.expect('signal')).data as { i: number }).i), i);
    assert.equal((await res.s.expect('peer-disconnected')).reason, 'left');
    a.m.close();
    b.m.close();
  });
});
