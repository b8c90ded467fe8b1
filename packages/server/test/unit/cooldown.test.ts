// The memory store's re-pair cooldown (REPAIR_COOLDOWN_MS): a session that
// skips through many partners keeps only the entries still running, however
// few or many they are.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory.js';
import { isRefused } from '../../src/store/store.js';
import { DEFAULTS } from '../contract/harness.js';

/** What the test reads of the store's own state (the differential test reads it the same way). */
interface Internals {
  sessions: Map<string, { cooldown: Map<string, number> }>;
}

const T0 = 1_700_000_000_000;

async function arrive(store: MemoryStore, n: number, now: number): Promise<string> {
  const token = `tok-${n}`;
  const r = await store.register({ mode: 'text', interests: [], token, addr: `addr-${n}` }, now);
  if (r.status !== 'ok') throw new Error(`register: ${r.status}`);
  const a = await store.attachMatching(r.id, token, `conn-${n}`, now);
  assert.ok(a.ok);
  return r.id;
}

describe('re-pair cooldown (memory store)', () => {
  it('keeps only the entries still running: those that ran out go at the next room end, the others stay', async () => {
    const store = new MemoryStore(DEFAULTS);
    const cooldown = (id: string): Map<string, number> => {
      const s = (store as unknown as Internals).sessions.get(id);
      assert.ok(s, 'the session exists');
      return s.cooldown;
    };
    const skipper = await arrive(store, 0, T0);
    const partners: string[] = [];
    // Twenty partners, a second apart: each arrives, is paired with the skipper, who skips on.
    for (let i = 1; i <= 20; i++) {
      const now = T0 + i * 1_000;
      partners.push(await arrive(store, i, now));
      assert.ok(!isRefused(await store.next(skipper, 'conn-0', now)), 'next is accepted');
    }
    assert.equal(cooldown(skipper).size, 20, 'twenty partners within the window');
    // Past the window of the first ten: the next room end drops exactly those.
    const later = T0 + 10_500 + DEFAULTS.repairCooldownMs;
    await arrive(store, 21, later);
    assert.ok(!isRefused(await store.next(skipper, 'conn-0', later)));
    const left = [...cooldown(skipper).keys()];
    assert.equal(left.length, 11, 'ten still running and the new one');
    assert.deepEqual(left.slice(0, 10), partners.slice(10), 'the ten still running, oldest first');
    for (const until of cooldown(skipper).values()) assert.ok(until > later, 'no entry that ran out is kept');
    // The partners' own entries for the skipper are kept the same way.
    assert.equal(cooldown(partners[19] ?? '').size, 1);
  });
});
