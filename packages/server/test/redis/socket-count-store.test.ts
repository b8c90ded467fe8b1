// The Redis store's count of open sockets per address (admitSocket /
// releaseSocket), with several store instances as several processes hold
// them: counts add up over live processes, a refusal or a stray release
// changes nothing, a process wrongly taken for dead counts its sockets again,
// and while Redis does not answer a process's own count decides.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { RedisStore, RedisStoreOptions } from '../../src/store/redis/index.js';
import { privateRedis } from './support/private-redis.js';
import { sleep } from '../support/ws-client.js';

const MAX = 3;

const redis = privateRedis();
const start = (prefix: string, opts: Partial<RedisStoreOptions> = {}): Promise<RedisStore> => redis.startStore(prefix, opts);

const prefix = (): string => `c${randomBytes(4).toString('hex')}:`;

/** How many of `n` admissions of `addr` on `store` succeed. */
async function admitted(store: RedisStore, addr: string, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if (await store.admitSocket(addr, MAX)) ok++;
  return ok;
}

describe('Redis store: open sockets per address', { timeout: 60_000 }, () => {
  it('counts of all processes add up; a refusal takes no place; a release without a place changes nothing', async () => {
    const p = prefix();
    const a = await start(p);
    const b = await start(p);
    assert.equal(await admitted(a, 'x', 2), 2);
    assert.equal(await admitted(b, 'x', 5), 1, 'one place left for the second process');
    assert.equal(await admitted(a, 'x', 5), 0);
    assert.equal(await admitted(b, 'y', MAX), MAX, 'another address has places of its own');
    // Releases of an address this process holds nothing of: no negative count, no extra place.
    for (let i = 0; i < 5; i++) await b.releaseSocket('z');
    for (let i = 0; i < 5; i++) await a.releaseSocket('y');
    assert.equal(await admitted(a, 'y', 1), 0);
    await a.releaseSocket('x');
    assert.equal(await admitted(b, 'x', 5), 1, 'exactly the place given back');
    await a.releaseSocket('x');
    await b.releaseSocket('x');
    await b.releaseSocket('x');
    assert.deepEqual(await redis.admin.hgetall(`${p}{dyad}:so:x`), {}, 'no count left once every socket closed');
    assert.equal(await admitted(a, 'x', 5), MAX);
  });

  it('a process taken for dead by mistake: the reaper removes its counts, and its next heartbeat puts them back', async () => {
    const p = prefix();
    const a = await start(p, { heartbeatMs: 3_600_000 });
    const b = await start(p, { heartbeatMs: 3_600_000, heartbeatTtlMs: 3_600_000, suspectMs: 0 });
    assert.equal(await admitted(a, 'x', 2), 2);
    await redis.admin.del(`${p}{dyad}:hb:${a.procId}`);
    await b.reap(Date.now()); // first look: suspected
    await sleep(150); // the reaper's lock lapses
    await b.reap(Date.now()); // still missing: dead
    assert.equal(await redis.admin.hget(`${p}{dyad}:so:x`, a.procId), null, 'the dead process’s count is removed');
    assert.equal(await redis.admin.exists(`${p}{dyad}:sa:${a.procId}`), 0);
    await a.heartbeat();
    assert.equal(await redis.admin.hget(`${p}{dyad}:so:x`, a.procId), '2', 'counted again once it shows it lives');
    assert.equal(await admitted(b, 'x', 5), 1);
  });

  it('while Redis does not answer, the process’s own count decides; Redis hears of it once back', async () => {
    const p = prefix();
    const a = await start(p, { callTimeoutMs: 200, heartbeatMs: 3_600_000 });
    const b = await start(p, { heartbeatMs: 3_600_000 });
    assert.equal(await admitted(a, 'x', 1), 1);
    redis.server.pause();
    try {
      // Each answer comes after the call timeout at most, from this process's own count.
      assert.equal(await admitted(a, 'x', 5), MAX - 1);
      await a.releaseSocket('x');
      assert.equal(await admitted(a, 'x', 5), 1);
    } finally {
      redis.server.resume();
    }
    await a.heartbeat();
    await b.heartbeat();
    assert.equal(await redis.admin.hget(`${p}{dyad}:so:x`, a.procId), String(MAX), 'Redis has the count made while it was away');
    assert.equal(await admitted(b, 'x', 1), 0);
    for (let i = 0; i < MAX; i++) await a.releaseSocket('x');
    assert.equal(await admitted(b, 'x', 5), MAX);
  });

  it('the sockets closed in one moment are written in one script, each address at its count then', async () => {
    const p = prefix();
    const a = await start(p, { heartbeatMs: 3_600_000 });
    const b = await start(p, { heartbeatMs: 3_600_000 });
    for (const addr of ['x', 'y', 'z']) assert.equal(await admitted(a, addr, 2), 2);
    const before = await scriptCalls();
    // Five closes at once over three addresses (z twice), while x opens one again.
    await Promise.all([a.releaseSocket('x'), a.releaseSocket('y'), a.releaseSocket('y'), a.releaseSocket('z'), a.releaseSocket('z'), admitted(a, 'x', 1)]);
    assert.equal((await scriptCalls()) - before, 2, 'one script for the x admitted again, one for the five closes');
    assert.deepEqual(await redis.admin.hgetall(`${p}{dyad}:so:x`), { [a.procId]: '2' });
    assert.deepEqual(await redis.admin.hgetall(`${p}{dyad}:so:y`), {}, 'no count left for an address whose sockets all closed');
    assert.equal(await redis.admin.sismember(`${p}{dyad}:sa:${a.procId}`, 'y'), 0);
    assert.deepEqual(await redis.admin.hgetall(`${p}{dyad}:so:z`), {});
    assert.equal(await admitted(b, 'y', 5), MAX, 'the other process has every place of the closed ones');
  });
});

/** Scripts Redis has run by their SHA-1 so far (the socket counts' own scripts go that way). */
async function scriptCalls(): Promise<number> {
  const info = await redis.admin.info('commandstats');
  return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
}
