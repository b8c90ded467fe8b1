// Open sockets per address with several processes on one Redis: the count is
// theirs together, and what a process held does not outlive it. A crashed
// process's sockets stop counting once the reaper finds it dead; a stopping
// one gives its places back; after Redis lost its data every process counts
// again what it holds (docs/SECURITY.md, W5).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { expectRefused, freshAddress, from, matchingUrl, openMatching, register, type Via } from '../support/dyad.js';
import { startServer, type RunningServer } from '../support/server.js';
import { uniquePrefix } from '../support/stores.js';
import { WireClient, sleep } from '../support/ws-client.js';
import { RedisServer } from './support/redis-server.js';

const SOCKET_LIMIT = 4;
/** Bound on the reaper finding a SIGKILLed process dead (heartbeat 2 s, then 2 s more, reaping every second). */
const REAP_WAIT_MS = 20_000;
/** Bound on a process noticing that Redis restarted empty and healing (a heartbeat every 500 ms). */
const HEAL_WAIT_MS = 15_000;

let redis: RedisServer;
let admin: Redis;
let env: Record<string, string>;
let base: string;
const servers: RunningServer[] = [];

async function startProcess(): Promise<{ server: RunningServer; procId: string }> {
  const known = new Set(await admin.smembers(`${base}procs`));
  const server = await startServer(env);
  servers.push(server);
  const procId = (await admin.smembers(`${base}procs`)).find((p) => !known.has(p));
  assert.ok(procId, 'a new process announced itself');
  return { server, procId };
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    assert.ok(Date.now() < deadline, `${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

/** Socket counts in Redis: count key -> process id -> count; and the rate-limiter keys of the old socket limit. */
async function counts(): Promise<{ held: Map<string, Record<string, string>>; limiterKeys: string[] }> {
  const held = new Map<string, Record<string, string>>();
  for (const key of await admin.keys(`${base}so:*`)) held.set(key, await admin.hgetall(key));
  const limiterKeys = await admin.keys(`${env.REDIS_PREFIX}rl:*sockets*`);
  return { held, limiterKeys };
}

async function openSockets(server: RunningServer, via: Via, n: number): Promise<WireClient[]> {
  const open: WireClient[] = [];
  for (let i = 0; i < n; i++) {
    const s = await register(server, { mode: 'text' }, via);
    const m = await openMatching(server, s.id, s.token, `socket ${i + 1}`, via);
    // The store has taken the socket (what it holds survives a Redis restart).
    await m.next('the first message of an open matching socket');
    open.push(m);
  }
  return open;
}

async function expectFull(server: RunningServer, via: Via, what: string): Promise<void> {
  const s = await register(server, { mode: 'text' }, via);
  await expectRefused(matchingUrl(server, s.id, s.token), { channel: 'matching', label: what, ...via }, 429);
}

/** A socket from `via` must be admitted (at once: nothing needs to close first). */
async function expectAdmitted(server: RunningServer, via: Via, what: string): Promise<WireClient> {
  const s = await register(server, { mode: 'text' }, via);
  const attempt = await WireClient.connect(matchingUrl(server, s.id, s.token), { channel: 'matching', label: what, ...via });
  if (attempt.kind === 'refused') assert.fail(`${what}: HTTP ${attempt.status} ${attempt.body}`);
  return attempt.client;
}

describe('open sockets per address, two processes on one Redis', { timeout: 120_000 }, () => {
  before(async () => {
    redis = await RedisServer.start();
    admin = new Redis(redis.url);
    env = {
      REDIS_URL: redis.url,
      REDIS_PREFIX: uniquePrefix(),
      ADDRESS_HASH_KEY: 'socket-count-test-key',
      TRUST_PROXY: 'true',
      MAX_SOCKETS_PER_ADDR: String(SOCKET_LIMIT),
    };
    base = `${env.REDIS_PREFIX}{dyad}:`;
  });
  afterEach(() => WireClient.closeAll());
  after(async () => {
    await WireClient.closeAll();
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    admin?.disconnect();
    await redis?.stop();
  });

  it(`a SIGKILLed process held ${SOCKET_LIMIT} sockets from an address: once the reaper finds it dead, the address opens sockets on the other process, and no count is left behind`, async () => {
    const a = await startProcess();
    const b = await startProcess();
    const via = from(freshAddress());
    await openSockets(a.server, via, SOCKET_LIMIT);
    await expectFull(b.server, via, 'on the other process while the first holds the limit');

    a.server.signal('SIGKILL');
    await a.server.exited;
    // Dead to the reaper: it has dropped the process's sockets and forgotten it.
    await until('the reaper finds the killed process dead', REAP_WAIT_MS, async () =>
      (await admin.sismember(`${base}procs`, a.procId)) === 0 ? true : undefined,
    );
    const open = [await expectAdmitted(b.server, via, 'a socket on the live process after the crash')];
    const left = await counts();
    for (const [key, byProc] of left.held) assert.equal(byProc[a.procId], undefined, `${key} still counts sockets of the dead process: ${JSON.stringify(byProc)}`);
    assert.equal(await admin.exists(`${base}sa:${a.procId}`), 0, 'the dead process’s set of addresses is gone');
    assert.deepEqual(left.limiterKeys, [], 'no windowed counter of open sockets (with its hour-long lifetime)');
    for (const key of left.held.keys()) {
      const ttl = await admin.pttl(key);
      assert.ok(ttl > 0 && ttl <= 3_600_000, `${key}, named by an address hash, expires (${ttl} ms)`);
    }

    open.push(...(await openSockets(b.server, via, SOCKET_LIMIT - 1)));
    await expectFull(b.server, via, `socket ${SOCKET_LIMIT + 1} on the live process`);
    await Promise.all(open.map((c) => c.close(1000)));
    await until('the address’s count goes once its sockets closed', REAP_WAIT_MS, async () => ((await counts()).held.size === 0 ? true : undefined));
  });

  it('a process stopped with SIGTERM gives back the places of its sockets', async () => {
    const c = await startProcess();
    const survivor = servers.find((s) => s !== c.server && s.process.exitCode === null && s.process.signalCode === null);
    assert.ok(survivor, 'the other process of the first test still runs');
    const via = from(freshAddress());
    await openSockets(c.server, via, SOCKET_LIMIT);
    await expectFull(survivor, via, 'on the other process while the stopping one holds the limit');
    await c.server.stop('SIGTERM');
    assert.equal(await admin.exists(`${base}sa:${c.procId}`), 0, 'the stopped process’s set of addresses is gone');
    for (const [key, byProc] of (await counts()).held) assert.equal(byProc[c.procId], undefined, `${key} still counts sockets of the stopped process`);
    await openSockets(survivor, via, SOCKET_LIMIT);
    await expectFull(survivor, via, `socket ${SOCKET_LIMIT + 1} after the stop`);
  });

  it('after Redis restarts empty, each process counts again the sockets it holds: the limit still holds, and closes free places', async () => {
    const server = servers.find((s) => s.process.exitCode === null && s.process.signalCode === null);
    assert.ok(server, 'a process still runs');
    const via = from(freshAddress());
    const open = await openSockets(server, via, SOCKET_LIMIT);
    await redis.kill();
    await redis.run();
    await until('the process restores its counts', HEAL_WAIT_MS, async () => {
      const held = [...(await counts()).held.values()];
      return held.some((byProc) => Object.values(byProc).includes(String(SOCKET_LIMIT))) ? true : undefined;
    });
    assert.ok(open.every((c) => c.isOpen), 'the sockets stayed open through the restart');
    await expectFull(server, via, `socket ${SOCKET_LIMIT + 1} after the Redis restart`);
    await open[0]!.close(1000);
    await until('a closed socket’s place comes back', HEAL_WAIT_MS, async () => {
      const s = await register(server, { mode: 'text' }, via);
      const attempt = await WireClient.connect(matchingUrl(server, s.id, s.token), { channel: 'matching', ...via });
      return attempt.kind === 'open' ? true : undefined;
    });
    await expectFull(server, via, `socket ${SOCKET_LIMIT + 1} once the freed place is taken`);
  });
});
