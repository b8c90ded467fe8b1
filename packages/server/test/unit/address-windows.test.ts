// What the memory store holds for addresses it has seen once: the minute's
// count of registrations (REGISTER_RATE_PER_MIN) and the proofs of work used.
// Many addresses (one IPv6 subscriber has 65,536 /64s) each starting once, or
// one proof replayed from each, must leave nothing past their time, and the
// counts no more than LIMITER_KEYS_MAX (fourth review).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory.js';
import { DEFAULTS } from '../contract/harness.js';

/** What the test reads of the store's own state (the differential test reads it the same way). */
interface Internals {
  registrations: { windows: Map<string, unknown> };
  spent: { at(now: number): Map<string, number> };
}

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;

const start = (store: MemoryStore, addr: string, now: number, proof?: string) =>
  store.register({ mode: 'text', interests: [], token: `tok-${addr}-${proof ?? ''}`, addr }, now, proof ? { proof: { key: proof, untilMs: now + 10_000 } } : {});

describe('per-address counts and spent proofs (memory store)', () => {
  it('registrations from many addresses, each once, hold at most LIMITER_KEYS_MAX counts, and none a minute later', async () => {
    const store = new MemoryStore({ ...DEFAULTS, limiterKeysMax: 1_000, registerRatePerMin: 2, pendingRegistrationsMax: 1_000_000 });
    const held = () => (store as unknown as Internals).registrations.windows.size;
    for (let i = 0; i < 3_000; i++) assert.equal((await start(store, `a${i}`, T0 + i)).status, 'ok');
    assert.equal(held(), 1_000, 'at the cap, the count that ends first goes');
    // The newest addresses are still counted: a third registration within their minute is refused.
    assert.equal((await start(store, 'a2999', T0 + 3_000)).status, 'ok');
    assert.equal((await start(store, 'a2999', T0 + 3_001)).status, 'rate-limited');
    // A minute on, one new address: the ended counts go from the front as it comes.
    assert.equal((await start(store, 'late', T0 + 3_000 + MINUTE)).status, 'ok');
    assert.equal(held(), 1, 'only the new count is held');
  });

  it('a proof replayed from many addresses counts nothing for them', async () => {
    const store = new MemoryStore({ ...DEFAULTS, registerRatePerMin: 2, pendingRegistrationsMax: 1_000_000 });
    const held = () => (store as unknown as Internals).registrations.windows.size;
    assert.equal((await start(store, 'solver', T0, 'sig')).status, 'ok');
    for (let i = 0; i < 500; i++) assert.equal((await start(store, `r${i}`, T0 + 1, 'sig')).status, 'proof-spent');
    assert.equal(held(), 1, "only the solver's count");
  });

  it('spent proofs are swept within a minute of their end on a quiet store, not only when their map has doubled', async () => {
    const store = new MemoryStore({ ...DEFAULTS, pendingRegistrationsMax: 1_000_000, registerRatePerMin: 1_000_000 });
    const spent = (now: number) => (store as unknown as Internals).spent.at(now).size;
    for (let i = 0; i < 1_500; i++) assert.equal((await start(store, `p${i}`, T0, `sig-${i}`)).status, 'ok');
    assert.equal(spent(T0), 1_500);
    // Each was remembered 10 s; a minute after the last sweep (at the 1,024th) the next use sweeps.
    assert.equal(spent(T0 + 30_000), 1_500, 'no sweep before the minute');
    assert.equal(spent(T0 + MINUTE), 0, 'the ended ones are gone');
  });
});
