// Random frames at both sockets of both members of a pair (seeded, bounded).
// Whatever arrives, the server answers only with messages of the contract,
// closes a socket only for an oversized frame (1009), keeps serving, leaves a
// bystander pair alone, and still pairs, signals and chats normally afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { leaveAll, normalSession, pairJoined } from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient, sleep } from '../support/ws-client.js';

const MAX_FRAME_BYTES = 2048;
const SEED = Number(process.env.FUZZ_SEED ?? 20_251_123);
const RUNS = Number(process.env.FUZZ_RUNS ?? 30);
const SETTLE_MS = 150;

let server: RunningServer;

before(async () => {
  server = await startServer({ MAX_FRAME_BYTES: String(MAX_FRAME_BYTES), GRACE_MS: '300', SIGNAL_BUFFER: '8' });
});
after(async () => {
  await WireClient.closeAll();
  await server?.stop();
});

// Placeholders replaced at send time by the run's room, or the bystanders' room.
const OWN_ROOM = '\u0000own-room';
const OTHER_ROOM = '\u0000other-room';

type Frame = { kind: 'text'; text: string } | { kind: 'json'; value: Record<string, unknown> } | { kind: 'binary'; bytes: Uint8Array } | { kind: 'oversized'; extra: number };
interface Command {
  /** 0/1: matching socket of member a/b; 2/3: their signalling sockets. */
  socket: number;
  frame: Frame;
}

const roomArb = fc.oneof(fc.constant(OWN_ROOM), fc.constant(OTHER_ROOM), fc.string({ maxLength: 40 }));
const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 60, unit: 'grapheme' }), roomArb);
const structured = fc.record(
  {
    event: fc.constantFrom('next', 'stop', 'chat', 'typing', 'report', 'join', 'signal', 'leave', 'session', 'matched', 'verified', 'error', '', 'NEXT'),
    room_code: fc.option(roomArb),
    type: fc.option(fc.oneof(fc.constantFrom('offer', 'answer', 'candidate', 'rollback'), anyValue)),
    data: fc.option(fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), anyValue)),
    message: fc.option(fc.oneof(fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }), anyValue)),
    typing: fc.option(fc.oneof(fc.boolean(), anyValue)),
    reason: fc.option(anyValue),
    peer: fc.option(anyValue),
    target: fc.option(anyValue),
  },
  { requiredKeys: ['event'] },
);
const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 6, arbitrary: structured.map((value) => ({ kind: 'json' as const, value })) },
  { weight: 2, arbitrary: fc.string({ maxLength: 200, unit: 'binary' }).map((text) => ({ kind: 'text' as const, text })) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => ({ kind: 'text' as const, text: JSON.stringify(v) ?? 'null' })) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ kind: 'binary' as const, bytes })) },
  { weight: 1, arbitrary: fc.nat(5_000).map((extra) => ({ kind: 'oversized' as const, extra })) },
);
const commandsArb = fc.array(fc.record({ socket: fc.nat(3), frame: frameArb }), { minLength: 1, maxLength: 40 });

function render(frame: Frame, own: string, other: string): string | Buffer {
  switch (frame.kind) {
    case 'text':
      return frame.text;
    case 'binary':
      return Buffer.from(frame.bytes);
    case 'oversized':
      return JSON.stringify({ event: 'chat', message: 'x'.repeat(MAX_FRAME_BYTES + 1 + frame.extra) });
    case 'json':
      return JSON.stringify(frame.value).replaceAll(JSON.stringify(OWN_ROOM), JSON.stringify(own)).replaceAll(JSON.stringify(OTHER_ROOM), JSON.stringify(other));
  }
}

describe('fuzz', () => {
  it(`random frames at both sockets of a pair (seed ${SEED}, ${RUNS} runs) leave the server serving`, async () => {
    const bystanders = await normalSession(server);

    await fc.assert(
      fc.asyncProperty(commandsArb, async (commands: Command[]) => {
        const p = await pairJoined(server);
        const sockets = [p.a.m, p.b.m, p.a.s!, p.b.s!];
        const oversizedTo = new Set<number>();
        try {
          for (const { socket, frame } of commands) {
            const client = sockets[socket]!;
            if (!client.isOpen) continue;
            if (frame.kind === 'oversized') oversizedTo.add(socket);
            client.send(render(frame, p.room, bystanders.room));
          }
          await sleep(SETTLE_MS);
          for (const [i, client] of sockets.entries()) {
            // drain() fails on any frame that is not a message of the contract.
            await client.drain(0);
            const closed = client.isOpen ? undefined : await client.closed;
            if (oversizedTo.has(i)) {
              assert.equal(closed?.code, 1009, `${client.label}: an oversized frame must close with 1009, got ${closed ? closed.code : 'still open'}`);
            } else {
              assert.equal(closed, undefined, `${client.label}: closed with ${closed?.code} "${closed?.reason}" though no frame was oversized`);
            }
          }
          const health = await request(`${server.matching}/healthz`);
          assert.equal(health.status, 200, describeResponse(health));
        } finally {
          await leaveAll(p.a, p.b);
          // Let the server finish the leaves before the next run enters the pool.
          await sleep(30);
        }
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true, verbose: 1 },
    );

    // The bystanders were told nothing and still talk to each other.
    for (const c of [bystanders.a.m, bystanders.b.m, bystanders.a.s!, bystanders.b.s!]) {
      await c.expectSilence(0, { why: 'a bystander pair is not disturbed by someone else\'s garbage' });
    }
    bystanders.a.m.send({ event: 'chat', message: 'still here' });
    assert.equal((await bystanders.b.m.expect('chat')).message, 'still here');
    await leaveAll(bystanders.a, bystanders.b);
    await sleep(30);

    // And a brand-new pair does everything a normal pair does.
    const fresh = await normalSession(server);
    await leaveAll(fresh.a, fresh.b);
  });
});
