// The Redis store beyond the shared contract: several store instances (as
// several processes would hold) on one private redis-server. Key lifetimes,
// delivery through inboxes, release and reaping, healing, bounded pairing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { ServerMessage } from '@dyad/protocol';
import type { RedisStore, RedisStoreOptions } from '../../src/store/redis/index.js';
import { LIBRARY, SCRIPTS, SOCKET_SCRIPTS } from '../../src/store/redis/lua.js';
import type { Effects } from '../../src/store/store.js';
import { encodeSignalData, signalFrame } from '../../src/core/frames.js';
import { DEFAULTS } from '../contract/harness.js';
import { privateRedis } from './support/private-redis.js';
import { RedisCluster } from './support/redis-cluster.js';
import { eventually, sleep } from '../support/ws-client.js';

const redis = privateRedis();

/** A store as one process holds it, recording what reaches it from elsewhere. */
class Proc {
  readonly inbox: Effects[] = [];
  private constructor(readonly store: RedisStore) {}
  static async start(prefix: string, opts: Partial<RedisStoreOptions> = {}): Promise<Proc> {
    const store = redis.makeStore(prefix, opts);
    const p = new Proc(store);
    store.subscribe(async (fx) => {
      p.inbox.push(fx);
    });
    await store.start();
    return p;
  }
  /** Every message delivered here from outside a call, to one conn. */
  received(conn: string): ServerMessage[] {
    return this.inbox.flatMap((fx) =>
      fx.deliver.filter((d) => d.conn === conn).map((d) => d.msg ?? (JSON.parse(signalFrame(d.signal)) as ServerMessage)),
    );
  }
  async session(conn: string, opts: { name?: string; addr?: string; interests?: string[]; lang?: string } = {}): Promise<{ id: string; token: string; fx: Effects }> {
    const token = randomBytes(12).toString('hex');
    const r = await this.store.register(
      { name: opts.name, mode: 'video', interests: opts.interests ?? [], lang: opts.lang, token, addr: opts.addr ?? conn },
      Date.now(),
    );
    assert.equal(r.status, 'ok');
    if (r.status !== 'ok') throw new Error('register');
    const a = await this.store.attachMatching(r.id, token, conn, Date.now());
    assert.ok(a.ok);
    return { id: r.id, token, fx: a.ok ? a.effects : (undefined as never) };
  }
}

const prefix = (): string => `s${randomBytes(4).toString('hex')}:`;

/**
 * Two processes whose heartbeats are written once and kept (the test takes
 * a's away itself, takeForDead): b's reaper judges a missing one at its next
 * look, and a's sockets keep their place for a minute once taken.
 */
async function watched(p: string): Promise<{ a: Proc; b: Proc }> {
  const a = await Proc.start(p, { heartbeatMs: 3_600_000, heartbeatTtlMs: 3_600_000, graceMs: 60_000 });
  const b = await Proc.start(p, { heartbeatMs: 3_600_000, heartbeatTtlMs: 3_600_000, suspectMs: 0 });
  return { a, b };
}

/** a's heartbeat lapses, and b's reaper takes it for dead: it is suspected at the first look, and dropped at the next once the reaper's lock has lapsed. */
async function takeForDead(p: string, a: Proc, b: Proc): Promise<void> {
  await redis.admin.del(`${p}{dyad}:hb:${a.store.procId}`);
  await b.store.reap(Date.now());
  await sleep(150);
  await b.store.reap(Date.now());
}

/** Redis's count of function calls (FCALL) so far. */
const fcalls = async (): Promise<number> =>
  Number(/calls=(\d+)/.exec((await redis.admin.info('commandstats')).split('\n').find((l) => l.startsWith('cmdstat_fcall:')) ?? '')?.[1] ?? 0);

/** `send` (a signal) ends up relayed without a script: Redis ran no function for it (tried until it does). */
async function relayedWithoutScript(send: () => Promise<unknown>, what: string): Promise<void> {
  await eventually(async () => {
    const before = await fcalls();
    await send();
    return (await fcalls()) === before ? true : undefined;
  }, `${what} relayed without a script`);
}

type Session = Awaited<ReturnType<Proc['session']>>;

/** x (socket ca) on a and y (cb) on b, paired, each told `matched` (y's is returned: the room, and whether y initiates). */
async function pairAcross(a: Proc, b: Proc): Promise<{ x: Session; y: Session; matched: Extract<ServerMessage, { event: 'matched' }> }> {
  const x = await a.session('ca');
  const y = await b.session('cb');
  const matched = b.received('cb').find((m) => m.event === 'matched');
  assert.ok(matched?.event === 'matched');
  await eventually(async () => (a.received('ca').some((m) => m.event === 'matched') ? true : undefined), 'x matched');
  return { x, y, matched };
}

/** One member's side of a room across two processes: its process, session and signalling socket. */
interface Side {
  proc: Proc;
  s: Session;
  conn: string;
}

/**
 * x (sockets ca, sa) on a and y (cb, sb) on b, paired and both joined: the
 * room, and the initiator's side and the responder's.
 */
async function joinedAcross(a: Proc, b: Proc): Promise<{ x: Session; y: Session; room: string; ini: Side; res: Side }> {
  const { x, y, matched } = await pairAcross(a, b);
  const room = matched.room_code;
  await a.store.attachSignalling(x.id, x.token, 'sa', Date.now());
  await b.store.attachSignalling(y.id, y.token, 'sb', Date.now());
  await a.store.join(x.id, 'sa', room, Date.now());
  await b.store.join(y.id, 'sb', room, Date.now());
  const sx: Side = { proc: a, s: x, conn: 'sa' };
  const sy: Side = { proc: b, s: y, conn: 'sb' };
  return { x, y, room, ...(matched.initiator ? { ini: sy, res: sx } : { ini: sx, res: sy }) };
}

/**
 * As joinedAcross, with offer and answer passed through the scripts, each
 * with the other's signal (and so the routes that came with it): from here
 * each process relays its member's signals itself, into the other's inbox.
 */
async function roomAcross(a: Proc, b: Proc): Promise<{ x: Session; y: Session; room: string }> {
  const { x, y, room, ini, res } = await joinedAcross(a, b);
  await ini.proc.store.signal(ini.s.id, ini.conn, room, 'offer', JSON.stringify({ sdp: 'o' }), Date.now());
  await res.proc.store.signal(res.s.id, res.conn, room, 'answer', JSON.stringify({ sdp: 'a' }), Date.now());
  await eventually(async () => (a.received('sa').some((m) => m.event === 'signal') ? true : undefined), 'x has its signal');
  await eventually(async () => (b.received('sb').some((m) => m.event === 'signal') ? true : undefined), 'y has its signal');
  return { x, y, room };
}

/**
 * x's `next` runs in Redis (at url, the node holding the store's state) and its
 * reply is lost with the connection: the call fails (it is never sent again, so
 * it never runs twice or late), and x is told where it stands once Redis answers again.
 */
