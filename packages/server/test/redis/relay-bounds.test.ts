// What a process holds for Redis while Redis falls behind is bounded (fifth
// review, finding X1): 16 addresses flooding relayed signals within every
// per-address limit drove one process to 5 GB and Redis to 1.8 GB. Two real
// processes on a private redis-server, real WebSocket clients; Redis is
// stalled (SIGSTOP) while a member sends, so that nothing is acknowledged.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DyadProcess } from './support/dyad-process.js';
import { RedisServer } from './support/redis-server.js';
import { WireClient, sleep, type Events } from '../support/ws-client.js';

const WAIT_MS = 5_000;
/** Each signal's data: some 12 KB, as the review's (15 KB) within MAX_FRAME_BYTES. */
const BIG = 'x'.repeat(12_000);
const RELAY_BYTES_IN_FLIGHT = 256 * 1024;
const MESSAGE_BYTES_WAITING_TOTAL = 256 * 1024;
const RELAY_BACKLOG_ENTRIES = 4;

interface Member {
  id: string;
  token: string;
  m: WireClient;
  s: WireClient;
  /** The process its sockets are on. */
  proc: DyadProcess;
}

let redis: RedisServer;
let p1: DyadProcess;
let p2: DyadProcess;

const open = (url: string, channel: 'matching' | 'signalling', label: string): Promise<WireClient> => WireClient.open(url, { channel, label, waitMs: WAIT_MS });

/**
 * Two sessions, the first on `pa` and the second on `pb`, paired; the
 * initiator joins on its own process's signalling, then the other: the
 * initiator's `peer-joined` comes with the route to its partner, so its
 * candidates go straight to the partner's process from then on.
 */
async function joinedPair(pa: DyadProcess, pb: DyadProcess, lang: string): Promise<{ ini: Member; res: Member; room: string }> {
  const start = async (p: DyadProcess): Promise<Omit<Member, 's' | 'proc'>> => {
    const m = await open(`${p.ws('matching')}/ws?lang=${lang}`, 'matching', `${p.name}/matching`);
    const s = await m.expect('session');
    return { id: s.id, token: s.token, m };
  };
  const a = await start(pa);
  await a.m.expect('waiting');
  const b = await start(pb);
  const mb = await b.m.expect('matched', { skip: 'any' });
  const ma = await a.m.expect('matched');
  assert.notEqual(ma.initiator, mb.initiator);
  const room = ma.room_code;
  const join = async (who: Omit<Member, 's' | 'proc'>, p: DyadProcess): Promise<Member> => {
    const s = await open(`${p.ws('signalling')}/ws/${encodeURIComponent(who.id)}?token=${encodeURIComponent(who.token)}`, 'signalling', `${p.name}/signalling`);
    s.send({ event: 'join', room_code: room });
    await s.expect('verified');
    return { ...who, s, proc: p };
  };
  const [[iniWho, iniProc], [resWho, resProc]] = ma.initiator ? [[a, pa] as const, [b, pb] as const] : [[b, pb] as const, [a, pa] as const];
  const ini = await join(iniWho, iniProc);
  const res = await join(resWho, resProc);
  await ini.s.expect('peer-joined');
  return { ini, res, room };
}

/** The number a test put at the front of a signal's data. */
const seqOf = (m: Events['signal']): number => Number(String((m.data as { candidate?: string; sdp?: string }).candidate ?? (m.data as { sdp: string }).sdp).split(':')[0]);

async function rejected(proc: DyadProcess, code: string): Promise<number> {
  const text = await (await fetch(`${proc.http('matching')}/metrics`, { signal: AbortSignal.timeout(3_000) })).text();
  const m = new RegExp(`^dyad_rejected_total\\{[^}]*code="${code}"[^}]*\\} (\\d+)`, 'm').exec(text);
  return Number(m?.[1] ?? 0);
}

