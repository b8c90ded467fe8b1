// What a pairing attempt of the memory store reads (fourth review, finding
// P1): a crowd that accepts nobody made every attempt read the whole waiting
// pool, and its `next`s repeated that for free. The pool is indexed by what
// narrows each session (store/pool-index.ts), so an attempt reads only those
// that may accept its seeker, and MAX_LOOKED_PER_ATTEMPT bounds what is left.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LOOKED_PER_ATTEMPT, MemoryStore } from '../../src/store/memory.js';
import { DEFAULTS } from '../contract/harness.js';

const T0 = 1_700_000_000_000;

/** A session with its matching socket open: whether that paired it. */
async function arrive(store: MemoryStore, n: number, interests: string[], now: number, lang?: string): Promise<boolean> {
  const token = `tok-${n}`;
  const r = await store.register({ mode: 'text', interests, token, addr: `addr-${n}`, ...(lang !== undefined ? { lang } : {}) }, now);
  if (r.status !== 'ok') throw new Error(`register: ${r.status}`);
  const a = await store.attachMatching(r.id, token, `conn-${n}`, now);
  assert.ok(a.ok);
  return a.effects.paired.length > 0;
}

const newStore = (): MemoryStore => new MemoryStore({ ...DEFAULTS, registerRatePerMin: 1_000_000, maxSessionsPerAddr: 1_000_000 });

describe('what a pairing attempt reads (memory store)', () => {
  it('finds a partner behind any crowd that accepts nobody: the crowd is not where it looks', async () => {
    const store = newStore();
    // Each narrowed by an interest nobody else names: none accepts a stranger.
    for (let i = 0; i < 2 * MAX_LOOKED_PER_ATTEMPT; i++) await arrive(store, i, [`only-${i}`], T0);
    assert.equal(await arrive(store, 100_000, [], T0), false, 'nobody in the crowd accepts it');
    assert.equal(await arrive(store, 100_001, [], T0 + 1), true, 'paired with the one behind the crowd');
    // And one of the crowd finds the one that shares its interest, wherever it waits.
    assert.equal(await arrive(store, 100_002, ['only-1500'], T0 + 2), true, 'paired with the crowd member it shares an interest with');
  });

  it('reads at most MAX_LOOKED_PER_ATTEMPT of a crowd that shares what the seeker names and accepts it not', async () => {
    const store = newStore();
    // They name "music" and each a lang no one else has.
    for (let i = 0; i < MAX_LOOKED_PER_ATTEMPT + 10; i++) await arrive(store, i, ['music'], T0, `l${i}`);
    assert.equal(await arrive(store, 100_000, ['music'], T0), false, 'nobody in the crowd accepts it');
    assert.equal(await arrive(store, 100_001, ['music'], T0 + 1), false, 'the attempt stopped before the one behind the crowd');
  });

  it('within MAX_LOOKED_PER_ATTEMPT, finds the one behind such a crowd', async () => {
    const store = newStore();
    for (let i = 0; i < MAX_LOOKED_PER_ATTEMPT - 2; i++) await arrive(store, i, ['music'], T0, `l${i}`);
    assert.equal(await arrive(store, 100_000, ['music'], T0), false, 'nobody in the crowd accepts it');
    assert.equal(await arrive(store, 100_001, ['music'], T0 + 1), true, 'paired with the one behind the crowd');
  });
});
