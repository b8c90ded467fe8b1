// A pairing attempt of the memory store looks at MAX_LOOKED_PER_ATTEMPT
// waiting sessions at most, oldest first (fourth review, finding P1): a crowd
// that accepts nobody made every attempt read the whole pool, and its `next`s
// repeated that for free.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LOOKED_PER_ATTEMPT, MemoryStore } from '../../src/store/memory.js';
import { DEFAULTS } from '../contract/harness.js';

const T0 = 1_700_000_000_000;

/** A session with its matching socket open: whether that paired it. */
async function arrive(store: MemoryStore, n: number, interests: string[], now: number): Promise<boolean> {
  const token = `tok-${n}`;
  const r = await store.register({ mode: 'text', interests, token, addr: `addr-${n}` }, now);
  if (r.status !== 'ok') throw new Error(`register: ${r.status}`);
  const a = await store.attachMatching(r.id, token, `conn-${n}`, now);
  assert.ok(a.ok);
  return a.effects.paired.length > 0;
}

/** A waiting crowd of `n` sessions, each narrowed by an interest nobody else names, then someone who accepts anyone. */
async function crowdThenOpen(store: MemoryStore, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await arrive(store, i, [`only-${i}`], T0);
  assert.equal(await arrive(store, n, [], T0), false, 'nobody in the crowd accepts it');
}

describe('how many waiting sessions a pairing attempt looks at (memory store)', () => {
  it('finds a partner behind a crowd that accepts nobody, within MAX_LOOKED_PER_ATTEMPT', async () => {
    const store = new MemoryStore({ ...DEFAULTS, registerRatePerMin: 1_000_000, maxSessionsPerAddr: 1_000_000 });
    await crowdThenOpen(store, MAX_LOOKED_PER_ATTEMPT - 2);
    assert.equal(await arrive(store, 100_000, [], T0 + 1), true, 'paired with the one behind the crowd');
  });

  it('does not look past MAX_LOOKED_PER_ATTEMPT: behind a larger crowd, a newcomer waits', async () => {
    const store = new MemoryStore({ ...DEFAULTS, registerRatePerMin: 1_000_000, maxSessionsPerAddr: 1_000_000 });
    await crowdThenOpen(store, MAX_LOOKED_PER_ATTEMPT + 10);
    assert.equal(await arrive(store, 100_000, [], T0 + 1), false, 'the attempt stopped before the one behind the crowd');
  });
});
