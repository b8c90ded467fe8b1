// Many sessions arriving at the same moment: every one ends in a room of
// exactly two, both members agree on the room, exactly one initiator, and
// nobody is paired twice.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { matchingUrl, oneTripUrl, register } from '../support/dyad.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient, type Events } from '../support/ws-client.js';

const USERS = 500;
const MATCH_WAIT_MS = 20_000;

let server: RunningServer;

before(async () => {
  server = await startServer();
});
after(async () => {
  await WireClient.closeAll();
  await server?.stop();
});
afterEach(() => WireClient.closeAll());

interface Arrival {
  id: string;
  client: WireClient;
  matched: Events['matched'];
}

/** Waits for the `matched` of one client, skipping `waiting`. */
async function matchedOf(client: WireClient): Promise<Events['matched']> {
  return client.expect('matched', { skip: ['waiting'], timeoutMs: MATCH_WAIT_MS, what: '"matched" (every session of an even crowd gets one)' });
}

/** Waits for every arrival; fails with how many did not make it and why, not just the first. */
async function settle(pending: Promise<Arrival>[]): Promise<Arrival[]> {
  const results = await Promise.allSettled(pending);
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error)?.message ?? r.reason)] : []));
  if (failed.length > 0) {
    const kinds = new Map<string, number>();
    for (const f of failed) {
      const kind = f.replace(/^crowd \d+|^[^:]+/, '<session>');
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    assert.fail(`${failed.length} of ${pending.length} sessions did not end matched:\n${[...kinds].map(([k, n]) => `  ${n} x ${k}`).join('\n')}`);
  }
  return results.map((r) => (r as PromiseFulfilledResult<Arrival>).value);
}

/** The checks the issue asks for, over every arrival. */
async function checkRooms(arrivals: Arrival[]): Promise<void> {
  const byId = new Map(arrivals.map((a) => [a.id, a]));
  assert.equal(byId.size, arrivals.length, 'every session has its own id');
  const rooms = new Map<string, Arrival[]>();
  for (const a of arrivals) rooms.set(a.matched.room_code, [...(rooms.get(a.matched.room_code) ?? []), a]);
  const odd = [...rooms.entries()].filter(([, members]) => members.length !== 2);
  assert.deepEqual(odd.map(([room, m]) => `${room.slice(0, 8)}…: ${m.length} members`), [], 'every room has exactly two members');
  for (const [room, members] of rooms) {
    const [x, y] = members as [Arrival, Arrival];
    assert.equal(x.matched.peer, y.id, `room ${room.slice(0, 8)}…: ${x.id} names ${x.matched.peer} as peer, its roommate is ${y.id}`);
    assert.equal(y.matched.peer, x.id, `room ${room.slice(0, 8)}…: ${y.id} names ${y.matched.peer} as peer, its roommate is ${x.id}`);
    assert.notEqual(x.matched.initiator, y.matched.initiator, `room ${room.slice(0, 8)}…: exactly one initiator`);
  }
  assert.equal(rooms.size, arrivals.length / 2);
  // Nobody twice: no second `matched` (or anything else) arrives afterwards.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const late = arrivals.filter((a) => a.client.history.filter((m) => m.event === 'matched').length !== 1);
  assert.deepEqual(late.map((a) => a.id), [], 'each session got exactly one "matched"');
}

describe('concurrency', () => {
  it(`${USERS} one-trip starts at once all end in rooms of exactly two, nobody twice`, async () => {
    const arrivals = await settle(
      Array.from({ length: USERS }, async (_, i): Promise<Arrival> => {
        const client = await WireClient.open(oneTripUrl(server), { channel: 'matching', label: `crowd ${i}` });
        const session = await client.expect('session', { timeoutMs: MATCH_WAIT_MS });
        return { id: session.id, client, matched: await matchedOf(client) };
      }),
    );
    await checkRooms(arrivals);
  });

  it(`${USERS} registered sessions opening their sockets at once: the same`, async () => {
    const registered = await Promise.all(Array.from({ length: USERS }, () => register(server)));
    const arrivals = await settle(
      registered.map(async ({ id, token }): Promise<Arrival> => {
        const client = await WireClient.open(matchingUrl(server, id, token), { channel: 'matching', label: id });
        return { id, client, matched: await matchedOf(client) };
      }),
    );
    await checkRooms(arrivals);
  });

  it('after the crowd, a fresh pair still pairs at once', async () => {
    const a = await WireClient.open(oneTripUrl(server), { channel: 'matching' });
    const sa = await a.expect('session');
    await a.expect('waiting');
    const b = await WireClient.open(oneTripUrl(server), { channel: 'matching' });
    const sb = await b.expect('session');
    assert.equal((await matchedOf(b)).peer, sa.id);
    assert.equal((await a.expect('matched')).peer, sb.id);
  });
});