async function replyLost(on: Partial<RedisStoreOptions>, url: string): Promise<void> {
  const p = prefix();
  const a = await Proc.start(p, on);
  const b = await Proc.start(p, on);
  const x = await a.session('ca');
  // The partner is on another process: what x's `next` tells x comes back only in its reply.
  await b.session('cb');
  await eventually(async () => (a.received('ca').some((m) => m.event === 'matched') ? true : undefined), 'x matched');
  let nexted!: Promise<string>;
  // x's `next`, then the cut of all a's connections: the script runs and its reply is thrown away with the connection.
  await cutWhileBusy(url, a.store.procId, false, async () => {
    nexted = a.store.next(x.id, 'ca', Date.now()).then(
      () => 'answered',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    await sleep(30);
  });
  assert.match(await nexted, /store unavailable/, 'the reply was lost');
  const node = new Redis(url);
  try {
    assert.equal(await node.hget(`${p}{dyad}:s:${x.id}`, 'st'), 'waiting', 'the next ran');
  } finally {
    node.disconnect();
  }
  // Once a reconnects, x hears where it stands: waiting, after the matched it had.
  await eventually(async () => (a.received('ca').at(-1)?.event === 'waiting' ? true : undefined), 'x told waiting');
  assert.deepEqual(
    a.received('ca').map((m) => m.event),
    ['waiting', 'matched', 'waiting'],
  );
}

/** Once process `a` answers again after its connections were cut (x's token checked, a read on the calls' connection). */
async function reconnected(a: Proc, x: Session): Promise<void> {
  await eventually(async () => ((await a.store.verify(x.id, x.token)) ? true : undefined), 'a reconnected');
}

/**
 * Redis at url (a node) held busy for 300 ms by a looping script: what `queue`
 * sends meanwhile (without waiting for answers) waits its turn, and after it
 * the connections of process procId are cut, as a network blip would, but for
 * its inbox reader's (blocked in its read) when `spareReader`.
 */
async function cutWhileBusy(url: string, procId: string, spareReader: boolean, queue: () => Promise<void>): Promise<void> {
  const admin = new Redis(url);
  const busy = new Redis(url);
  const cutter = new Redis(url);
  try {
    const list = String(await admin.client('LIST'));
    const conns = [...list.matchAll(/\bid=(\d+) .*\bname=dyad-([^ ]+) .*\bflags=(\w+)/g)]
      .filter((m) => m[2] === procId && !(spareReader && (m[3] ?? '').includes('b')))
      .map((m) => m[1] ?? '');
    assert.ok(conns.length >= 1);
    await Promise.all([busy.ping(), cutter.ping()]);
    const busyLoop = busy
      .eval("local t = redis.call('TIME') local t0 = t[1] * 1e6 + t[2] repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - t0 > 300000 return 1", 0)
      .catch(() => undefined);
    await sleep(50);
    await queue();
    await Promise.all([...conns.map((id) => cutter.call('CLIENT', 'KILL', 'ID', id)), busyLoop]);
  } finally {
    admin.disconnect();
    busy.disconnect();
    cutter.disconnect();
  }
}

/** x's resumption on socket `conn` of process a, sent while Redis is busy, a's connections cut `waitMs` later: what it came to ('answered', or its error). */
async function resumeWhileCut(a: Proc, x: Session, conn: string, waitMs: number): Promise<{ resumed: Promise<string> }> {
  let resumed!: Promise<string>;
  await cutWhileBusy(redis.server.url, a.store.procId, false, async () => {
    resumed = a.store.attachMatching(x.id, x.token, conn, Date.now()).then(
      () => 'answered',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    await sleep(waitMs);
  });
  return { resumed };
}

describe('Redis store', { timeout: 60_000 }, () => {
  it('delivers to sockets of another process through its inbox, in order', async () => {
    const p = prefix();
    const a = await Proc.start(p);
    const b = await Proc.start(p);
    const x = await a.session('ca');
    const y = await b.session('cb');
    // A call returns once its own process has carried out what it sent there.
    assert.deepEqual(
      b.received('cb').map((m) => m.event),
      ['waiting', 'matched'],
    );
    await eventually(async () => (a.received('ca').some((m) => m.event === 'matched') ? true : undefined), 'matched through the inbox');
    for (let i = 0; i < 50; i++) await b.store.chat(y.id, 'cb', `m${i}`, Date.now());
    await eventually(async () => (a.received('ca').filter((m) => m.event === 'chat').length === 50 ? true : undefined), '50 chats');
    const chats = a.received('ca').filter((m): m is Extract<ServerMessage, { event: 'chat' }> => m.event === 'chat');
    assert.deepEqual(
      chats.map((m) => m.message),
      Array.from({ length: 50 }, (_, i) => `m${i}`),
    );
    assert.ok(chats.every((m) => m.sender === y.id));
    assert.ok(x.id);
  });

  it('what a reply holds for its own process’s sockets comes after the inbox entries written before it, however late the reader is', async () => {
    const p = prefix();
    const a = await Proc.start(p);
    const b = await Proc.start(p);
    const x = await a.session('ca');
    // From here, process a's hub is slow to carry out the `matched` that b's pairing sends through a's inbox.
    const seen: string[] = [];
    let hold!: () => void;
    const held = new Promise<void>((r) => (hold = r));
    let holding = false;
    a.store.subscribe(async (fx) => {
      for (const d of fx.deliver) {
        if (d.conn !== 'ca' || !d.msg) continue;
        seen.push(d.msg.event);
        if (d.msg.event === 'matched') {
          holding = true;
          await held;
        }
      }
    });
    await b.session('cb');
    await eventually(async () => (holding ? true : undefined), 'a is carrying out matched');
    // a's own call: its `waiting` comes back in the reply, placed after the `matched` entry.
    const next = a.store.next(x.id, 'ca', Date.now());
    try {
      await sleep(150);
      assert.deepEqual(seen, ['matched'], 'nothing of the reply overtakes the entry being carried out');
    } finally {
      hold();
      await next;
    }
    assert.deepEqual(seen, ['matched', 'waiting']);
  });

  it('gives every key it writes a lifetime, and deletes a room when it ends', async () => {
    const p = prefix();
    const a = await Proc.start(p, { graceMs: 200 });
    const b = await Proc.start(p, { graceMs: 200 });
    const now = (): number => Date.now();
    const x = await a.session('c1', { addr: 'ax', interests: ['go'], lang: 'en' });
    const y = await b.session('c2', { addr: 'ay', interests: ['go'], lang: 'en' });
    const room = b.received('c2').find((m) => m.event === 'matched');
    assert.ok(room?.event === 'matched');
    await a.store.attachSignalling(x.id, x.token, 's1', now());
    await a.store.join(x.id, 's1', room.room_code, now());
    await a.store.signal(x.id, 's1', room.room_code, room.initiator ? 'answer' : 'offer', JSON.stringify({ sdp: 'kept' }), now());
    await a.store.detachMatching(x.id, 'c1', false, now());
    await b.store.chat(y.id, 'c2', 'kept for x', now());
    await b.store.report(y.id, 'c2', undefined, now(), true);
    await a.store.register({ mode: 'text', interests: [], token: 'never-connects', addr: 'az' }, now());
    await b.store.reap(now());
    const keys = await redis.admin.keys(`${p}*`);
    assert.ok(keys.length > 15, `a busy Redis (${keys.length} keys)`);
    for (const key of keys) {
      const ttl = await redis.admin.pttl(key);
      assert.ok(ttl > 0 && ttl <= 86_400_000, `${key} has a lifetime (${ttl})`);
    }
    assert.equal(await redis.admin.exists(`${p}{dyad}:r:${room.room_code}`), 1);
    await b.store.next(y.id, 'c2', now());
    assert.equal(await redis.admin.exists(`${p}{dyad}:r:${room.room_code}`), 0, 'room metadata goes with the room');
    assert.deepEqual(await redis.admin.keys(`${p}{dyad}:rk:*`), []);
    // Who met whom outlives the room only for the re-pair cooldown and a late report (10 minutes at most).
    const met = [...(await redis.admin.keys(`${p}{dyad}:lp:*`)), ...(await redis.admin.keys(`${p}{dyad}:cd:*`))];
    assert.ok(met.length >= 2);
    for (const key of met) {
      const ttl = await redis.admin.pttl(key);
      assert.ok(ttl > 0 && ttl <= DEFAULTS.repairCooldownMs && ttl <= 600_000, `${key} expires with the cooldown (${ttl})`);
    }
  });

  it('release on shutdown leaves sessions resumable elsewhere; a dead process’s grace periods end through the reaper', async () => {
    const p = prefix();
    const a = await Proc.start(p, { graceMs: 300 });
    const b = await Proc.start(p, { graceMs: 300 });
    const x = await a.session('ax');
    const y = await b.session('by');
    assert.equal((await a.store.shutdown(Date.now())).deliver.length, 0, 'the partner is told nothing');
    // x comes back on b within the grace period: same room.
    const back = await b.store.attachMatching(x.id, x.token, 'bx', Date.now());
    assert.ok(back.ok);
    const resumed = b.received('bx')[0];
    assert.ok(resumed?.event === 'matched' && resumed.resumed === true && resumed.peer === y.id);

    const a2 = await Proc.start(p, { graceMs: 300 });
    const z = await a2.session('az');
    await b.session('bw');
    assert.ok(b.received('bw').some((m) => m.event === 'matched'));
    await a2.store.shutdown(Date.now());
    await sleep(400);
    const fx = await b.store.reap(Date.now());
    assert.deepEqual(fx.ended, ['timeout']);
    const told = await eventually(async () => b.received('bw').find((m) => m.event === 'peer-disconnected'), 'w to be told');
    assert.ok(told.event === 'peer-disconnected' && told.reason === 'timeout');
    assert.equal(await b.store.verify(z.id, z.token), false, 'z ended');
  });

  it('a chat still in a dead process’s inbox reaches the resumed member ahead of those kept after that process was taken for dead', async () => {
    const p = prefix();
    const a = await Proc.start(p, { heartbeatMs: 3_600_000, graceMs: 60_000 });
    const b = await Proc.start(p, { heartbeatMs: 3_600_000, heartbeatTtlMs: 3_600_000, suspectMs: 0, graceMs: 60_000 });
    const x = await a.session('ax');
    const y = await b.session('by');
    assert.equal(b.received('by').filter((m) => m.event === 'matched').length, 1);
    // a dies without a word: what is sent to its socket now waits in its inbox, unread.
    await a.store.close();
    await b.store.chat(y.id, 'by', 'm0', Date.now());
    // Its heartbeat is gone: the next chats are kept for x at once.
    await redis.admin.del(`${p}{dyad}:hb:${a.store.procId}`);
    await b.store.chat(y.id, 'by', 'm1', Date.now());
    await b.store.chat(y.id, 'by', 'm2', Date.now());
    await b.store.reap(Date.now()); // first look: suspected
    await sleep(150); // the reaper's lock lapses
    await b.store.reap(Date.now()); // still missing: x's socket dropped, m0 taken from a's inbox
    const back = await b.store.attachMatching(x.id, x.token, 'bx', Date.now());
    assert.ok(back.ok);
    await eventually(async () => (b.received('bx').filter((m) => m.event === 'chat').length === 3 ? true : undefined), 'three chats on resumption');
    assert.deepEqual(
      b.received('bx').flatMap((m) => (m.event === 'chat' ? [m.message] : [])),
      ['m0', 'm1', 'm2'],
      'in the order sent',
    );
  });

  it('reaps the sockets of a process whose heartbeat stopped, and a process taken for dead by mistake takes its sockets back', async () => {
    const p = prefix();
    const a = await Proc.start(p, { heartbeatMs: 3_600_000, graceMs: 60_000 });
    const b = await Proc.start(p, { heartbeatMs: 3_600_000, heartbeatTtlMs: 3_600_000, suspectMs: 0 });
    const x = await a.session('ax');
    await takeForDead(p, a, b); // its sockets dropped
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mc'), null);
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mg'), 'ax');
    await b.session('by');
    assert.equal(b.received('by').filter((m) => m.event === 'matched').length, 0, 'a reaped socket is not paired');
    // a's next heartbeat finds it lapsed and re-announces its sockets.
    await a.store.heartbeat();
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mc'), 'ax');
    await eventually(async () => (a.received('ax').some((m) => m.event === 'matched') ? true : undefined), 'x paired once back');
  });

  it('a stall that let every heartbeat lapse, the reaper’s own included, takes nobody for dead; once the reaper’s is back, a missing one is judged afresh', async () => {
    const p = prefix();
    // Heartbeats written once and kept: the test takes them away itself.
    const { a, b } = await watched(p);
    const x = await a.session('ax');
    const hb = (proc: Proc): string => `${p}{dyad}:hb:${proc.store.procId}`;
    // Redis held up past the heartbeats' lifetime: every one of them lapsed, b's included.
    await redis.admin.del(hb(a), hb(b));
    await b.store.reap(Date.now());
    await sleep(150); // the reaper's lock lapses
    await b.store.reap(Date.now());
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mc'), 'ax', 'a is not taken for dead while the reaper’s own heartbeat is missing');
    assert.equal(await redis.admin.hexists(`${p}{dyad}:suspects`, a.store.procId), 0, 'nor suspected');
    // b beats again; a's heartbeat stays missing: a is suspected afresh, then dead.
    await b.store.heartbeat();
    await sleep(150);
    await b.store.reap(Date.now()); // first look: suspected
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mc'), 'ax', 'one look is not enough');
    await sleep(150);
    await b.store.reap(Date.now()); // still missing: its sockets dropped
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mc'), null);
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mg'), 'ax');
  });

  it('a process taken for dead while alive delivers what the reaper kept for its sockets, and its heal drops those copies: nothing is told twice', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, y, matched } = await pairAcross(a, b);
    // Both join the room: x's signalling socket on a, y's on b.
    await a.store.attachSignalling(x.id, x.token, 'sa', Date.now());
    await b.store.attachSignalling(y.id, y.token, 'sb', Date.now());
    await a.store.join(x.id, 'sa', matched.room_code, Date.now());
    await b.store.join(y.id, 'sb', matched.room_code, Date.now());
    // From here a's reader is held up on the first entry for x's sockets (a stalled process):
    // the entry stays in a's inbox, not carried out.
    const told: { conn: string; what: string }[] = [];
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let holding = false;
    a.store.subscribe(async (fx) => {
      for (const d of fx.deliver) {
        if (d.msg?.event === 'chat') told.push({ conn: d.conn, what: `chat ${d.msg.message}` });
        if (d.signal) told.push({ conn: d.conn, what: `signal ${d.signal.data}` });
      }
      if (!holding && fx.deliver.some((d) => d.conn === 'ca' || d.conn === 'sa')) {
        holding = true;
        await released;
      }
    });
    await b.store.chat(y.id, 'cb', 'hello', Date.now());
    await b.store.signal(y.id, 'sb', matched.room_code, matched.initiator ? 'offer' : 'answer', JSON.stringify({ sdp: 'once' }), Date.now());
    await eventually(async () => (holding ? true : undefined), 'a is carrying out the chat');
    // a's heartbeat lapses (b's does not): b takes a for dead and keeps what a's inbox holds for x.
    await takeForDead(p, a, b); // x's sockets dropped, their in-flight messages kept
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mc'), null, 'x’s matching socket was taken from a');
    assert.equal(await redis.admin.llen(`${p}{dyad}:kc:${x.id}`), 1, 'the chat on its way is kept for x');
    // a was only slow: it carries out its inbox (the chat and the signal reach x's sockets
    // there), then its heartbeat finds the lapse and it takes its sockets back.
    release();
    await eventually(async () => (told.filter((t) => t.conn === 'ca' || t.conn === 'sa').length === 2 ? true : undefined), 'a delivered both');
    await a.store.heartbeat();
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mc'), 'ca', 'a took x’s matching socket back');
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'sc'), 'sa', 'and its signalling socket');
    // x's sockets drop and resume: nothing a delivered is told again.
    await a.store.detachMatching(x.id, 'ca', false, Date.now());
    await a.store.detachSignalling(x.id, 'sa', false, Date.now());
    const resumed = await a.store.attachMatching(x.id, x.token, 'ca2', Date.now());
    assert.ok(resumed.ok);
    const rejoined = await a.store.attachSignalling(x.id, x.token, 'sa2', Date.now());
    assert.ok(rejoined.ok);
    const joinFx = await a.store.join(x.id, 'sa2', matched.room_code, Date.now());
    const again = [...resumed.effects.deliver, ...rejoined.effects.deliver, ...joinFx.deliver].filter((d) => d.msg?.event === 'chat' || d.signal);
    await sleep(100);
    const late = told.filter((t) => t.conn === 'ca2' || t.conn === 'sa2');
    assert.deepEqual([...again.map((d) => (d.signal ? `signal ${d.signal.data}` : 'chat')), ...late.map((t) => t.what)], [], 'nothing told twice');
    assert.deepEqual(
      told.filter((t) => t.conn === 'ca' || t.conn === 'sa').map((t) => t.what),
      ['chat hello', `signal ${JSON.stringify({ sdp: 'once' })}`],
      'each told once, by a',
    );
    // The bytes kept for x were given back with the copies.
    assert.equal(Number((await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'kcb')) ?? 0), 0);
    assert.equal(Number((await redis.admin.get(`${p}{dyad}:kept`)) ?? 0), 0);
  });

  it('a socket that closes while a heal after data loss is under way is not left restored by it (a ghost that would be paired and never leave)', async () => {
    const p = prefix();
    // The heal's first words: said before it looks at what this process holds.
    let began!: () => void;
    const healing = new Promise<void>((r) => (began = r));
    const quiet = (): void => undefined;
    const log = {
      warn: (_o: unknown, msg?: string) => {
        if (!msg?.includes('restoring sessions')) return;
        // Writes held up in Redis for 300 ms from here (reads go on): the heal's first call waits
        // in Redis, and what this process sends meanwhile waits behind it, in order.
        void redis.admin.call('CLIENT', 'PAUSE', '300', 'WRITE');
        began();
      },
      info: quiet,
      error: quiet,
      debug: quiet,
    } as unknown as NonNullable<RedisStoreOptions['log']>;
    const a = await Proc.start(p, { log });
    // More sessions than one heal call takes (200): the last one is restored by a later call.
    let last = { id: '', token: '' };
    for (let i = 0; i < 450; i++) last = await a.session(`c${i}`);
    // Redis loses this store's data, as a restart without persistence would.
    await redis.admin.del(...(await redis.admin.keys(`${p}*`)));
    await healing;
    // The heal has taken in what this process holds (the last session among it) and sent its first call.
    await sleep(100);
    await a.store.detachMatching(last.id, 'c449', true, Date.now());
    const key = `${p}{dyad}:s:${last.id}`;
    await eventually(async () => ((await redis.admin.exists(key)) === 0 ? true : undefined), 'the session of the closed socket gone from Redis');
    // And it stays gone: the heal is long done.
    await sleep(1_000);
    assert.equal(await redis.admin.exists(key), 0, 'no ghost of the closed socket');
  });

  it('a socket whose first words were lost with Redis’s data (a resumption told through the inbox) is told where it stands by the heal, never left silent', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, y } = await pairAcross(a, b);
    // x's socket drops; a line is kept for it, so its resumption is told through a's inbox (a chat is not told in a reply).
    await a.store.detachMatching(x.id, 'ca', false, Date.now());
    await b.store.chat(y.id, 'cb', 'hello', Date.now());
    // z on a, w on b: w's line to z is an entry of a's inbox that a's hub holds up from here.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let holding = false;
    await a.session('cz');
    const w = await b.session('cw');
    await eventually(async () => (a.received('cz').some((m) => m.event === 'matched') ? true : undefined), 'z matched');
    a.store.subscribe(async (fx) => {
      a.inbox.push(fx);
      if (fx.deliver.some((d) => d.conn === 'cz' && d.msg?.event === 'chat')) {
        holding = true;
        await released;
      }
    });
    await b.store.chat(w.id, 'cw', 'hold', Date.now());
    await eventually(async () => (holding ? true : undefined), 'a\'s reader held');
    // x resumes on a: what it is told waits in a's inbox, behind the entry held.
    const attached = a.store.attachMatching(x.id, x.token, 'cx', Date.now());
    const inbox = `${p}{dyad}:inbox:${a.store.procId}`;
    await eventually(async () => ((await redis.admin.xrange(inbox, '-', '+')).some(([, f]) => (f[1] ?? '').includes('"cx"')) ? true : undefined), 'the resumption\'s words in a\'s inbox');
    // Redis loses its data before a reads them.
    await redis.admin.del(...(await redis.admin.keys(`${p}*`)));
    release();
    await a.store.heartbeat();
    assert.ok((await attached).ok);
    await eventually(async () => (a.received('cx').length > 0 ? true : undefined), 'x told something on its new socket');
    assert.deepEqual(a.received('cx').map((m) => m.event), ['idle']);
    // And it can go on: a `next` puts it in the pool.
    await a.store.next(x.id, 'cx', Date.now());
    await eventually(async () => (a.received('cx').some((m) => m.event === 'waiting') ? true : undefined), 'x waiting after its next');
  });

  it('a heartbeat held up (here by a hub that never finishes carrying out what a heal returned) is logged once, with where it waits, and again when it is done', async () => {
    const p = prefix();
    const warned: { msg: string; o: Record<string, unknown> }[] = [];
    const quiet = (): void => undefined;
    const log = {
      warn: (o: Record<string, unknown>, msg?: string) => warned.push({ msg: msg ?? '', o }),
      info: quiet,
      error: quiet,
      debug: quiet,
    } as unknown as NonNullable<RedisStoreOptions['log']>;
    // Held up past 5 × max(100 ms, 200 ms): logged after a second.
    const a = await Proc.start(p, { log, heartbeatMs: 100, callTimeoutMs: 200 });
    const x = await a.session('ca');
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    a.store.subscribe(async () => released);
    try {
      // x's session is gone and a's heartbeat lapses: a's heal tells ca its session ended
      // (every call is bounded, but carrying out what it returns is the hub's), and the hub never finishes.
      await redis.admin.del(`${p}{dyad}:s:${x.id}`, `${p}{dyad}:hb:${a.store.procId}`);
      await eventually(async () => (warned.some((w) => w.msg === 'a periodic task is held up') ? true : undefined), 'the heartbeat held up, logged');
      const held = warned.filter((w) => w.msg === 'a periodic task is held up');
      assert.equal(held.length, 1);
      assert.equal(held[0]?.o.task, 'heartbeat');
      assert.equal(held[0]?.o.stage, 'heal: carrying out call 1');
      await sleep(1_200);
      assert.equal(warned.filter((w) => w.msg === 'a periodic task is held up').length, 1, 'logged once');
    } finally {
      release();
    }
    await eventually(async () => (warned.some((w) => w.msg === 'a periodic task held up is done') ? true : undefined), 'its end logged');
  });

  it('a heal after data loss cut short by Redis failing again under it is made again, whole, at a later heartbeat', async () => {
    const p = prefix();
    let paused = false;
    const quiet = (): void => undefined;
    const log = {
      warn: (_o: unknown, msg?: string) => {
        if (!msg?.includes('restoring sessions') || paused) return;
        paused = true;
        // The first heal's first call waits longer than a call may (callTimeoutMs below): the heal fails there.
        void redis.admin.call('CLIENT', 'PAUSE', '1000', 'WRITE');
      },
      info: quiet,
      error: quiet,
      debug: quiet,
    } as unknown as NonNullable<RedisStoreOptions['log']>;
    const a = await Proc.start(p, { log, callTimeoutMs: 400 });
    // More sessions than one heal call takes (200): the last one is restored by the third call.
    let last = { id: '', token: '' };
    for (let i = 0; i < 450; i++) last = await a.session(`c${i}`);
    await redis.admin.del(...(await redis.admin.keys(`${p}*`)));
    await eventually(async () => (paused ? true : undefined), 'a heal began');
    const key = `${p}{dyad}:s:${last.id}`;
    await eventually(async () => ((await redis.admin.hget(key, 'mc')) === 'c449' ? true : undefined), 'the last session made again, with its socket', 10_000);
  });

  it('a process taken for dead while alive tells its sockets, once it takes them back, what came for them meanwhile: the chat kept, then the end of the room', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, y } = await pairAcross(a, b);
    // a stalls past its heartbeat: b takes it for dead, and x's socket counts as away.
    await takeForDead(p, a, b); // x's socket dropped
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mc'), null);
    // Meanwhile y writes, then skips: both are kept for x, as for any absent member.
    await b.store.chat(y.id, 'cb', 'are you there?', Date.now());
    await b.store.next(y.id, 'cb', Date.now());
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'news'), 'skip');
    const before = a.received('ca').length;
    // a was only slow: its next heartbeat finds the lapse and it takes x's socket back,
    // which never closed, so the client hears what it missed there, in order.
    await a.store.heartbeat();
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'mc'), 'ca');
    const missed = await eventually(async () => {
      const after = a.received('ca').slice(before);
      return after.some((m) => m.event === 'peer-disconnected') ? after : undefined;
    }, 'x told that its room ended');
    assert.deepEqual(
      missed.map((m) => (m.event === 'chat' ? `chat ${m.message}` : m.event === 'peer-disconnected' ? `peer-disconnected ${m.reason}` : m.event)),
      ['chat are you there?', 'peer-disconnected skip'],
    );
    // Told once: nothing is left for a later resumption to tell again.
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'news'), null);
    assert.equal(await redis.admin.llen(`${p}{dyad}:kc:${x.id}`), 0);
    assert.equal(Number((await redis.admin.get(`${p}{dyad}:kept`)) ?? 0), 0, 'the bytes kept for x were given back');
    await a.store.detachMatching(x.id, 'ca', false, Date.now());
    const resumed = await a.store.attachMatching(x.id, x.token, 'ca2', Date.now());
    assert.ok(resumed.ok);
    await sleep(100);
    assert.deepEqual(
      [...resumed.effects.deliver.filter((d) => d.conn === 'ca2').map((d) => d.msg?.event), ...a.received('ca2').map((m) => m.event)],
      ['idle'],
      'a resumption after it tells only where it stands',
    );
  });

  it('a joined signalling socket taken back by a heal is given the signals kept for it meanwhile, and its partner’s process relays to it straight again', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, y, room } = await roomAcross(a, b);
    const candidates = (): string[] => a.received('sa').flatMap((m) => (m.event === 'signal' && m.type === 'candidate' ? [String((m.data as { candidate: string }).candidate)] : []));
    await takeForDead(p, a, b); // x's sockets dropped
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'sc'), null);
    // While x's socket counts as away, y's candidates are kept for it.
    for (const c of ['c0', 'c1']) await b.store.signal(y.id, 'sb', room, 'candidate', JSON.stringify({ candidate: c }), Date.now());
    assert.equal(await redis.admin.llen(`${p}{dyad}:rk:${room}:${x.id}`), 2);
    // a was only slow: its heal takes x's sockets back, still joined, and hands the candidates over.
    await a.store.heartbeat();
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'sj'), room);
    await eventually(async () => (candidates().length === 2 ? true : undefined), 'x given the kept candidates');
    assert.equal(await redis.admin.llen(`${p}{dyad}:rk:${room}:${x.id}`), 0);
    assert.equal(Number((await redis.admin.get(`${p}{dyad}:kept`)) ?? 0), 0, 'the bytes kept for x were given back');
    // b relays to x's socket without a script again: a later candidate goes straight into a's inbox.
    await relayedWithoutScript(() => b.store.signal(y.id, 'sb', room, 'candidate', JSON.stringify({ candidate: 'c2' }), Date.now()), 'a candidate');
    await eventually(async () => (candidates().at(-1) === 'c2' ? true : undefined), 'x has it');
    assert.deepEqual(candidates().slice(0, 2), ['c0', 'c1'], 'the kept ones first, in order');
  });

  it('a joined signalling socket taken back by a heal after its room ended is told so there, once, as a joined socket is told when its partner leaves', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, y } = await roomAcross(a, b);
    const ended = (): string[] => a.received('sa').flatMap((m) => (m.event === 'peer-disconnected' ? [m.reason] : []));
    await takeForDead(p, a, b); // x's sockets dropped
    // Meanwhile y leaves: the room ends while x's joined signalling socket counts as away.
    await b.store.next(y.id, 'cb', Date.now());
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'sjn'), 'skip');
    // a was only slow: its heal takes x's sockets back; the signalling one hears that the room ended.
    await a.store.heartbeat();
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'sc'), 'sa');
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'sj'), null, 'not joined to a room that is gone');
    await eventually(async () => (ended().length > 0 ? true : undefined), 'x told on signalling that its room ended');
    assert.deepEqual(ended(), ['skip']);
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'sjn'), null, 'told once');
    // A later heal tells nothing again.
    await takeForDead(p, a, b);
    await a.store.heartbeat();
    await sleep(100);
    assert.deepEqual(ended(), ['skip']);
  });

  it('signals another process relays straight to a joined socket whose process\'s heartbeat lapsed (its socket stayed) still reach it after the heal, and its own go straight again (sixth review, R1)', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, y, room } = await roomAcross(a, b);
    const candidates = (on: Proc, conn: string): string[] =>
      on.received(conn).flatMap((m) => (m.event === 'signal' && m.type === 'candidate' ? [String((m.data as { candidate: string }).candidate)] : []));
    // a's heartbeat is missing for a moment; nobody takes it for dead, and its next beat heals.
    await redis.admin.del(`${p}{dyad}:hb:${a.store.procId}`);
    await a.store.heartbeat();
    // b kept its route to x's socket: y's candidates go straight into a's inbox, and are x's.
    for (const c of ['c0', 'c1', 'c2']) await b.store.signal(y.id, 'sb', room, 'candidate', JSON.stringify({ candidate: c }), Date.now());
    await eventually(async () => (candidates(a, 'sa').length === 3 ? true : undefined), `x given y's candidates (got ${JSON.stringify(candidates(a, 'sa'))})`);
    assert.deepEqual(candidates(a, 'sa'), ['c0', 'c1', 'c2']);
    // And a relays x's candidates without a script again: the heal gave its routes back.
    await relayedWithoutScript(() => a.store.signal(x.id, 'sa', room, 'candidate', JSON.stringify({ candidate: 'x0' }), Date.now()), "x's candidate");
    await eventually(async () => (candidates(b, 'sb').includes('x0') ? true : undefined), 'y has it');
  });

  it('a room that ends while a member\'s process\'s heartbeat is missing (its sockets stayed) is told there by the heal: the end on both sockets, then idle (sixth review, R2)', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, y } = await roomAcross(a, b);
    await redis.admin.del(`${p}{dyad}:hb:${a.store.procId}`);
    // Meanwhile y leaves: what x would be told is not sent to a, which counts as away.
    await b.store.next(y.id, 'cb', Date.now());
    const before = { m: a.received('ca').length, s: a.received('sa').length };
    await sleep(100);
    assert.equal(a.received('ca').length, before.m);
    // a was only slow: its next beat heals, and x's sockets, which stayed, hear what they missed.
    await a.store.heartbeat();
    const told = await eventually(async () => {
      const m = a.received('ca').slice(before.m).map((e) => (e.event === 'peer-disconnected' ? `peer-disconnected ${e.reason}` : e.event));
      return m.includes('idle') ? m : undefined;
    }, 'x told on matching that its room ended');
    assert.deepEqual(told, ['peer-disconnected skip', 'idle']);
    await eventually(async () => (a.received('sa').slice(before.s).some((e) => e.event === 'peer-disconnected') ? true : undefined), 'x told on signalling');
    for (const field of ['mx', 'news', 'sjn']) assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, field), null, `${field}: told once`);
    // A later lapse and heal tell nothing again.
    await redis.admin.del(`${p}{dyad}:hb:${a.store.procId}`);
    await a.store.heartbeat();
    await sleep(100);
    assert.deepEqual(a.received('ca').slice(before.m).map((e) => e.event), ['peer-disconnected', 'idle']);
  });

  it('the leaver\'s own matching socket, on a process whose heartbeat was missing when its signalling socket elsewhere left, is told idle by the heal (sixth review, R2)', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, matched } = await pairAcross(a, b);
    const room = matched.room_code;
    // x's signalling socket is on b; its matching socket stays on a.
    await b.store.attachSignalling(x.id, x.token, 'sx', Date.now());
    await b.store.join(x.id, 'sx', room, Date.now());
    await redis.admin.del(`${p}{dyad}:hb:${a.store.procId}`);
    const before = a.received('ca').length;
    await b.store.leave(x.id, 'sx', room, Date.now());
    await eventually(async () => (b.received('cb').some((e) => e.event === 'peer-disconnected') ? true : undefined), 'y told x left');
    await sleep(100);
    assert.equal(a.received('ca').length, before, 'not sent to a, which counts as away');
    await a.store.heartbeat();
    await eventually(async () => (a.received('ca').slice(before).some((e) => e.event === 'idle') ? true : undefined), 'x told idle by the heal');
    assert.deepEqual(a.received('ca').slice(before).map((e) => e.event), ['idle']);
  });

  it('a line that reached a socket just before it dropped, still untrimmed when the client resumes elsewhere, is told again (at least once) unless the resumption names it (chat_seen)', async () => {
    for (const naming of [false, true]) {
      const p = prefix();
      const a = await Proc.start(p);
      const b = await Proc.start(p);
      const { x, y, matched } = await pairAcross(a, b);
      // From here a's hub is slow to finish with a chat for x's socket: the line has reached the
      // socket, and its entry is still in a's inbox, untrimmed, with a's reader on it.
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let delivered: number | undefined;
      a.store.subscribe(async (fx) => {
        for (const d of fx.deliver) {
          if (d.conn === 'ca' && d.msg?.event === 'chat') {
            delivered = d.msg.seq;
            await released;
          }
        }
      });
      try {
        await b.store.chat(y.id, 'cb', 'hello', Date.now());
        await eventually(async () => (delivered !== undefined ? true : undefined), 'the line reached x');
        assert.equal(delivered, 1);
        // x's socket dropped and its client resumes on b before a has heard of the drop.
        const seen = naming ? { room: matched.room_code, seq: 1 } : undefined;
        const r = await b.store.attachMatching(x.id, x.token, 'cx', Date.now(), seen);
        assert.ok(r.ok);
        await eventually(async () => (b.received('cx').some((m) => m.event === 'matched') ? true : undefined), 'x resumed');
        await sleep(100);
        assert.deepEqual(
          b.received('cx').map((m) => (m.event === 'chat' ? `chat ${m.message} ${m.seq}` : m.event)),
          naming ? ['matched'] : ['matched', 'chat hello 1'],
        );
      } finally {
        release();
      }
    }
  });

  it('chat kept for a member whose process\'s heartbeat was missing for a moment (its socket stayed) is never overtaken: told before the next line or the end of the room, or by the heal', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, y } = await pairAcross(a, b);
    const hb = `${p}{dyad}:hb:${a.store.procId}`;
    const beat = await redis.admin.get(hb);
    assert.ok(beat);
    const chats = (): string[] => a.received('ca').flatMap((m) => (m.event === 'chat' ? [`${m.message} ${m.seq}`] : []));
    // a's heartbeat is missing for a moment (a slow beat): y's line is kept for x.
    await redis.admin.del(hb);
    await b.store.chat(y.id, 'cb', 'one', Date.now());
    await sleep(100);
    assert.deepEqual(chats(), []);
    // It is back (another process sees a alive again) when y sends the next line: the kept one goes first.
    await redis.admin.set(hb, beat, 'PX', 60_000);
    await b.store.chat(y.id, 'cb', 'two', Date.now());
    await eventually(async () => (chats().length === 2 ? true : undefined), 'x told both lines');
    assert.deepEqual(chats(), ['one 1', 'two 2']);
    // Missing again, and no line follows: a's own beat finds the lapse, and its heal tells x what was kept.
    await redis.admin.del(hb);
    await b.store.chat(y.id, 'cb', 'three', Date.now());
    await a.store.heartbeat();
    await eventually(async () => (chats().length === 3 ? true : undefined), 'x told the line kept');
    assert.deepEqual(chats(), ['one 1', 'two 2', 'three 3']);
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'kcb'), null, 'nothing left kept');
    await b.store.chat(y.id, 'cb', 'four', Date.now());
    await eventually(async () => (chats().length === 4 ? true : undefined), 'x told the next line');
    assert.deepEqual(chats(), ['one 1', 'two 2', 'three 3', 'four 4']);
    // Kept once more, and y leaves: the line comes before the end of the room.
    await redis.admin.del(hb);
    await b.store.chat(y.id, 'cb', 'five', Date.now());
    await redis.admin.set(hb, beat, 'PX', 60_000);
    await b.store.next(y.id, 'cb', Date.now());
    await eventually(async () => (a.received('ca').at(-1)?.event === 'peer-disconnected' ? true : undefined), 'x told y left');
    assert.deepEqual(
      a.received('ca').slice(-2).map((m) => (m.event === 'chat' ? `${m.message} ${m.seq}` : m.event)),
      ['five 5', 'peer-disconnected'],
    );
  });

  it('a line still in the inbox of a living process when its socket is taken over comes before lines kept behind it while that process\'s heartbeat was missing', async () => {
    for (const how of ['resumed elsewhere', 'dropped'] as const) {
      const p = prefix();
      const { a, b } = await watched(p);
      const { x, y } = await pairAcross(a, b);
      // From here a is slow: its hub holds the first chat for x, whose entry stays in a's inbox, untrimmed.
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let held = false;
      a.store.subscribe(async (fx) => {
        if (fx.deliver.some((d) => d.conn === 'ca' && d.msg?.event === 'chat')) {
          held = true;
          await released;
        }
      });
      const hb = `${p}{dyad}:hb:${a.store.procId}`;
      const beat = await redis.admin.get(hb);
      assert.ok(beat);
      try {
        await b.store.chat(y.id, 'cb', 'one', Date.now());
        await eventually(async () => (held ? true : undefined), 'the first line in a\'s hands');
        // a's heartbeat is missing for a moment (a slow beat): the second line is kept for x.
        await redis.admin.del(hb);
        await b.store.chat(y.id, 'cb', 'two', Date.now());
        assert.equal(await redis.admin.llen(`${p}{dyad}:kc:${x.id}`), 1, 'the second line kept');
        // The beat is back before x's socket is taken over: a is alive, and its inbox still holds the first line.
        await redis.admin.set(hb, beat, 'PX', 60_000);
        if (how === 'dropped') {
          await a.store.detachMatching(x.id, 'ca', false, Date.now());
          await b.store.chat(y.id, 'cb', 'three', Date.now());
        }
        const r = await b.store.attachMatching(x.id, x.token, 'cx', Date.now());
        assert.ok(r.ok);
        if (how === 'resumed elsewhere') await b.store.chat(y.id, 'cb', 'three', Date.now());
        const told = (): string[] => b.received('cx').flatMap((m) => (m.event === 'chat' ? [`${m.message} ${m.seq}`] : []));
        await eventually(async () => (told().length >= 3 ? true : undefined), `x told the three lines (${how})`);
        await sleep(100);
        assert.deepEqual(told(), ['one 1', 'two 2', 'three 3'], how);
      } finally {
        release();
      }
    }
  });

  it('signals kept for a joined member whose process\'s heartbeat was missing for a moment (its socket stayed) are never overtaken nor left behind: handed over before the next signal, or by the heal', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    // The initiator (i) sends the offer and candidates to the responder (r), on the other process.
    const { x, y, room, ini: i, res: r } = await joinedAcross(a, b);
    const heartbeat = async (of: Proc): Promise<{ lapse: () => Promise<unknown>; back: () => Promise<unknown> }> => {
      const key = `${p}{dyad}:hb:${of.store.procId}`;
      const beat = await redis.admin.get(key);
      assert.ok(beat);
      return { lapse: () => redis.admin.del(key), back: () => redis.admin.set(key, beat, 'PX', 60_000) };
    };
    const signals = (to: Side): string[] =>
      to.proc.received(to.conn).flatMap((m) => (m.event === 'signal' ? [`${m.type} ${(m.data as { c: string }).c}`] : []));
    const send = (from: Side, type: 'offer' | 'answer' | 'candidate', c: string): Promise<Effects> =>
      from.proc.store.signal(from.s.id, from.conn, room, type, JSON.stringify({ c }), Date.now());
    // r's process's heartbeat is missing for a moment: the offer is kept for r, and the candidate after it too.
    const rBeat = await heartbeat(r.proc);
    await rBeat.lapse();
    await send(i, 'offer', 'o');
    await send(i, 'candidate', 'one');
    await sleep(100);
    assert.deepEqual(signals(r), []);
    // Back when i sends the next one: the kept ones go first, in order; and later ones go straight.
    await rBeat.back();
    await send(i, 'candidate', 'two');
    await send(i, 'candidate', 'three');
    await eventually(async () => (signals(r).length === 4 ? true : undefined), 'r handed the offer and three candidates');
    assert.deepEqual(signals(r), ['offer o', 'candidate one', 'candidate two', 'candidate three']);
    // i's process's heartbeat is missing when r answers, and nothing follows: i's own beat finds
    // the lapse, and its heal hands i what was kept.
    const iBeat = await heartbeat(i.proc);
    await iBeat.lapse();
    await send(r, 'answer', 'a');
    await sleep(100);
    assert.deepEqual(signals(i), []);
    await i.proc.store.heartbeat();
    await eventually(async () => (signals(i).length === 1 ? true : undefined), 'i handed the answer kept');
    assert.deepEqual(signals(i), ['answer a']);
    for (const m of [x, y]) assert.equal(await redis.admin.llen(`${p}{dyad}:rk:${room}:${m.id}`), 0, 'nothing left kept');
  });

  it('a `next` whose reply was lost, and a pairing of that socket made after it and read by the inbox reader: the caller hears the `next` failed before the pairing is carried out', async () => {
    const p = prefix();
    const a = await Proc.start(p);
    const b = await Proc.start(p);
    const { x } = await pairAcross(a, b);
    await a.store.stop(x.id, 'ca', Date.now());
    // w on b, idle too (x and y, who just met, are kept apart by the cooldown).
    const w = await b.session('cw');
    await b.store.stop(w.id, 'cw', Date.now());
    await eventually(async () => (b.received('cb').at(-1)?.event === 'peer-disconnected' ? true : undefined), 'y idle');
    const order: string[] = [];
    a.store.subscribe(async (fx) => {
      a.inbox.push(fx);
      for (const d of fx.deliver) if (d.conn === 'ca' && d.msg?.event === 'matched') order.push('matched');
    });
    // x's `next`, then w's (which pairs w with x), then the cut of a's connections but its inbox
    // reader's: the reply of x's `next` is lost, while the reader gets the pairing made after it.
    let nexted!: Promise<unknown>;
    let paired!: Promise<unknown>;
    await cutWhileBusy(redis.server.url, a.store.procId, true, async () => {
      nexted = a.store.next(x.id, 'ca', Date.now()).then(
        () => order.push('answered'),
        () => order.push('failed'),
      );
      await sleep(20);
      paired = b.store.next(w.id, 'cw', Date.now());
      await sleep(20);
    });
    await Promise.all([nexted, paired]);
    assert.equal(await redis.admin.hget(`${p}{dyad}:s:${x.id}`, 'st'), 'matched', 'x paired with w');
    await eventually(async () => (order.includes('matched') ? true : undefined), 'x told matched');
    // (Then x's state is told afresh, a `matched` again: the failed `next` may have run.)
    assert.deepEqual(order.slice(0, 2), ['failed', 'matched']);
  });

  it('a `next` that ran in Redis but whose reply was lost with the connection: the socket is told its state afresh once Redis answers again', async () => {
    await replyLost({}, redis.server.url);
  });

  it('a one-trip start that ran in Redis but whose reply was lost with the connection leaves no session behind (a ghost holding a socket that never opened, paired and never answering)', async () => {
    const p = prefix();
    const a = await Proc.start(p);
    const token = randomBytes(12).toString('hex');
    let started!: Promise<string>;
    await cutWhileBusy(redis.server.url, a.store.procId, false, async () => {
      started = a.store.registerAttached({ mode: 'video', interests: [], token, addr: 'ga' }, 'ga', Date.now()).then(
        () => 'answered',
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      await sleep(30);
    });
    // a beats (and replays) as soon as it reconnects: its writes wait a second, so the ghost is seen first.
    await redis.admin.call('CLIENT', 'PAUSE', '1000', 'WRITE');
    assert.match(await started, /store unavailable/, 'the reply was lost');
    const key = `${p}{dyad}:s:${String(await redis.admin.get(`${p}{dyad}:t:${createHash('sha256').update(token).digest('hex')}`))}`;
    assert.equal(await redis.admin.hget(key, 'st'), 'waiting', 'the start ran: its session waits in the pool');
    // Once a reconnects, the session leaves as by a clean close: nobody is paired with it.
    await eventually(async () => ((await redis.admin.exists(key)) === 0 ? true : undefined), 'the session gone', 10_000);
    const b = await Proc.start(p);
    const y = await b.session('cb');
    await sleep(300);
    assert.deepEqual([...y.fx.deliver.map((d) => d.msg), ...b.received('cb')].map((m) => m?.event), ['waiting'], 'the next arrival waits, matched with nobody');
  });

  it('a resumption whose open was lost with the connection, and whose socket then closes before that open is sent again, is not opened by it (a ghost that would be paired and never answer)', async () => {
    const p = prefix();
    const a = await Proc.start(p);
    const x = await a.session('ca');
    await a.store.detachMatching(x.id, 'ca', false, Date.now());
    // The resumption's open waits behind Redis's 300 ms of work, and its connection is cut under it.
    const { resumed } = await resumeWhileCut(a, x, 'ca2', 30);
    // a beats as soon as it reconnects, and sends the open again once that beat is answered:
    // Redis's writes wait a second, so the close below comes between the two.
    await redis.admin.call('CLIENT', 'PAUSE', '1000', 'WRITE');
    assert.match(await resumed, /store unavailable/, 'the open failed with its connection');
    await reconnected(a, x);
    // The edge: that socket drops (no clean close: its grace period starts), before a has sent the open again.
    await a.store.detachMatching(x.id, 'ca2', false, Date.now());
    await sleep(1_500);
    const key = `${p}{dyad}:s:${x.id}`;
    assert.equal(await redis.admin.hget(key, 'mc'), null, 'the closed socket is not the session’s');
    // Nobody is paired with x while it is away: the next arrival waits.
    const b = await Proc.start(p);
    const y = await b.session('cb');
    await sleep(300);
    assert.deepEqual([...y.fx.deliver.map((d) => d.msg), ...b.received('cb')].map((m) => m?.event), ['waiting'], 'the next arrival waits, matched with nobody');
  });

  it('a resumption whose open timed out and then failed (whether it ran is unknown) is closed with 1013, so its client resumes and is told where it stands', async () => {
    const p = prefix();
    const a = await Proc.start(p, { callTimeoutMs: 150 });
    const x = await a.session('ca');
    // The open waits behind Redis's 300 ms of work, times out, then loses its connection.
    const { resumed } = await resumeWhileCut(a, x, 'ca2', 200);
    assert.match(await resumed, /took longer/);
    const closes = (): { conn: string; code: number }[] => a.inbox.flatMap((fx) => fx.close);
    await eventually(async () => (closes().some((c) => c.conn === 'ca2') ? true : undefined), 'the socket closed');
    assert.deepEqual(closes().filter((c) => c.conn === 'ca2').map((c) => c.code), [1013]);
    // The edge: the close starts the grace period; the client resumes on a new socket.
    await reconnected(a, x);
    await a.store.detachMatching(x.id, 'ca2', false, Date.now());
    const again = await a.store.attachMatching(x.id, x.token, 'ca3', Date.now());
    assert.ok(again.ok);
    const told = (): (string | undefined)[] => [...again.effects.deliver, ...a.inbox.flatMap((fx) => fx.deliver)].filter((d) => d.conn === 'ca3').map((d) => d.msg?.event);
    await eventually(async () => (told().length > 0 ? true : undefined), 'the resumption told');
    assert.deepEqual(told(), ['waiting']);
  });

  it('signals relayed without a script into a dead process’s inbox are kept for their member and handed over as sent, in order', async () => {
    const p = prefix();
    const { a, b } = await watched(p);
    const { x, y, room } = await roomAcross(a, b);
    // A first candidate: b learns from a's heartbeat that a reads records.
    await b.store.signal(y.id, 'sb', room, 'candidate', JSON.stringify({ candidate: 'first' }), Date.now());
    await eventually(async () => (a.received('sa').filter((m) => m.event === 'signal').length === 2 ? true : undefined), 'x has the first candidate');
    await sleep(50);
    // a's reader held up from here: what b relays stays in a's inbox.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    a.store.subscribe(async () => released);
    try {
      // Data as the edge encodes it (core/frames.ts): every character beyond ASCII escaped.
      const sent = Array.from({ length: 5 }, (_, i) => encodeSignalData({ candidate: `candidate:${i} 1 udp 2122 198.51.100.${i} 5000${i} typ host`, sdpMid: '0', usernameFragment: `é|${i}\t` }));
      for (const data of sent) await b.store.signal(y.id, 'sb', room, 'candidate', data, Date.now());
      // Relayed at the end of the turn, as records (not through a script).
      const inbox = `${p}{dyad}:inbox:${a.store.procId}`;
      await eventually(async () => ((await redis.admin.xrange(inbox, '-', '+')).some(([, f]) => f[0] === 'rs') ? true : undefined), 'relayed as records');
      // a is taken for dead: x's signalling socket drops, the candidates are kept for x.
      await takeForDead(p, a, b);
      assert.equal(await redis.admin.llen(`${p}{dyad}:rk:${room}:${x.id}`), sent.length, 'every candidate kept');
      // x comes back on b and joins: the candidates are handed over as sent, in order.
      await b.store.attachSignalling(x.id, x.token, 'sx', Date.now());
      const joined = await b.store.join(x.id, 'sx', room, Date.now());
      await sleep(100);
      const handed = [...joined.deliver.filter((d) => d.conn === 'sx'), ...b.inbox.flatMap((fx) => fx.deliver.filter((d) => d.conn === 'sx'))].flatMap((d) => (d.signal ? [d.signal] : []));
      assert.deepEqual(
        handed.map((s) => ({ from: s.from, type: s.type, data: s.data, room: s.room_code })),
        sent.map((data) => ({ from: y.id, type: 'candidate', data, room })),
      );
    } finally {
      release();
    }
  });

  it('relays to a process of an earlier build (its heartbeat does not say it reads records) as JSON, which is read too, in order', async () => {
    const p = prefix();
    const a = await Proc.start(p, { heartbeatMs: 3_600_000, heartbeatTtlMs: 3_600_000 });
    const b = await Proc.start(p, { heartbeatMs: 3_600_000, heartbeatTtlMs: 3_600_000 });
    // a's heartbeat as an earlier build writes it: the time alone.
    await redis.admin.set(`${p}{dyad}:hb:${a.store.procId}`, String(Date.now()), 'PX', 3_600_000);
    const { y, room } = await roomAcross(a, b);
    // a's reader held up while b relays: every entry b writes stays in a's inbox to be looked at.
    const told: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    a.store.subscribe(async (fx) => {
      await released;
      for (const d of fx.deliver) if (d.conn === 'sa' && d.signal?.type === 'candidate') told.push(d.signal.data);
    });
    const inbox = `${p}{dyad}:inbox:${a.store.procId}`;
    const before = (await redis.admin.xrevrange(inbox, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    const want = Array.from({ length: 12 }, (_, n) => JSON.stringify({ candidate: `c${Math.floor(n / 4)}-${n % 4}` }));
    try {
      // Three turns of b's event loop, so three entries: the first before b has read a's heartbeat, two after.
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 4; i++) await b.store.signal(y.id, 'sb', room, 'candidate', want[round * 4 + i] as string, Date.now());
        await sleep(50);
      }
      const written = (await redis.admin.xrange(inbox, `(${before}`, '+')).map(([, f]) => f[0]);
      assert.deepEqual(written, ['fx', 'fx', 'fx'], 'JSON entries only');
    } finally {
      release();
    }
    await eventually(async () => (told.length === 12 ? true : undefined), 'x has every candidate');
    assert.deepEqual(told, want, 'every candidate, in order');
  });

  it('names its scripts by sha in <prefix>scripts, for tools that read the command log, and the hash expires', async () => {
    const p = prefix();
    await Proc.start(p);
    const named = await redis.admin.hgetall(`${p}scripts`);
    const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex');
    const expected = [
      ...Object.entries(SCRIPTS).map(([name, lua]) => [sha1(lua), name]),
      ...Object.entries(LIBRARY.fn).map(([name, fn]) => [fn, name]),
      ...Object.entries(SOCKET_SCRIPTS).map(([name, lua]) => [sha1(lua), `socket-${name}`]),
    ];
    assert.deepEqual(named, Object.fromEntries(expected));
    const ttl = await redis.admin.pttl(`${p}scripts`);
    assert.ok(ttl > 0 && ttl <= 86_400_000, `a lifetime (${ttl})`);
  });

  it('runs transitions as functions of one library, and runs them still when Redis has lost it', async () => {
    const p = prefix();
    const a = await Proc.start(p);
    const calls = async (cmd: string): Promise<number> => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(await redis.admin.info('commandstats'))?.[1] ?? 0);
    const listed = async (): Promise<boolean> => JSON.stringify(await redis.admin.call('FUNCTION', 'LIST', 'LIBRARYNAME', LIBRARY.name)).includes(LIBRARY.name);
    assert.ok(await listed(), 'the library is loaded at start');
    let fcalls = await calls('fcall');
    const x = await a.session('c1');
    assert.ok((await calls('fcall')) > fcalls, 'register and attach ran as FCALL');
    // A Redis that lost its functions (FUNCTION FLUSH, or a restart without persistence).
    await redis.admin.call('FUNCTION', 'FLUSH');
    const evals = await calls('eval');
    const y = await a.session('c2');
    assert.ok((await calls('eval')) > evals, 'the calls ran as scripts meanwhile');
    assert.ok(await a.store.presence(y.token), 'the session was made');
    await eventually(async () => ((await listed()) ? true : undefined), 'the library loaded again');
    fcalls = await calls('fcall');
    await a.store.next(x.id, 'c1', Date.now());
    assert.ok((await calls('fcall')) > fcalls, 'FCALL again once it is back');
  });

  it('a per-address limit answers from this process\'s own count while Redis does not, and from Redis, shared, once it does again', async () => {
    const p = prefix();
    const a = await Proc.start(p, { callTimeoutMs: 200 });
    const limit = a.store.limiter('stand-in', 1, 60);
    const refused = (k: string): Promise<boolean> => limit.consume(k).then(() => false, () => true);
    await redis.admin.call('CLIENT', 'PAUSE', '1500', 'WRITE');
    const paused = Date.now();
    assert.equal(await refused('one'), false, 'within the limit: passes, though Redis does not answer');
    assert.equal(await refused('one'), true, 'past it: refused by the count of this process');
    assert.ok(Date.now() - paused < 1_500, 'answered before Redis was back');
    assert.equal(await redis.admin.exists(`${p}rl:{stand-in}:one`), 0, 'nothing of it reached Redis');
    await sleep(paused + 1_600 - Date.now());
    assert.equal(await refused('two'), false);
    assert.equal(await redis.admin.get(`${p}rl:{stand-in}:two`), '1', 'counted in Redis');
    assert.equal(await redis.admin.zcard(`${p}rlz:{stand-in}`), 1, 'and in the limit\'s index');
    assert.equal(await refused('two'), true);
  });

  it('pairing reads a bounded number of sessions, whatever the size of the pool', async () => {
    const p = prefix();
    const a = await Proc.start(p, { interestTimeoutMs: 600_000 });
    // 600 waiting sessions of one lang, each narrowed to an interest of its own.
    for (let i = 0; i < 600; i++) await a.session(`n${i}`, { lang: 'en', interests: [`only-${i}`] });
    const hgetalls = async (): Promise<number> => {
      const info = await redis.admin.info('commandstats');
      return Number(/cmdstat_hgetall:calls=(\d+)/.exec(info)?.[1] ?? 0);
    };
    let before = await hgetalls();
    await a.session('seeker', { lang: 'en', interests: ['only-7', 'chess'] });
    const reads = (await hgetalls()) - before;
    assert.ok(a.received('seeker').some((m) => m.event === 'matched'), 'paired with the one sharing an interest');
    assert.ok(reads < 20, `sessions read in a pairing through a small interest set: ${reads}`);
    // This one accepts all 599 (same lang) but none of them accepts it: every candidate is read and refused.
    before = await hgetalls();
    await a.session('plain', { lang: 'en' });
    const reads2 = (await hgetalls()) - before;
    assert.equal(a.received('plain').filter((m) => m.event === 'matched').length, 0);
    assert.ok(reads2 <= 60, `sessions read in an attempt over a set of 599 that finds nobody: ${reads2}`);
  });

  it('a seeker narrowed by interest and lang reads the smaller family of sets: a rare lang among a common interest is found', async () => {
    const p = prefix();
    const a = await Proc.start(p, { interestTimeoutMs: 600_000 });
    // 200 waiting sessions that share one interest, each narrowed to a lang of its own:
    // the interest's set is far larger than a bounded read, the seeker's lang's set holds one.
    for (let i = 0; i < 200; i++) await a.session(`n${i}`, { lang: `l${i}`, interests: ['x'] });
    const before = Number(/cmdstat_hgetall:calls=(\d+)/.exec(await redis.admin.info('commandstats'))?.[1] ?? 0);
    const seeker = await a.session('seeker', { lang: 'l137', interests: ['x'] });
    const reads = Number(/cmdstat_hgetall:calls=(\d+)/.exec(await redis.admin.info('commandstats'))?.[1] ?? 0) - before;
    const matched = a.received('seeker').find((m) => m.event === 'matched');
    assert.ok(matched?.event === 'matched', 'paired');
    assert.equal(a.received('n137').find((m) => m.event === 'matched')?.peer, seeker.id, 'with the one session of its lang');
    assert.ok(reads < 10, `sessions read: ${reads}`);
  });
});

describe('Redis store on a Redis Cluster', { timeout: 60_000 }, () => {
  let cluster: RedisCluster | undefined;
  before(async () => {
    cluster = await RedisCluster.start();
  });
  after(async () => {
    await cluster?.stop();
  });

  it('a process is alive for the others once started: a session it takes at once is paired', async () => {
    const p = prefix();
    const on = { cluster: cluster?.addresses };
    const old = await Proc.start(p, on);
    // A session is paired only while its process's heartbeat is in Redis; a start
    // must not return before its first beat (which a Cluster may send 50 ms late).
    for (let i = 0; i < 5; i++) {
      const fresh = await Proc.start(p, on);
      await fresh.session(`f${i}`);
      await old.session(`o${i}`);
      assert.deepEqual(
        old.received(`o${i}`).map((m) => m.event),
        ['waiting', 'matched'],
        `paired with the session of the new process, start ${i + 1}`,
      );
    }
  });

  it('a `next` whose reply was lost with the connection to the shard is not sent again: it ran once, and the socket is told its state afresh', async () => {
    const c = cluster;
    if (!c) throw new Error('no cluster');
    await replyLost({ cluster: c.addresses }, (await c.nodeOf('dyad:{dyad}:sess')).url);
  });
});
