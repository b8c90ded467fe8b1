// The embedded store's per-address limiter (WindowLimiter) counts and answers
// as rate-limiter-flexible's RateLimiterMemory, which it replaced to hold a
// key in about a quarter of the memory and without a timer: the two are run
// side by side on the same steps and compared.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { WindowLimiter } from '../../src/store/window-limiter.js';
import type { Limiter } from '../../src/store/store.js';

type Seen = { ok: boolean; remaining: number; consumed: number } | null;

async function step(limiter: Limiter, op: 'consume' | 'reward' | 'get', key: string): Promise<Seen> {
  const seen = (r: RateLimiterRes | null, ok: boolean): Seen => (r ? { ok, remaining: r.remainingPoints, consumed: r.consumedPoints } : null);
  try {
    return seen(await limiter[op](key), true);
  } catch (rej) {
    assert.ok(rej instanceof RateLimiterRes, 'a refusal is a RateLimiterRes, as the edges expect');
    return seen(rej, false);
  }
}

describe('WindowLimiter', () => {
  it('answers as RateLimiterMemory within a window: consume past the points, reward, get, several keys', async () => {
    const ours = new WindowLimiter(3, 60);
    const theirs = new RateLimiterMemory({ points: 3, duration: 60 });
    // A fixed sequence with every kind of step, and then a random one.
    const ops: ['consume' | 'reward' | 'get', string][] = [
      ['get', 'a'], ['consume', 'a'], ['get', 'a'], ['consume', 'a'], ['consume', 'a'], ['consume', 'a'], ['consume', 'a'],
      ['reward', 'a'], ['get', 'a'], ['reward', 'a'], ['consume', 'a'], ['consume', 'b'], ['get', 'b'], ['get', 'c'],
    ];
    let seed = 7;
    for (let i = 0; i < 300; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      ops.push([(['consume', 'consume', 'reward', 'get'] as const)[seed % 4]!, `k${(seed >> 4) % 5}`]);
    }
    for (const [op, key] of ops) {
      // reward of a key never consumed is where the two part: the library makes a window of -1 point for it; nothing here asks that.
      if (op === 'reward' && (await theirs.get(key)) === null) continue;
      const a = await step(ours, op, key);
      const b = await step(theirs, op, key);
      assert.deepEqual(a, b, `${op} ${key}`);
    }
  });

  it('a window starts with the first point and ends durationSec later: then the key is new again', async () => {
    let now = 1_000_000;
    const limiter = new WindowLimiter(2, 10, () => now);
    await limiter.consume('a');
    now += 5_000;
    await limiter.consume('a');
    await assert.rejects(limiter.consume('a'), (r) => r instanceof RateLimiterRes && r.msBeforeNext === 5_000);
    now += 4_999;
    await assert.rejects(limiter.consume('a'));
    now += 1;
    assert.equal(await limiter.get('a'), null, 'the window has ended');
    const fresh = await limiter.consume('a');
    assert.equal(fresh.consumedPoints, 1);
    assert.equal(fresh.isFirstInDuration, true);
    assert.equal(fresh.msBeforeNext, 10_000);
  });

  it('holds at most maxKeys keys: ended windows go first, then, at the cap, the one that ends first (its key starts afresh)', async () => {
    let now = 1_000_000;
    const limiter = new WindowLimiter(2, 10, () => now, 3);
    for (const k of ['a', 'b', 'c']) {
      await limiter.consume(k);
      now += 1_000;
    }
    await limiter.consume('a');
    assert.equal(limiter.size, 3);
    await limiter.consume('d');
    assert.equal(limiter.size, 3, 'one key out for the new one');
    assert.equal(await limiter.get('a'), null, 'the window that ends first went');
    assert.equal((await limiter.get('b'))?.consumedPoints, 1);
    const again = await limiter.consume('a');
    assert.equal(again.isFirstInDuration, true, 'a forgotten key starts a fresh window');
    assert.equal(await limiter.get('b'), null, 'and b, now the first to end, made room for it');
    // A window begun again moves to the back: c's new window ends after d's.
    now += 20_000;
    await limiter.consume('c');
    await limiter.consume('e');
    assert.equal(limiter.size, 2, 'the ended windows went before any live one');
    assert.deepEqual([(await limiter.get('c'))?.consumedPoints, (await limiter.get('e'))?.consumedPoints], [1, 1]);
  });

  it('a flood of keys past the cap leaves maxKeys held and every one counted', async () => {
    const limiter = new WindowLimiter(1, 600, Date.now, 1_000);
    for (let i = 0; i < 50_000; i++) await limiter.consume(`addr-${i}`);
    assert.equal(limiter.size, 1_000);
    await assert.rejects(limiter.consume('addr-49999'), (r) => r instanceof RateLimiterRes, 'a key held is still counted');
  });

  it('lets go of ended windows on a quiet process too, without a new key to make room for (its own timer, unref-ed)', async () => {
    let now = 0;
    const limiter = new WindowLimiter(3, 0.05, () => now); // 50 ms windows, swept every 50 ms
    for (const key of ['a', 'b', 'c']) await limiter.consume(key);
    assert.equal(limiter.size, 3);
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(limiter.size, 3, 'not ended by its own clock: kept');
    now = 50;
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(limiter.size, 0, 'ended: gone, with nothing else asked of the limiter');
  });
});
