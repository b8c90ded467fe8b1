// A one-trip start's socket, opened in the store before its upgrade is done
// (http/socket.ts HeldConnection), with the real memory store and hub.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { FakeClock } from '../../src/core/clock.js';
import { Hub } from '../../src/core/hub.js';
import { HeldConnection } from '../../src/http/socket.js';
import { MemoryStore } from '../../src/store/memory.js';
import { DEFAULTS, TestConn } from '../contract/harness.js';

async function setUp(): Promise<{ store: MemoryStore; hub: Hub; clock: FakeClock; waiting: TestConn }> {
  const clock = new FakeClock();
  const store = new MemoryStore(DEFAULTS);
  const hub = new Hub(store, clock, () => [], pino({ level: 'silent' }));
  const r = await store.register({ mode: 'video', interests: [], token: 'tok-a', addr: 'addr-a' }, clock.now());
  assert.equal(r.status, 'ok');
  if (r.status !== 'ok') throw new Error('register');
  const waiting = new TestConn('conn-a', r.id, 'matching');
  hub.add(waiting);
  const a = await store.attachMatching(r.id, 'tok-a', waiting.id, clock.now());
  assert.ok(a.ok);
  if (a.ok) await hub.run(a.effects);
  return { store, hub, clock, waiting };
}

describe('a held socket (one-trip start)', () => {
  it('holds what it is sent until served, then passes it on in order; the served socket takes over its TURN renewal, so nothing of it stays once the socket goes', async () => {
    const { store, hub, clock, waiting } = await setUp();
    const held = new HeldConnection('conn-b', 'addr-b', 'matching');
    hub.add(held);
    const r = await store.registerAttached({ mode: 'video', interests: [], token: 'tok-b', addr: 'addr-b' }, held.id, clock.now());
    assert.equal(r.status, 'ok');
    if (r.status !== 'ok') return;
    held.session = r.id;
    await hub.run(r.effects);
    assert.equal(waiting.last()?.event, 'matched');
    assert.equal(hub.following, 2, 'both members of the room are followed for TURN renewal');
    const served = new TestConn(held.id, r.id, 'matching');
    hub.add(served);
    held.serveWith(served);
    assert.deepEqual(served.events(), ['waiting', 'matched'], 'what was held, in order');
    assert.equal(hub.following, 2, 'the served socket in place of the held one');
    held.send(JSON.stringify({ event: 'idle' }));
    assert.deepEqual(served.events(), ['waiting', 'matched', 'idle'], 'and whatever comes later');
    hub.remove(served);
    assert.equal(hub.following, 1, 'only the partner is left');
  });

  it('counts as gone past 64 held messages, and keeps a close for the served socket', () => {
    const held = new HeldConnection('conn-c', 'addr-c', 'matching');
    for (let i = 0; i < 63; i++) held.send(JSON.stringify({ event: 'typing', typing: i % 2 === 0 }));
    assert.ok(held.isOpen());
    held.send(JSON.stringify({ event: 'typing', typing: true }));
    assert.ok(!held.isOpen(), 'its deliveries are then kept as for an absent member');
    held.close(4002, 'replaced by a newer socket');
    const served = new TestConn(held.id, 'c', 'matching');
    held.serveWith(served);
    assert.equal(served.received.length, 64);
    assert.equal(served.closedWith, 4002);
  });
});