describe('relaying between processes through Redis is bounded while Redis falls behind', { timeout: 90_000 }, () => {
  before(async () => {
    redis = await RedisServer.start();
    const env = {
      REDIS_URL: redis.url,
      ROLES: 'matching,signalling',
      RELAY_BYTES_IN_FLIGHT: String(RELAY_BYTES_IN_FLIGHT),
      MESSAGE_BYTES_WAITING_TOTAL: String(MESSAGE_BYTES_WAITING_TOTAL),
      RELAY_BACKLOG_ENTRIES: String(RELAY_BACKLOG_ENTRIES),
      INTEREST_TIMEOUT_MS: '600000', DBG_RELAY: '1',
    };
    [p1, p2] = await Promise.all([DyadProcess.start('p1', env), DyadProcess.start('p2', env)]);
  });

  after(async () => {
    redis?.resume();
    await WireClient.closeAll();
    await Promise.all([p1, p2].filter(Boolean).map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  it('past RELAY_BYTES_IN_FLIGHT a candidate to relay is answered rate-limited at once; what was relayed arrives, in order', async () => {
    const { ini, res, room } = await joinedPair(p1, p2, 'relay-bytes');
    // The route is known once a candidate arrives straight from the other process.
    ini.s.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: '-1:first' } });
    assert.equal(seqOf((await res.s.expect('signal')) as Events['signal']), -1);
    const n = 100;
    redis.pause();
    try {
      for (let i = 0; i < n; i++) ini.s.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: `${i}:${BIG}` } });
      // Answered by the sender's process alone: Redis is stalled.
      const refusals: Events['error'][] = [];
      const least = n - Math.ceil(RELAY_BYTES_IN_FLIGHT / BIG.length);
      while (refusals.length < least) refusals.push((await ini.s.expect('error', { timeoutMs: 3_000 })) as Events['error']);
      for (const e of refusals) {
        assert.equal(e.code, 'rate-limited');
        assert.match(e.message, /RELAY_BYTES_IN_FLIGHT/);
      }
    } finally {
      redis.resume();
    }
    const refused = ini.s.history.filter((m) => m.event === 'error').length;
    const got: number[] = [];
    for (let i = 0; i < n - refused; i++) got.push(seqOf((await res.s.expect('signal')) as Events['signal']));
    assert.deepEqual(got, [...got].sort((x, y) => x - y), 'what was relayed arrives in the order sent');
    assert.equal(got.length + refused, n, 'each candidate either arrived or its sender was told');
    assert.ok(got.length * BIG.length <= RELAY_BYTES_IN_FLIGHT, `at most RELAY_BYTES_IN_FLIGHT went out unacknowledged (${got.length} signals)`);
    await res.s.expectSilence(300);
  });

  it("past RELAY_BACKLOG_ENTRIES unread in the partner's process's inbox, nothing more is relayed to it until it reads; what was relayed arrives, in order", async () => {
    const { ini, res, room } = await joinedPair(p1, p2, 'relay-backlog');
    ini.s.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: '-1:first' } });
    assert.equal(seqOf((await res.s.expect('signal')) as Events['signal']), -1);
    // The partner's process stops reading (for less than its heartbeat's lifetime); Redis goes on.
    assert.notEqual(res.proc, ini.proc);
    res.proc.child.kill('SIGSTOP');
    const waves = 8;
    const perWave = 10;
    try {
      for (let w = 0; w < waves; w++) {
        for (let i = 0; i < perWave; i++) {
          const seq = w * perWave + i;
          ini.s.send({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: `${seq}:${BIG}` } });
        }
        await sleep(120);
      }
    } finally {
      res.proc.child.kill('SIGCONT');
    }
    const n = waves * perWave;
    const errors = ini.s.history.filter((m): m is Events['error'] => m.event === 'error');
    assert.ok(errors.length > 0, 'the sender was told the partner is behind');
    for (const e of errors) {
      assert.equal(e.code, 'rate-limited');
      assert.match(e.message, /RELAY_BACKLOG_ENTRIES/);
    }
    const got: number[] = [];
    for (let i = 0; i < n - errors.length; i++) got.push(seqOf((await res.s.expect('signal', { timeoutMs: 10_000 })) as Events['signal']));
    assert.deepEqual(got, [...got].sort((x, y) => x - y), 'what was relayed arrives in the order sent');
    assert.equal(got.length + errors.length, n, 'each candidate either arrived or its sender was told');
  });

  it('past MESSAGE_BYTES_WAITING_TOTAL a socket is read no more until what waits is handled; then every message is', async () => {
    const { ini, res, room } = await joinedPair(p1, p2, 'waiting-bytes');
    const before = await rejected(ini.proc, 'waiting-full');
    // Offers before the first answer go through the store's script: with Redis stalled, each waits for it.
    const n = 60;
    redis.pause();
    let during: number;
    try {
      for (let i = 0; i < n; i++) ini.s.send({ event: 'signal', room_code: room, type: 'offer', data: { sdp: `${i}:${BIG}` } });
      await sleep(500);
      during = await rejected(ini.proc, 'waiting-full');
    } finally {
      redis.resume();
    }
    assert.ok(during > before, `the socket was paused past MESSAGE_BYTES_WAITING_TOTAL (dyad_rejected_total{code="waiting-full"} ${before} -> ${during})`);
    const got: number[] = [];
    for (let i = 0; i < n; i++) got.push(seqOf((await res.s.expect('signal', { timeoutMs: 10_000 })) as Events['signal']));
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => i), 'every offer, in the order sent, once the socket was read again');
  });
});
