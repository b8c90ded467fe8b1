// The Store contract: the lifecycle and pairing rules of PROTOCOL.md, driven
// through a hub with a test clock. `describeStore` runs the same tests,
// unchanged, on any store implementation.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerMessage } from '@dyad/protocol';
import { Core, User, type StoreFactory, type TestConn } from './harness.js';
import { isRefused, type RegisterResult, type StoreOptions } from '../../src/store/store.js';

type Msg<E extends ServerMessage['event']> = Extract<ServerMessage, { event: E }>;

const reasonOf = (m: ServerMessage | undefined): string | undefined => (m?.event === 'peer-disconnected' ? m.reason : undefined);
const codeOf = (m: ServerMessage | undefined): string | undefined => (m?.event === 'error' ? m.code : undefined);

export function describeStore(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    const cores: Core[] = [];
    const make = async (opts: Partial<StoreOptions> = {}): Promise<Core> => {
      const core = await Core.create(factory, opts);
      cores.push(core);
      return core;
    };
    afterEach(async () => {
      for (const core of cores.splice(0)) {
        core.hub.close();
        await core.store.close();
      }
    });

    /** Two sessions paired, with the initiator first. */
    const pair = async (core: Core): Promise<{ ini: User; res: User; room: string }> => {
      const a = await core.join();
      const b = await core.join();
      const m = a.matched();
      assert.ok(m, 'paired');
      return m.initiator ? { ini: a, res: b, room: m.room_code } : { ini: b, res: a, room: m.room_code };
    };

    describe('limiters', () => {
      it('a limit holds at most limiterKeysMax keys: past it the window that ends first goes, and its key starts afresh', async () => {
        const core = await make({ limiterKeysMax: 3 });
        const limit = core.store.limiter(`cap-${Math.random().toString(36).slice(2)}`, 1, 60);
        const held = async (keys: readonly string[]): Promise<string[]> => {
          const out: string[] = [];
          for (const k of keys) if ((await limit.get(k)) !== null) out.push(k);
          return out;
        };
        const refused = async (k: string): Promise<boolean> => limit.consume(k).then(() => false, () => true);
        for (const k of ['a', 'b', 'c']) assert.equal(await refused(k), false);
        assert.equal(await refused('a'), true, 'a key held is counted');
        assert.equal(await refused('d'), false);
        assert.deepEqual(await held(['a', 'b', 'c', 'd']), ['b', 'c', 'd'], 'the first to end made room');
        assert.equal(await refused('a'), false, 'a forgotten key starts afresh');
        // Many keys more, as from addresses made up by the thousand: still three held, each counted.
        const many = Array.from({ length: 200 }, (_, i) => `k${i}`);
        for (const k of many) assert.equal(await refused(k), false);
        assert.equal((await held(['a', 'b', 'c', 'd', ...many])).length, 3);
        assert.equal(await refused('k199'), true, 'the last key is held and counted');
      });
    });

    describe('roomOf', () => {
      it("gives the session's room to its own token only, and nothing once the room ended", async () => {
        const core = await make();
        const { ini, res, room } = await pair(core);
        assert.equal(await core.store.roomOf(ini.id, ini.token), room);
        assert.equal(await core.store.roomOf(res.id, res.token), room);
        assert.equal(await core.store.roomOf(ini.id, res.token), undefined, "another session's token opens nothing");
        assert.equal(await core.store.roomOf('nobody', ini.token), undefined);
        await ini.send({ event: 'stop' });
        assert.equal(await core.store.roomOf(ini.id, ini.token), undefined, 'no room once it ended');
        assert.equal(await core.store.roomOf(res.id, res.token), undefined);
        const waiting = await core.join();
        assert.equal(await core.store.roomOf(waiting.id, waiting.token), undefined, 'no room while waiting');
      });
    });

    describe('pairing', () => {
      it('pairs the second arrival at once, with exactly one initiator and a shared room', async () => {
        const core = await make();
        const a = await core.join({ name: 'alice' });
        assert.deepEqual(a.m.events(), ['waiting']);
        const b = await core.join();
        const ma = a.matched();
        const mb = b.matched();
        assert.ok(ma && mb, 'both matched');
        assert.equal(ma.room_code, mb.room_code);
        assert.ok(ma.room_code.length >= 22, 'room code carries at least 128 bits');
        assert.notEqual(ma.initiator, mb.initiator);
        assert.equal(ma.peer, b.id);
        assert.equal(mb.peer, 'alice');
        assert.deepEqual(ma.common_interests, []);
        assert.equal(ma.mode, 'video');
        assert.deepEqual(b.m.events(), ['waiting', 'matched']);
      });

      it('a one-trip start registers and opens its socket in one call: paired at once; a taken name or a banned address opens nothing', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.arrive();
        assert.ok(!('status' in b), 'registered');
        assert.equal(b.matched()?.peer, a.id);
        assert.equal(a.matched()?.peer, b.id);
        assert.deepEqual(b.m.events(), ['waiting', 'matched'], 'as for a socket opened after its registration');
        const c = await core.arrive();
        assert.ok(!('status' in c));
        assert.deepEqual(c.m.events(), ['waiting'], 'nobody else waits: in the pool');
        assert.equal((await core.store.stats()).waiting.video, 1);
        await core.join({ name: 'taken', mode: 'text' });
        const refused = await core.arrive({ name: 'taken' });
        assert.equal('status' in refused && refused.status, 'exists');
        await core.store.addBan('banned-addr', 60_000, 'test', core.clock.now());
        const banned = await core.arrive({ addr: 'banned-addr' });
        assert.equal('status' in banned && banned.status, 'banned');
        const stats = await core.store.stats();
        assert.equal(stats.waiting.video, 1, 'what was refused is not waiting');
        assert.equal(c.matched(), undefined, 'and met nobody');
      });

      it('keeps modes apart', async () => {
        const core = await make();
        const v = await core.join({ mode: 'video' });
        const t = await core.join({ mode: 'text' });
        assert.equal(v.matched(), undefined);
        assert.equal(t.matched(), undefined);
        const t2 = await core.join({ mode: 'text' });
        assert.equal(t2.matched()?.peer, t.id);
        assert.equal(t2.matched()?.mode, 'text');
      });

      it('pairs on shared interests first and falls back to anyone exactly at the timeout', async () => {
        const core = await make({ interestTimeoutMs: 5_000 });
        const a = await core.join({ interests: ['music'] });
        const b = await core.join();
        assert.equal(a.matched(), undefined, 'a accepts only someone sharing an interest');
        await core.clock.advance(4_999);
        assert.equal(a.matched(), undefined, 'not before the timeout');
        await core.clock.advance(1);
        assert.equal(a.matched()?.peer, b.id, 'paired the moment the timeout runs out');
        assert.deepEqual(a.matched()?.common_interests, []);
      });

      it('an interest timer that fires early looks again when the narrowing has really run out', async () => {
        const core = await make({ interestTimeoutMs: 5_000 });
        const a = await core.join({ interests: ['music'] });
        const b = await core.join();
        const early = await core.store.onInterestTimeout(a.id, core.clock.now() + 4_999);
        assert.equal(a.matched(), undefined);
        assert.deepEqual(
          early.timers.map((t) => [t.kind, t.id, t.delayMs]),
          [['interest', a.id, 1]],
        );
        await core.clock.advance(5_000);
        assert.equal(a.matched()?.peer, b.id);
      });

      it('prefers a sharer and reports the common interests', async () => {
        const core = await make();
        const a = await core.join({ interests: ['music', 'go'] });
        const b = await core.join({ interests: ['go'] });
        assert.deepEqual(a.matched()?.common_interests, ['go']);
        assert.deepEqual(b.matched()?.common_interests, ['go']);
      });

      it('prefers a sharer among those eligible', async () => {
        for (let run = 0; run < 10; run++) {
          const core = await make({ interestTimeoutMs: 0 });
          const plain = await core.join({ addr: 'p' });
          const sharer = await core.join({ interests: ['chess'], addr: 's' });
          // A report keeps these two apart, so both wait.
          await plain.send({ event: 'report' });
          await plain.send({ event: 'next' });
          await sharer.send({ event: 'next' });
          assert.equal(plain.matched(), undefined);
          const seeker = await core.join({ interests: ['chess'] });
          assert.equal(seeker.matched()?.peer, sharer.id);
          assert.deepEqual(seeker.matched()?.common_interests, ['chess']);
        }
      });

      it('narrows by lang until the timeout', async () => {
        const core = await make({ interestTimeoutMs: 1_000 });
        const en = await core.join({ lang: 'en' });
        const fr = await core.join({ lang: 'fr' });
        assert.equal(en.matched(), undefined);
        const en2 = await core.join({ lang: 'en' });
        assert.equal(en2.matched()?.peer, en.id);
        await core.clock.advance(1_000);
        assert.equal(fr.matched(), undefined, 'alone in the pool: nobody to fall back to');
        const any = await core.join();
        assert.equal(any.matched()?.peer, fr.id);
      });

      it('with both lang and interests, needs both until the timeout', async () => {
        const core = await make({ interestTimeoutMs: 1_000 });
        const a = await core.join({ lang: 'en', interests: ['go'] });
        const wrongLang = await core.join({ lang: 'de', interests: ['go'] });
        const noShare = await core.join({ lang: 'en', interests: ['rust'] });
        assert.equal(a.matched(), undefined);
        assert.equal(wrongLang.matched(), undefined);
        assert.equal(noShare.matched(), undefined);
        const both = await core.join({ lang: 'en', interests: ['tea', 'go'] });
        assert.equal(both.matched()?.peer, a.id);
        assert.deepEqual(both.matched()?.common_interests, ['go']);
      });

      it('a narrowed newcomer is paired with someone whose own narrowing ran out, if it accepts them', async () => {
        const core = await make({ interestTimeoutMs: 1_000 });
        const old = await core.join({ interests: ['film'] });
        await core.clock.advance(1_000);
        assert.equal(old.matched(), undefined);
        const other = await core.join({ interests: ['go'] });
        assert.equal(other.matched(), undefined, 'the newcomer still narrows: no shared interest');
        const sharer = await core.join({ interests: ['film'] });
        assert.equal(sharer.matched()?.peer, old.id, 'old accepts anyone now, sharer accepts old');
        const plain = await core.join();
        assert.equal(plain.matched(), undefined, 'other still narrows');
        await core.clock.advance(1_000);
        assert.equal(other.matched()?.peer, plain.id);
      });

      it('does not re-pair two sessions within the cooldown while anyone else is eligible', async () => {
        for (let run = 0; run < 20; run++) {
          const core = await make({ interestTimeoutMs: 600_000 });
          const a = await core.join({ interests: ['x'] });
          const b = await core.join({ interests: ['x', 'y'] });
          assert.equal(b.matched()?.peer, a.id);
          await a.send({ event: 'stop' });
          await a.send({ event: 'next' });
          const c = await core.join({ interests: ['y'] });
          assert.equal(c.matched(), undefined, 'c and a share nothing');
          await b.send({ event: 'next' });
          assert.equal(b.matched()?.peer, c.id, 'b is paired with c, not again with a');
        }
      });

      it('re-pairs the same two within the cooldown when nobody else is eligible', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        await a.send({ event: 'next' });
        await b.send({ event: 'next' });
        assert.equal(b.matched()?.peer, a.id);
      });

      it('pairs a session waiting longer than FAIR_WAIT_MS before newer ones', async () => {
        for (let run = 0; run < 20; run++) {
          const core = await make({ interestTimeoutMs: 600_000, fairWaitMs: 10_000 });
          const old = await core.join({ interests: ['x'] });
          await core.clock.advance(10_001);
          const newer = await core.join({ interests: ['y'] });
          const seeker = await core.join({ interests: ['x', 'y'] });
          assert.equal(seeker.matched()?.peer, old.id);
          assert.equal(newer.matched(), undefined);
        }
      });

      it('picks at random among eligible sessions that waited less than FAIR_WAIT_MS', async () => {
        const seen = new Set<string>();
        for (let run = 0; run < 30 && seen.size < 2; run++) {
          const core = await make({ interestTimeoutMs: 600_000 });
          await core.join({ interests: ['x'], name: 'first' });
          await core.join({ interests: ['y'], name: 'second' });
          const seeker = await core.join({ interests: ['x', 'y'] });
          seen.add(seeker.matched()?.peer ?? '');
        }
        assert.deepEqual([...seen].sort(), ['first', 'second']);
      });

      it('never pairs a reporter with the reported again', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        await a.send({ event: 'report' });
        await a.send({ event: 'next' });
        await b.send({ event: 'next' });
        assert.equal(a.matched(), undefined);
        assert.equal(b.matched(), undefined);
        const c = await core.join();
        assert.ok(c.matched(), 'a third session pairs with one of them');
      });

      it('a waiting session in its grace period keeps its place but is not paired until it is back', async () => {
        const core = await make();
        const a = await core.join();
        await a.drop();
        const b = await core.join();
        assert.equal(b.matched(), undefined, 'a is away');
        const m = await a.connect();
        assert.equal(m.received[0]?.event, 'waiting', 'resumption re-sends the state');
        assert.equal(a.matched()?.peer, b.id, 'paired once back');
        assert.equal(b.matched()?.peer, a.id);
      });

      it('counts waiting sessions, rooms and sessions', async () => {
        const core = await make();
        await core.join();
        await core.join({ mode: 'text' });
        let stats = await core.store.stats();
        assert.deepEqual(stats.waiting, { video: 1, text: 1 });
        assert.equal(stats.rooms, 0);
        assert.equal(stats.sessions, 2);
        await core.join();
        stats = await core.store.stats();
        assert.deepEqual(stats.waiting, { video: 0, text: 1 });
        assert.equal(stats.rooms, 1);
        assert.equal(stats.sessions, 3);
      });
    });

    describe('matching socket', () => {
      it('next leaves the partner (skip) and queues again; stop leaves (left) and idles', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        await a.send({ event: 'next' });
        assert.equal(reasonOf(b.m.last()), 'skip');
        assert.equal(a.m.last()?.event, 'waiting');
        const c = await core.join();
        assert.equal(c.matched()?.peer, a.id, 'a was queued again; b is idle until it asks');
        await c.send({ event: 'stop' });
        assert.equal(reasonOf(a.m.last()), 'left');
        assert.equal(c.m.last()?.event, 'idle');
        await c.send({ event: 'stop' });
        assert.equal(c.m.last()?.event, 'idle', 'stop when idle says idle again');
      });

      it('next while waiting says waiting again and keeps the place', async () => {
        const core = await make();
        const a = await core.join();
        await a.send({ event: 'next' });
        assert.deepEqual(a.m.events(), ['waiting', 'waiting']);
        const b = await core.join();
        assert.equal(b.matched()?.peer, a.id);
      });

      it('past NEXT_RATE_PER_MIN of an address in a minute a next is refused and changes nothing, whichever session of the address sends it; a minute after the first it is allowed again', async () => {
        const core = await make({ nextRatePerMin: 3 });
        const a = await core.join({ addr: 'shared' });
        const b = await core.join();
        assert.equal(a.matched()?.peer, b.id);
        await core.clock.advance(1_000);
        await a.send({ event: 'next' }); // 1: skips b, waits
        await b.send({ event: 'next' }); // b's address is its own: pairs with a again
        assert.equal(a.matched()?.peer, b.id);
        const a2 = await core.join({ addr: 'shared' });
        await core.clock.advance(20_000);
        await a2.send({ event: 'next' }); // 2, from another session of the address
        await a.send({ event: 'next' }); // 3: skips b again; a and a2 share an address, so they could pair
        const before = a.m.events().length;
        const partnerBefore = a.matched();
        await core.clock.advance(1_000);
        await a2.send({ event: 'next' });
        assert.equal(codeOf(a2.m.last()), 'rate-limited', 'the fourth next of the address in its minute');
        assert.equal(a2.refusedRetryMs, 60_000 - 21_000, 'allowed again when the minute from the first next ends');
        await a.send({ event: 'next' });
        assert.equal(codeOf(a.m.last()), 'rate-limited');
        assert.equal(a.m.events().length, before + 1, 'only the refusal: the room or the wait is as it was');
        assert.deepEqual(a.matched(), partnerBefore);
        const stats = await core.store.stats();
        await core.clock.advance(60_000 - 21_000 - 1);
        await a.send({ event: 'next' });
        assert.equal(codeOf(a.m.last()), 'rate-limited', 'a millisecond before the minute ends');
        assert.deepEqual(await core.store.stats(), stats, 'refused nexts change nothing');
        await core.clock.advance(1);
        await a.send({ event: 'next' });
        assert.notEqual(codeOf(a.m.last()), 'rate-limited', 'a new minute');
        await b.send({ event: 'next' });
        assert.notEqual(codeOf(b.m.last()), 'rate-limited', 'another address counts apart');
      });

      it('relays chat with sender and timestamp, and typing', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        await a.send({ event: 'chat', message: 'héllo 👋 "quoted" \\ back' });
        const chat = b.m.last() as Msg<'chat'>;
        assert.equal(chat.event, 'chat');
        assert.equal(chat.sender, a.id);
        assert.equal(chat.message, 'héllo 👋 "quoted" \\ back');
        assert.equal(chat.timestamp, core.clock.now() / 1000);
        await b.send({ event: 'typing', typing: true });
        assert.deepEqual(a.m.last(), { event: 'typing', sender: b.id, typing: true });
        await b.send({ event: 'typing', typing: false });
        assert.deepEqual(a.m.last(), { event: 'typing', sender: b.id, typing: false });
      });

      it('chat without a partner gets no-partner; typing without one is ignored', async () => {
        const core = await make();
        const a = await core.join();
        await a.send({ event: 'chat', message: 'anyone?' });
        assert.equal(codeOf(a.m.last()), 'no-partner');
        const before = a.m.received.length;
        await a.send({ event: 'typing', typing: true });
        assert.equal(a.m.received.length, before);
      });

      it('typing is dropped while the partner is away; chat is kept up to SIGNAL_BUFFER', async () => {
        const core = await make({ signalBuffer: 2 });
        const a = await core.join();
        const b = await core.join();
        await a.drop();
        await b.send({ event: 'typing', typing: true });
        await b.send({ event: 'chat', message: 'one' });
        await b.send({ event: 'chat', message: 'two' });
        await b.send({ event: 'chat', message: 'three' });
        assert.equal(codeOf(b.m.last()), 'buffer-full');
        const m = await a.connect();
        assert.deepEqual(m.events(), ['matched', 'chat', 'chat']);
        assert.deepEqual(m.received.slice(1).map((x) => (x.event === 'chat' ? x.message : '')), ['one', 'two']);
      });

      for (const leave of ['next', 'block'] as const) {
        it(`chat kept for an absent partner is still told, before the end of the room, when the other ends it with ${leave}`, async () => {
          const core = await make();
          const a = await core.join({ addr: 'same' });
          const b = await core.join({ addr: 'same' });
          const room = (b.matched() as Msg<'matched'>).room_code;
          await a.connectSignalling();
          await b.connectSignalling();
          await a.drop();
          await b.signal(room, 'offer', { sdp: 'x' });
          await b.send({ event: 'chat', message: 'before' });
          const kept = (await core.store.stats()).keptBytes;
          await b.send(leave === 'next' ? { event: 'next' } : { event: 'block', addressWide: false });
          assert.equal((await core.store.stats()).keptBytes, kept, 'the chat is kept past the end of the room');
          const m = await a.connect();
          assert.deepEqual(m.events(), ['chat', 'peer-disconnected', 'idle']);
          assert.equal((await core.store.stats()).keptBytes, 0, 'nothing kept once told');
        });
      }

      it('a second matching socket replaces the first (4002) and gets the current state', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        const first = a.m;
        const second = await a.connect();
        assert.equal(first.closedWith, 4002);
        const m = second.received[0] as Msg<'matched'>;
        assert.equal(m.event, 'matched');
        assert.equal(m.resumed, true);
        assert.equal(m.peer, b.id);
        await b.send({ event: 'chat', message: 'to the new socket' });
        assert.equal(second.last()?.event, 'chat');
        assert.equal(first.received.filter((x) => x.event === 'chat').length, 0);
        // The replaced socket's close is no longer the session's business.
        await core.hub.run(await core.store.detachMatching(a.id, first.id, true, core.clock.now()));
        assert.equal(await core.store.verify(a.id, a.token), true);
      });

      it('an idle session resumes as idle', async () => {
        const core = await make();
        const a = await core.join();
        await a.send({ event: 'stop' });
        await a.drop();
        const m = await a.connect();
        assert.deepEqual(m.events(), ['idle']);
      });

      it('a chat written to a socket that closed under it is kept for the resumption', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        a.m.open = false; // closing, and the store does not know yet
        await b.send({ event: 'chat', message: 'in flight' });
        await a.drop();
        const m = await a.connect();
        assert.deepEqual(m.events(), ['matched', 'chat']);
      });

      it('each chat line carries its seq in the room; a resumption naming the last line it has is not sent it again, one naming another room gets all', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        const room = a.matched()?.room_code ?? '';
        await b.send({ event: 'chat', message: 'one' });
        await a.send({ event: 'chat', message: 'mine' });
        await b.send({ event: 'chat', message: 'two' });
        const seqs = (m: TestConn): [string, number | undefined][] => m.received.flatMap((x) => (x.event === 'chat' ? [[x.message, x.seq] as [string, number | undefined]] : []));
        assert.deepEqual(seqs(a.m), [['one', 1], ['two', 2]], 'per sender, from 1');
        assert.deepEqual(seqs(b.m), [['mine', 1]]);
        // 'two' and 'three' reach a socket that closed under them (a had 'two' before its socket dropped).
        a.m.open = false;
        await b.send({ event: 'chat', message: 'three' });
        await a.drop();
        await b.send({ event: 'chat', message: 'four' });
        let m = await a.connect({ room, seq: 2 });
        assert.deepEqual(seqs(m), [['three', 3], ['four', 4]]);
        await a.drop();
        await b.send({ event: 'chat', message: 'five' });
        m = await a.connect({ room: 'another-room', seq: 9 });
        assert.deepEqual(seqs(m), [['five', 5]], 'a seq of another room hides nothing');
        await a.drop();
        await b.send({ event: 'chat', message: 'six' });
        await b.send({ event: 'chat', message: 'seven' });
        m = await a.connect({ room, seq: 6 });
        assert.deepEqual(m.events(), ['matched', 'chat']);
        assert.deepEqual(seqs(m), [['seven', 7]]);
        assert.equal((await core.store.stats()).keptBytes, 0, 'what was not sent again is no longer kept');
        // A new room counts from 1 again.
        await a.send({ event: 'next' });
        const c = await core.join();
        await c.send({ event: 'chat', message: 'hello' });
        assert.deepEqual(seqs(a.m).at(-1), ['hello', 1]);
      });

      it('chat kept for a socket that closed under it is told on resumption when the partner ends the room meanwhile', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        b.m.open = false; // closing, and the store does not know yet
        await a.send({ event: 'chat', message: 'before the end' });
        const kept = (await core.store.stats()).keptBytes;
        assert.ok(kept > 0, 'kept once it could not be written');
        await a.send({ event: 'stop' });
        await core.idle();
        assert.equal((await core.store.stats()).keptBytes, kept, 'still kept after the room ended');
        await b.drop();
        const m = await b.connect();
        assert.deepEqual(m.events(), ['chat', 'idle'], 'the line, then where it stands (the end of the room went to the socket it had)');
        assert.equal((await core.store.stats()).keptBytes, 0);
      });

      it('chat kept for a socket that closed under it is not shown in a later room', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        b.m.open = false; // closing, and the store does not know yet
        await a.send({ event: 'chat', message: 'from the first room' });
        await a.send({ event: 'stop' });
        // b's socket is still taken for open: it asks for someone new and meets c.
        const r = await core.store.next(b.id, b.m.id, core.clock.now());
        assert.ok(!isRefused(r));
        await core.hub.run(r);
        const c = await core.join();
        assert.equal(c.matched()?.peer, b.id);
        await b.drop();
        const m = await b.connect();
        assert.deepEqual(m.events(), ['matched'], 'the chat of the first room is not shown in the second');
        assert.equal((await core.store.stats()).keptBytes, 0);
      });
    });

    describe('lifecycle', () => {
      it('ends the session when the matching grace period runs out, telling the partner timeout', async () => {
        const core = await make({ graceMs: 15_000 });
        const a = await core.join();
        const b = await core.join();
        await a.drop();
        await core.clock.advance(14_999);
        assert.equal(b.m.last()?.event, 'matched', 'the partner is told nothing during the grace period');
        await core.clock.advance(1);
        assert.equal(reasonOf(b.m.last()), 'timeout');
        assert.equal(await core.store.verify(a.id, a.token), false, 'the token opens nothing more');
        assert.equal(await core.store.sessionForToken(a.token), undefined);
      });

      it('resumes within the grace period: matched resumed, then the chat kept meanwhile, in order', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        await a.drop();
        await b.send({ event: 'chat', message: 'one' });
        await b.send({ event: 'chat', message: 'two' });
        await core.clock.advance(10_000);
        const m = await a.connect();
        assert.deepEqual(m.events(), ['matched', 'chat', 'chat']);
        const first = m.received[0];
        assert.equal(first?.event === 'matched' && first.resumed, true);
        assert.deepEqual(m.received.slice(1).map((x) => (x.event === 'chat' ? x.message : '')), ['one', 'two']);
        await core.clock.advance(20_000);
        assert.equal(b.m.last()?.event, 'matched', 'no timeout after resumption');
      });

      it('tells a resumed session the news it missed, then idle', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        await a.drop();
        await b.send({ event: 'next' });
        const m = await a.connect();
        assert.deepEqual(m.events(), ['peer-disconnected', 'idle']);
        assert.equal(reasonOf(m.received[0]), 'skip');
      });

      it('a clean close leaves at once: the partner gets left, the signalling socket unauthorized', async () => {
        const core = await make();
        const a = await core.join();
        const b = await core.join();
        const s = await a.connectSignalling();
        await a.drop(true);
        assert.equal(reasonOf(b.m.last()), 'left');
        assert.equal(await core.store.verify(a.id, a.token), false);
        assert.equal(codeOf(s.last()), 'unauthorized');
        assert.equal(s.closedWith, 4001);
      });

      it('expel from the matching socket (a flood) ends the session as a clean leave; a wrong token expels nothing', async () => {
        const core = await make();
        const { ini: a, res: b, room } = await pair(core);
        const s = await a.connectSignalling();
        await a.join(room);
        await core.hub.run(await core.store.expel(a.id, 'not-the-token', 'matching', a.m.id, core.clock.now()));
        assert.equal(await core.store.verify(a.id, a.token), true, 'another token expels nothing');
        assert.equal(b.matched()?.room_code, room);
        a.m.open = false;
        core.hub.remove(a.m);
        await core.hub.run(await core.store.expel(a.id, a.token, 'matching', a.m.id, core.clock.now()));
        assert.equal(reasonOf(b.m.last()), 'left');
        assert.equal(await core.store.verify(a.id, a.token), false, 'the token opens nothing more');
        assert.equal(codeOf(s.last()), 'unauthorized');
        assert.equal(s.closedWith, 4001);
        assert.equal(a.m.closedWith, undefined, 'the expelled socket keeps its own close');
      });

      it('expel from the signalling socket ends the whole session: the matching socket gets unauthorized and 4001', async () => {
        const core = await make();
        const { ini: a, res: b, room } = await pair(core);
        const s = await a.connectSignalling();
        await a.join(room);
        const bs = await b.connectSignalling();
        await b.join(room);
        s.open = false;
        core.hub.remove(s);
        await core.hub.run(await core.store.expel(a.id, a.token, 'signalling', s.id, core.clock.now()));
        assert.equal(reasonOf(b.m.last()), 'left');
        assert.equal(reasonOf(bs.last()), 'left');
        assert.equal(codeOf(a.m.last()), 'unauthorized');
        assert.equal(a.m.closedWith, 4001);
        assert.equal(await core.store.verify(a.id, a.token), false);
        assert.equal((await core.store.stats()).rooms, 0);
      });

      it('expires a registration whose matching socket never opens', async () => {
        const core = await make({ registrationTtlMs: 30_000 });
        const r = await core.store.register({ mode: 'video', interests: [], token: 'tok', addr: 'x' }, core.clock.now());
        assert.equal(r.status, 'ok');
        if (r.status !== 'ok') return;
        await core.hub.run(r.effects);
        assert.equal(await core.store.sessionForToken('tok'), r.id);
        await core.clock.advance(29_999);
        assert.equal(await core.store.verify(r.id, 'tok'), true);
        await core.clock.advance(1);
        assert.equal(await core.store.verify(r.id, 'tok'), false);
      });

      it('past pendingRegistrationsMax registrations waiting for their socket, register is refused busy until one opens its socket or runs out; a one-trip start is not', async () => {
        const core = await make({ registrationTtlMs: 30_000, pendingRegistrationsMax: 2 });
        let n = 0;
        const reg = async (): Promise<RegisterResult> => {
          n += 1;
          const r = await core.store.register({ mode: 'video', interests: [], token: `pend-${n}`, addr: `p${n}` }, core.clock.now());
          if (r.status === 'ok') await core.hub.run(r.effects);
          return r;
        };
        const first = await reg();
        await core.clock.advance(10_000);
        const second = await reg();
        assert.equal(first.status, 'ok');
        assert.equal(second.status, 'ok');
        const refused = await reg();
        assert.deepEqual(refused, { status: 'busy', retryMs: 20_000 }, 'the first one runs out in 20 s');
        const oneTrip = await core.arrive({ addr: 'p-one-trip' });
        assert.ok(oneTrip instanceof User, 'a one-trip start opens its socket at once: it never waits');
        // The second opens its socket: a place is free.
        if (second.status !== 'ok') return;
        const attached = await core.store.attachMatching(second.id, `pend-2`, 'pend-conn', core.clock.now());
        assert.equal(attached.ok, true);
        const third = await reg();
        assert.equal(third.status, 'ok', 'the socket that opened freed its place');
        assert.equal((await reg()).status, 'busy');
        // The first runs out, its place with it.
        await core.clock.advance(20_000);
        assert.equal((await reg()).status, 'ok', 'a registration that ran out frees its place');
        assert.equal((await reg()).status, 'busy');
      });

      it('refuses a name with a live session and a wrong token', async () => {
        const core = await make();
        const a = await core.join({ name: 'bob' });
        const again = await core.store.register({ name: 'bob', mode: 'video', interests: [], token: 'other', addr: 'y' }, core.clock.now());
        assert.equal(again.status, 'exists');
        assert.equal(await core.store.verify(a.id, 'not-the-token'), false);
        assert.equal(await core.store.verify('nobody', a.token), false);
        const refused = await core.store.attachMatching(a.id, 'not-the-token', 'x1', core.clock.now());
        assert.equal(refused.ok, false);
        await a.drop(true);
        const free = await core.store.register({ name: 'bob', mode: 'video', interests: [], token: 'other', addr: 'y' }, core.clock.now());
        assert.equal(free.status, 'ok', 'the name is free once its session ended');
      });

      it('ends the room when a joined signalling socket’s grace runs out', async () => {
        const core = await make({ graceMs: 1_000 });
        const a = await core.join();
        const b = await core.join();
        const room = a.matched()?.room_code ?? '';
        await a.connectSignalling();
        await a.join(room);
        await a.dropSignalling();
        await core.clock.advance(1_000);
        assert.equal(reasonOf(b.m.last()), 'timeout');
        assert.equal(a.m.last()?.event, 'idle');
      });

      it('keeps a matched session’s room while both sockets are away, within the grace period', async () => {
        const core = await make({ graceMs: 5_000 });
        const { ini, res, room } = await pair(core);
        await ini.connectSignalling();
        await ini.join(room);
        await ini.dropSignalling();
        await ini.drop();
        await core.clock.advance(4_000);
        await ini.connect();
        await ini.connectSignalling();
        await ini.join(room);
        const verified = ini.s?.last() as Msg<'verified'>;
        assert.equal(verified.event, 'verified');
        assert.equal(verified.peer, res.id);
        await core.clock.advance(10_000);
        assert.equal(res.matched()?.room_code, room, 'nothing ran out');
      });
    });

    describe('signalling', () => {
      it('join: verified with role and peer_joined; the first joiner gets peer-joined', async () => {
        const core = await make();
        const { ini, res, room } = await pair(core);
        await ini.connectSignalling();
        await ini.join(room);
        assert.deepEqual(ini.s?.last(), { event: 'verified', room_code: room, role: 'initiator', peer: res.id, peer_joined: false });
        await res.connectSignalling();
        await res.join(room);
        assert.deepEqual(res.s?.last(), { event: 'verified', room_code: room, role: 'responder', peer: ini.id, peer_joined: true });
        assert.deepEqual(ini.s?.last(), { event: 'peer-joined', room_code: room, peer: res.id });
      });

      it('relays signals in order with their JSON data unchanged, and enforces who sends the first offer and answer', async () => {
        const core = await make();
        const { ini, res, room } = await pair(core);
        await ini.connectSignalling();
        await res.connectSignalling();
        await ini.join(room);
        await res.join(room);
        await res.signal(room, 'offer', { sdp: 'x' });
        assert.equal(codeOf(res.s?.last()), 'role-mismatch');
        await ini.signal(room, 'answer', { sdp: 'x' });
        assert.equal(codeOf(ini.s?.last()), 'role-mismatch');
        const data = { sdp: 'v=0\r\n', list: [], nested: { empty: {}, n: 12345678901234567, f: 0.1, big: 1e300, t: true, z: null }, u: 'é👋' };
        await ini.signal(room, 'offer', data);
        const got = res.s?.last() as Msg<'signal'>;
        assert.deepEqual(got, { event: 'signal', room_code: room, from: ini.id, type: 'offer', data });
        for (let i = 0; i < 20; i++) await ini.signal(room, 'candidate', { candidate: `c${i}`, i });
        await res.signal(room, 'answer', { sdp: 'y' });
        await res.signal(room, 'offer', { sdp: 'z', renegotiate: true });
        const signals = res.s?.received.filter((m): m is Msg<'signal'> => m.event === 'signal') ?? [];
        assert.deepEqual(
          signals.slice(1).map((m) => m.data.i),
          Array.from({ length: 20 }, (_, i) => i),
        );
        assert.equal((ini.s?.last() as Msg<'signal'>).data.renegotiate, true, 'after the answer either side may offer');
      });

      it('keeps signals for a partner that has not joined and delivers them in order on join', async () => {
        const core = await make({ signalBuffer: 3 });
        const { ini, res, room } = await pair(core);
        await ini.connectSignalling();
        await ini.join(room);
        await ini.signal(room, 'offer', { sdp: 'o', n: 0 });
        await ini.signal(room, 'candidate', { candidate: 'c', n: 1 });
        await ini.signal(room, 'candidate', { candidate: 'c', n: 2 });
        await ini.signal(room, 'candidate', { candidate: 'c', n: 3 });
        assert.equal(codeOf(ini.s?.last()), 'buffer-full');
        const s = await res.connectSignalling();
        await res.join(room);
        assert.deepEqual(s.events(), ['verified', 'signal', 'signal', 'signal']);
        assert.deepEqual(
          s.received.slice(1).map((m) => (m.event === 'signal' ? m.data.n : -1)),
          [0, 1, 2],
        );
      });

      it('a reopened signalling socket must join again and then gets what was kept', async () => {
        const core = await make();
        const { ini, res, room } = await pair(core);
        await ini.connectSignalling();
        await res.connectSignalling();
        await ini.join(room);
        await res.join(room);
        await res.dropSignalling();
        await ini.signal(room, 'offer', { sdp: 'o', n: 1 });
        const s = await res.connectSignalling();
        await res.signal(room, 'answer', { sdp: 'a', n: 2 });
        assert.equal(codeOf(s.last()), 'bad-request', 'not joined on this socket yet');
        await res.join(room);
        assert.deepEqual(s.received.slice(1).map((m) => m.event), ['verified', 'signal']);
        assert.equal((s.received[1] as Msg<'verified'>).peer_joined, true);
        assert.equal(ini.s?.received.filter((m) => m.event === 'peer-joined').length, 1, 'the partner is told nothing on a rejoin');
      });

      it('invalid-room for a room one is not in; bad-request before joining', async () => {
        const core = await make();
        const { ini, room } = await pair(core);
        const outsider = await core.join();
        await outsider.connectSignalling();
        await outsider.join(room);
        assert.equal(codeOf(outsider.s?.last()), 'invalid-room');
        await outsider.signal('no-such-room', 'offer', { sdp: 'o' });
        assert.equal(codeOf(outsider.s?.last()), 'invalid-room');
        await ini.connectSignalling();
        await ini.signal(room, 'offer', { sdp: 'o' });
        assert.equal(codeOf(ini.s?.last()), 'bad-request');
        await ini.leave(room);
        assert.equal(codeOf(ini.s?.last()), 'bad-request');
      });

      it('leave ends the room: the partner is told on both sockets, the leaver is idle; the room is gone', async () => {
        const core = await make();
        const { ini, res, room } = await pair(core);
        await ini.connectSignalling();
        await res.connectSignalling();
        await ini.join(room);
        await res.join(room);
        await ini.leave(room);
        assert.equal(reasonOf(res.m.last()), 'left');
        assert.equal(reasonOf(res.s?.last()), 'left');
        assert.equal(ini.m.last()?.event, 'idle');
        await ini.join(room);
        assert.equal(codeOf(ini.s?.last()), 'invalid-room');
      });

      it('a clean close of a joined signalling socket is a leave; of an unjoined one, nothing', async () => {
        const core = await make();
        const { ini, res, room } = await pair(core);
        await ini.connectSignalling();
        await ini.dropSignalling(true);
        assert.equal(res.m.last()?.event, 'matched', 'not joined: nothing happens');
        await ini.connectSignalling();
        await ini.join(room);
        await ini.dropSignalling(true);
        assert.equal(reasonOf(res.m.last()), 'left');
        assert.equal(ini.m.last()?.event, 'idle');
      });

      it('next ends the room on the partner’s joined signalling socket too', async () => {
        const core = await make();
        const { ini, res, room } = await pair(core);
        await res.connectSignalling();
        await res.join(room);
        await ini.send({ event: 'next' });
        assert.equal(reasonOf(res.s?.last()), 'skip');
        assert.equal(reasonOf(res.m.last()), 'skip');
      });
    });

    describe('signalling, kept', () => {
      it('signals a join hands to a socket that closed under it are all kept for the next join', async () => {
        const core = await make();
        const { ini: a, res: b, room } = await pair(core);
        await a.connectSignalling();
        await a.join(room);
        for (const n of [1, 2, 3]) await a.signal(room, 'candidate', { candidate: `c${n}` });
        const s = await b.connectSignalling();
        s.open = false; // closing, and the store does not know yet
        await b.join(room);
        await core.idle();
        await b.dropSignalling();
        const s2 = await b.connectSignalling();
        await b.join(room);
        const got = s2.received.filter((m): m is Msg<'signal'> => m.event === 'signal').map((m) => (m.data as { candidate?: unknown }).candidate);
        assert.deepEqual(got, ['c1', 'c2', 'c3']);
      });
    });

    describe('moderation', () => {
      it('report without a current or recent partner gets no-partner; a recent one can be reported', async () => {
        const core = await make({ repairCooldownMs: 60_000 });
        const a = await core.join({ addr: 'ra' });
        await a.send({ event: 'report' });
        assert.equal(codeOf(a.m.last()), 'no-partner');
        const b = await core.join({ addr: 'rb' });
        await b.send({ event: 'stop' });
        await core.clock.advance(59_000);
        await a.send({ event: 'report' });
        assert.notEqual(codeOf(a.m.last()), 'no-partner', 'the last partner, within the window');
        await core.clock.advance(2_000);
        await a.send({ event: 'report' });
        assert.equal(codeOf(a.m.last()), 'no-partner', 'too long ago');
      });

      it('a report that is not recorded keeps the two sessions apart and nothing else: not listed, not counted toward a ban', async () => {
        const core = await make({ reportBanThreshold: 1 });
        const bad = await core.join({ addr: 'unrec' });
        const r1 = await core.join({ addr: 'unrec-r1' });
        assert.equal(r1.matched()?.peer, bad.id);
        await r1.send({ event: 'report', reason: 'past the bound', recorded: false });
        assert.equal(bad.m.closedWith, undefined, 'one report would ban at REPORT_BAN_THRESHOLD 1: this one is not counted');
        assert.equal(await core.store.bannedUntil('unrec', core.clock.now()), undefined);
        assert.equal((await core.store.listReports(core.clock.now(), 100)).find((r) => r.addr === 'unrec'), undefined, 'nor kept for the operator');
        await r1.send({ event: 'next' });
        await bad.send({ event: 'next' });
        assert.equal(bad.m.last()?.event, 'waiting', 'the two sessions are kept apart');
        await r1.send({ event: 'stop' });
        const r2 = await core.join({ addr: 'unrec-r1' });
        assert.equal(r2.matched()?.peer, bad.id, 'another session of the reporter address may meet the reported, as after any report');
      });

      it('bans an address after REPORT_BAN_THRESHOLD distinct reporters', async () => {
        const core = await make({ reportBanThreshold: 2 });
        const bad = await core.join({ addr: 'bad' });
        const r1 = await core.join({ addr: 'r1' });
        await r1.send({ event: 'report' });
        await r1.send({ event: 'stop' });
        assert.equal(bad.m.closedWith, undefined);
        await bad.send({ event: 'next' });
        const r2 = await core.join({ addr: 'r2' });
        assert.equal(r2.matched()?.peer, bad.id);
        await bad.connectSignalling();
        await r2.send({ event: 'report' });
        const banned = bad.m.last();
        assert.equal(codeOf(banned), 'banned');
        assert.ok(banned?.event === 'error' && typeof banned.until === 'number' && banned.until > core.clock.now() / 1000);
        assert.equal(bad.m.closedWith, 4003);
        assert.equal(codeOf(bad.s?.last()), 'banned');
        assert.equal(bad.s?.closedWith, 4003);
        assert.equal(reasonOf(r2.m.last()), 'reported');
        const again = await core.store.register({ mode: 'video', interests: [], token: 'z', addr: 'bad' }, core.clock.now());
        assert.equal(again.status, 'banned');
        assert.equal(await core.store.verify(bad.id, bad.token), false);
        const until = await core.store.bannedUntil('bad', core.clock.now());
        assert.ok(until !== undefined && until > core.clock.now());
        assert.deepEqual(await core.store.listBans(core.clock.now()), [{ addr: 'bad', until, strike: 1, reports: 2, reason: '', manual: false }]);
        assert.equal(await core.store.liftBan('bad'), true);
        assert.equal(await core.store.bannedUntil('bad', core.clock.now()), undefined);
        assert.deepEqual(await core.store.listBans(core.clock.now()), []);
      });

      /** a (address `${tag}a`) blocks b (`${tag}b`), its partner, as the edge decides (`addressWide`); b, queued again, is not paired with a. */
      const blocked = async (tag: string, addressWide: boolean) => {
        const core = await make({ blockMs: 10_000 });
        const a = await core.join({ addr: `${tag}a` });
        const b = await core.join({ addr: `${tag}b` });
        assert.equal(b.matched()?.peer, a.id);
        await a.send({ event: 'block', addressWide });
        assert.equal(reasonOf(b.m.last()), 'skip');
        assert.equal(a.m.last()?.event, 'waiting');
        await b.send({ event: 'next' });
        assert.equal(b.m.last()?.event, 'waiting', 'the blocked session is not paired with the blocker');
        await b.send({ event: 'stop' });
        return { core, a };
      };

      it('an address block keeps apart the sessions the two addresses had already, not only those that come later', async () => {
        const core = await make();
        const a1 = await core.join({ addr: 'xa' });
        const b1 = await core.join({ addr: 'xb' });
        assert.equal(b1.matched()?.peer, a1.id);
        const b2 = await core.join({ addr: 'xb', mode: 'text' });
        await b2.send({ event: 'stop' });
        const a2 = await core.join({ addr: 'xa', mode: 'text' });
        assert.equal(a2.m.last()?.event, 'waiting');
        await a1.send({ event: 'block', addressWide: true });
        await b2.send({ event: 'next' });
        assert.equal(b2.m.last()?.event, 'waiting', "a session of the blocked address is not paired with one of the blocker's");
        assert.equal(a2.m.last()?.event, 'waiting');
        const c = await core.join({ addr: 'xc', mode: 'text' });
        assert.ok([a2.id, b2.id].includes(c.matched()?.peer ?? ''), 'each is free to meet anyone else');
      });

      it('a blocker back in the pool is paired at once with someone waiting, as after next', async () => {
        for (const addressWide of [true, false]) {
          const core = await make();
          const a = await core.join({ addr: 'wa' });
          const b = await core.join({ addr: 'wb' });
          assert.equal(b.matched()?.peer, a.id);
          const c = await core.join({ addr: 'wc' });
          assert.equal(c.m.last()?.event, 'waiting', 'the third waits while the two talk');
          await a.send({ event: 'block', addressWide });
          assert.equal(reasonOf(b.m.last()), 'skip');
          assert.equal(a.matched()?.peer, c.id, `addressWide ${addressWide}: the blocker meets the one waiting`);
          assert.equal(c.matched()?.peer, a.id);
        }
      });

      it('block ends the room as next does and keeps the sessions apart for good, their addresses for blockMs', async () => {
        const { core, a } = await blocked('b', true);
        const b2 = await core.join({ addr: 'bb' });
        assert.equal(b2.matched(), undefined, 'nor a new session of its address');
        assert.equal(b2.m.last()?.event, 'waiting');
        await b2.send({ event: 'stop' });
        await core.clock.advance(10_001);
        const b3 = await core.join({ addr: 'bb' });
        assert.equal(b3.matched()?.peer, a.id, 'after blockMs the address may meet the blocker again');
      });

      it('past addressBlocksMax blocks between addresses held, a block keeps only the two sessions apart; once one ends, an address block is kept again', async () => {
        const core = await make({ blockMs: 10_000, addressBlocksMax: 2 });
        const a = await core.join({ addr: 'mk' });
        for (const p of ['m0', 'm1', 'm2']) {
          const b = await core.join({ addr: p });
          assert.equal(b.matched()?.peer, a.id, `${p} meets the blocker`);
          await a.send({ event: 'block', addressWide: true });
          assert.equal(a.m.last()?.event, 'waiting');
          await b.send({ event: 'stop' });
          await core.clock.advance(1);
        }
        for (const p of ['m0', 'm1']) {
          const again = await core.join({ addr: p });
          assert.equal(again.matched(), undefined, `a new session of ${p} is kept from the blocker's address`);
          await again.send({ event: 'stop' });
        }
        const third = await core.join({ addr: 'm2' });
        assert.equal(third.matched()?.peer, a.id, 'the third block found two held: it kept only the sessions apart');
        // The first two end; a block now holds its addresses again.
        await core.clock.advance(10_000);
        await a.send({ event: 'block', addressWide: true });
        await third.send({ event: 'stop' });
        const fourth = await core.join({ addr: 'm2' });
        assert.equal(fourth.matched(), undefined, 'with room again, the block holds the addresses apart');
        await fourth.send({ event: 'stop' });
        const first = await core.join({ addr: 'm0' });
        assert.equal(first.matched()?.peer, a.id, 'the first block has ended');
      });

      it('a block that is not address-wide keeps the two sessions apart for good, and their addresses not at all', async () => {
        const { core, a } = await blocked('n', false);
        const b2 = await core.join({ addr: 'nb' });
        assert.equal(b2.matched()?.peer, a.id, 'a new session of its address is');
      });

      it('a ban by hand ends the sessions of the address at once with 4003, is listed with its reason, and reports keep their reasons', async () => {
        const core = await make({ reportBanThreshold: 5 });
        const bad = await core.join({ addr: 'hand' });
        const r1 = await core.join({ addr: 'h1' });
        await r1.send({ event: 'report', reason: 'spam' });
        const [listed] = (await core.store.listReports(core.clock.now(), 100)).filter((r) => r.addr === 'hand');
        assert.deepEqual(listed && { reporters: listed.reporters, reasons: listed.reasons.map((e) => e.reason), banned: listed.banned }, { reporters: 1, reasons: ['spam'], banned: false });
        const made = await core.store.addBan('hand', 120_000, 'by hand', core.clock.now());
        await core.hub.run(made.effects);
        assert.equal(made.until, core.clock.now() + 120_000);
        assert.equal(codeOf(bad.m.last()), 'banned');
        assert.equal(bad.m.closedWith, 4003);
        assert.deepEqual(await core.store.listBans(core.clock.now()), [{ addr: 'hand', until: made.until, strike: 1, reports: 0, reason: 'by hand', manual: true }]);
        assert.equal((await core.store.listReports(core.clock.now(), 100)).find((r) => r.addr === 'hand')?.banned, true);
        const activity = await core.store.activity(core.clock.now());
        assert.equal(activity.length, 60);
        assert.deepEqual([activity.at(-1)?.pairings, activity.at(-1)?.reports], [1, 1]);
      });

      it('past REGISTER_RATE_PER_MIN of an address in a minute a registration is refused with its wait and makes nothing; registrations and one-trip starts count together; a minute after the first it is allowed again', async () => {
        const core = await make({ registerRatePerMin: 3 });
        const at = (): number => core.clock.now();
        const reg = (addr: string) => core.store.register({ mode: 'video', interests: [], token: `tok-${addr}-${at()}-${Math.random()}`, addr }, at());
        assert.equal((await reg('x')).status, 'ok');
        await core.clock.advance(10_000);
        assert.ok(!('status' in (await core.arrive({ addr: 'x' }))), 'a one-trip start is the second');
        assert.equal((await reg('x')).status, 'ok');
        await core.clock.advance(5_000);
        const stats = await core.store.stats();
        assert.deepEqual(await reg('x'), { status: 'rate-limited', retryMs: 60_000 - 15_000 });
        assert.deepEqual(await core.arrive({ addr: 'x' }), { status: 'rate-limited', retryMs: 60_000 - 15_000 });
        assert.deepEqual(await core.store.stats(), stats, 'refused registrations make no session');
        assert.equal((await reg('y')).status, 'ok', 'another address counts apart');
        await core.clock.advance(60_000 - 15_000 - 1);
        assert.equal((await reg('x')).status, 'rate-limited', 'a millisecond before the minute ends');
        await core.clock.advance(1);
        assert.equal((await reg('x')).status, 'ok', 'a new minute');
      });

      it('an address holds at most maxSessionsPerAddr live sessions, those whose socket dropped included: one more is refused (registration or one-trip start) and makes nothing; a session that ends gives its place back', async () => {
        const core = await make({ maxSessionsPerAddr: 3, graceMs: 5_000 });
        const reg = () => core.store.register({ mode: 'video', interests: [], token: `tok-${Math.random()}`, addr: 'x' }, core.clock.now());
        const a = await core.join({ addr: 'x' });
        const b = await core.join({ addr: 'x' });
        assert.equal((await reg()).status, 'ok', 'one waiting for its socket counts too');
        // Both sockets dropped without a close: in their grace period they hold no socket, and still count.
        await a.drop();
        await b.drop();
        const stats = await core.store.stats();
        assert.deepEqual(await reg(), { status: 'too-many-sessions', retryMs: 5_000 });
        assert.deepEqual(await core.arrive({ addr: 'x' }), { status: 'too-many-sessions', retryMs: 5_000 });
        assert.deepEqual(await core.store.stats(), stats, 'refused: no session');
        assert.equal((await core.store.register({ mode: 'video', interests: [], token: 'tok-y', addr: 'y' }, core.clock.now())).status, 'ok', 'another address counts apart');
        // A grace period that runs out ends its session: a place again.
        await core.clock.advance(5_000);
        assert.equal((await reg()).status, 'ok');
        assert.equal((await reg()).status, 'ok');
        assert.equal((await reg()).status, 'too-many-sessions');
      });

      it('a registration spends the proof of work it carries in the same step: a replay is refused, makes nothing and counts nothing for its address, and a start refused before it spends none', async () => {
        const core = await make({ registerRatePerMin: 2 });
        const now = core.clock.now();
        const proof = (key: string) => ({ proof: { key, untilMs: now + 60_000 } });
        const reg = (addr: string, key: string) => core.store.register({ mode: 'video', interests: [], token: `tok-${addr}-${key}-${Math.random()}`, addr }, now, proof(key));
        assert.equal((await reg('x', 'sig-1')).status, 'ok');
        const stats = await core.store.stats();
        assert.deepEqual(await reg('y', 'sig-1'), { status: 'proof-spent' }, 'a replay, from anywhere');
        assert.deepEqual(await core.arrive({ addr: 'z', admission: proof('sig-1') }), { status: 'proof-spent' }, 'a replay in a one-trip start');
        assert.deepEqual(await core.store.stats(), stats);
        // Replays from y and z counted nothing: each still has its two a minute.
        for (const addr of ['y', 'z']) {
          assert.equal((await reg(addr, `sig-${addr}-1`)).status, 'ok', `${addr}'s first`);
          assert.equal((await reg(addr, `sig-${addr}-2`)).status, 'ok', `${addr}'s second`);
          assert.equal((await reg(addr, `sig-${addr}-3`)).status, 'rate-limited', `${addr}'s third`);
        }
        assert.equal((await reg('x', 'sig-2')).status, 'ok');
        assert.equal((await reg('x', 'sig-3')).status, 'rate-limited', 'refused for its address before its proof is looked at');
        assert.equal((await reg('w', 'sig-3')).status, 'ok', 'so that proof is still good');
      });

      it('a one-trip start counts its socket against maxSockets in the same step: past it the start is refused, and a registered one stays counted until releaseSocket; a start refused for another reason takes no place', async () => {
        const core = await make();
        const sockets = { maxSockets: 2 };
        assert.ok(!('status' in (await core.arrive({ addr: 'x', admission: sockets }))));
        assert.equal(await core.store.admitSocket('x', 3), true, 'counted with the sockets admitSocket counts');
        const stats = await core.store.stats();
        assert.deepEqual(await core.arrive({ addr: 'x', admission: sockets }), { status: 'too-many-sockets' });
        assert.deepEqual(await core.store.stats(), stats, 'refused for its sockets: no session');
        await core.store.releaseSocket('x');
        assert.ok(!('status' in (await core.arrive({ addr: 'x', admission: sockets }))), 'a place given back is taken again');
        assert.equal(await core.store.admitSocket('x', 2), false, 'both places are taken by the one-trip starts');
        assert.ok(!('status' in (await core.arrive({ addr: 'x', admission: { maxSockets: 3 } }))), 'the limit is the caller\'s');
        const ban = await core.store.addBan('b', 60_000, 'test', core.clock.now());
        await core.hub.run(ban.effects);
        assert.equal((await core.arrive({ addr: 'b', admission: { maxSockets: 1 } }) as { status: string }).status, 'banned');
        assert.equal(await core.store.admitSocket('b', 1), true, 'a banned start took no place');
      });

      /** A fresh session from `addr` is paired with `suspect`, which must be waiting. */
      const meet = async (core: Core, suspect: User, addr: string): Promise<User> => {
        const r = await core.join({ addr });
        assert.equal(r.matched()?.peer, suspect.id, `${addr} is paired with the suspect`);
        return r;
      };
      const reportsOf = async (core: Core, addr: string) => (await core.store.listReports(core.clock.now(), 100)).find((r) => r.addr === addr);

      it('the reports listing: the addresses reported last, latest first, at most the limit, reports past REPORT_WINDOW_MS left out', async () => {
        const core = await make({ reportMinRoomMs: 0, reportBanThreshold: 10, reportWindowMs: 60_000 });
        const report = async (target: string, by: string): Promise<void> => {
          const t = await core.join({ addr: target });
          const r = await meet(core, t, by);
          await r.send({ event: 'report' });
          await r.drop(true);
          await t.drop(true);
          await core.clock.advance(1_000);
        };
        await report('t1', 'r1');
        await report('t2', 'r2');
        await report('t3', 'r3');
        await report('t1', 'r4');
        const listed = async (limit: number) => (await core.store.listReports(core.clock.now(), limit)).map((r) => [r.addr, r.reporters]);
        assert.deepEqual(await listed(2), [['t1', 2], ['t3', 1]], 'reported again, t1 comes first');
        assert.deepEqual(await listed(100), [['t1', 2], ['t3', 1], ['t2', 1]]);
        // t1's first report and t2's pass the window; t3's and t1's second do not.
        await core.clock.advance(60_000 - 2_500);
        assert.deepEqual(await listed(100), [['t1', 1], ['t3', 1]]);
      });

      it('a report counts only after REPORT_MIN_ROOM_MS of conversation: the room age at the report, or its length for the last partner', async () => {
        const core = await make({ reportBanThreshold: 1, reportMinRoomMs: 10_000 });
        const bad = await core.join({ addr: 'quick' });
        // Reported right after matching, then as the last partner of a 9 s room: neither counts.
        const r1 = await meet(core, bad, 'q1');
        await r1.send({ event: 'report' });
        await core.clock.advance(9_000);
        await r1.send({ event: 'stop' });
        await core.clock.advance(5_000);
        await r1.send({ event: 'report' });
        assert.equal(bad.m.closedWith, undefined, 'not banned by reports of a short conversation');
        assert.equal(await core.store.bannedUntil('quick', core.clock.now()), undefined);
        const listed = await reportsOf(core, 'quick');
        assert.equal(listed?.reporters, 1, 'the report is kept for review');
        assert.equal(listed.counting, 0, 'but it does not count');
        // The last partner of a room that lasted 10 s: counts, though reported after the room ended.
        await bad.send({ event: 'next' });
        const r2 = await meet(core, bad, 'q2');
        await core.clock.advance(10_000);
        await r2.send({ event: 'stop' });
        await core.clock.advance(30_000);
        await r2.send({ event: 'report' });
        assert.equal(bad.m.closedWith, 4003, 'banned by one counting report (REPORT_BAN_THRESHOLD=1)');
        // While matched: the room's age at the report.
        const bad2 = await core.join({ addr: 'slow' });
        const r3 = await meet(core, bad2, 'q3');
        await core.clock.advance(10_000);
        await r3.send({ event: 'report' });
        assert.equal(bad2.m.closedWith, 4003, 'a report 10 s into the room counts');
      });

      it('a reporter address that was itself reported, or banned lately, counts for nothing; two members reporting each other both count', async () => {
        const core = await make({ reportBanThreshold: 2, reportMinRoomMs: 0, banDurationMs: 60_000 });
        const tainted = await core.join({ addr: 'tainted' });
        const accuser = await meet(core, tainted, 'accuser');
        await accuser.send({ event: 'report' });
        await tainted.send({ event: 'report' });
        assert.equal((await reportsOf(core, 'tainted'))?.counting, 1);
        assert.equal((await reportsOf(core, 'accuser'))?.counting, 1, "the reported's report of its own reporter still counts");
        await accuser.drop(true);
        const victim = await core.join({ addr: 'victim' });
        await tainted.send({ event: 'next' });
        assert.equal(tainted.matched()?.peer, victim.id);
        await tainted.send({ event: 'report' });
        await tainted.send({ event: 'stop' });
        assert.deepEqual(await reportsOf(core, 'victim').then((r) => [r?.reporters, r?.counting]), [1, 0], 'a reported reporter counts for nothing');
        await victim.send({ event: 'next' });
        const clean1 = await meet(core, victim, 'clean1');
        await clean1.send({ event: 'report' });
        await clean1.send({ event: 'stop' });
        assert.equal(victim.m.closedWith, undefined, 'one counting report of two: not banned');
        await victim.send({ event: 'next' });
        const clean2 = await meet(core, victim, 'clean2');
        await clean2.send({ event: 'report' });
        assert.equal(victim.m.closedWith, 4003, 'two good reporters ban');
        // Banned lately: once the ban is over, its reports count for nothing for REPORT_WINDOW_MS.
        await core.clock.advance(61_000);
        const back = await core.join({ addr: 'victim' });
        const other = await meet(core, back, 'other');
        await back.send({ event: 'report' });
        assert.equal((await reportsOf(core, 'other'))?.counting, 0, 'the report of an address banned lately');
        await other.send({ event: 'stop' });
      });

      it('each ban within BAN_STRIKE_WINDOW_MS of the last lasts twice as long, at most BAN_MAX_MS; lifting a ban forgets its strikes', async () => {
        const core = await make({ reportBanThreshold: 1, reportMinRoomMs: 0, banDurationMs: 60_000, banMaxMs: 150_000, banStrikeWindowMs: 600_000 });
        let n = 0;
        const banOnce = async (): Promise<{ strike: number; reports: number; length: number }> => {
          const bad = await core.join({ addr: 'again' });
          const r = await meet(core, bad, `reporter${n++}`);
          await r.send({ event: 'report' });
          assert.equal(bad.m.closedWith, 4003);
          const ban = (await core.store.listBans(core.clock.now())).find((b) => b.addr === 'again');
          assert.ok(ban, 'listed');
          await r.send({ event: 'stop' });
          return { strike: ban.strike, reports: ban.reports, length: ban.until - core.clock.now() };
        };
        assert.deepEqual(await banOnce(), { strike: 1, reports: 1, length: 60_000 });
        await core.clock.advance(60_000);
        assert.equal(await core.store.bannedUntil('again', core.clock.now()), undefined, 'the first ban is over');
        assert.deepEqual(await banOnce(), { strike: 2, reports: 1, length: 120_000 });
        await core.clock.advance(120_000);
        assert.deepEqual(await banOnce(), { strike: 3, reports: 1, length: 150_000 });
        await core.clock.advance(150_000 + 600_001);
        assert.deepEqual(await banOnce(), { strike: 1, reports: 1, length: 60_000 }, 'strikes are forgotten after the window');
        await core.clock.advance(60_000);
        assert.deepEqual(await banOnce(), { strike: 2, reports: 1, length: 120_000 });
        assert.equal(await core.store.liftBan('again'), true);
        assert.deepEqual(await banOnce(), { strike: 1, reports: 1, length: 60_000 }, 'a lifted ban leaves no strike');
      });

      it('a ban from reports never shortens a ban in force: after a ban by hand, reports that reach the threshold leave its end, reason and strike as they were', async () => {
        const core = await make({ reportBanThreshold: 2, reportMinRoomMs: 0, banDurationMs: 60_000, banStrikeWindowMs: 600_000 });
        // One reported by its first partner, then banned by hand for lengthMs while in a room with its second; then the second reports it.
        const reportedAfterBan = async (addr: string, lengthMs: number, reason: string) => {
          const bad = await core.join({ addr });
          const r1 = await meet(core, bad, `${addr}1`);
          await r1.send({ event: 'report' });
          await r1.send({ event: 'stop' });
          await bad.send({ event: 'next' });
          const r2 = await meet(core, bad, `${addr}2`);
          const made = await core.store.addBan(addr, lengthMs, reason, core.clock.now());
          await core.hub.run(made.effects);
          assert.equal(bad.m.closedWith, 4003);
          // r2's last partner is the banned address: its report is the second counting one.
          await r2.send({ event: 'report' });
          return { until: made.until, bans: (await core.store.listBans(core.clock.now())).filter((b) => b.addr === addr) };
        };
        const long = await reportedAfterBan('long', 10 * 86_400_000, 'by hand');
        assert.equal(await core.store.bannedUntil('long', core.clock.now()), long.until, 'the ban by hand still ends when it did');
        assert.deepEqual(long.bans, [{ addr: 'long', until: long.until, strike: 1, reports: 0, reason: 'by hand', manual: true }]);
        // A ban from reports that would end later than the one in force does replace it.
        const brief = await reportedAfterBan('brief', 1_000, 'short by hand');
        assert.deepEqual(
          brief.bans,
          [{ addr: 'brief', until: core.clock.now() + 120_000, strike: 2, reports: 2, reason: '', manual: false }],
          'the second strike, twice BAN_DURATION_MS, from now',
        );
      });

      it('past banStrikesMax strikes held, those of bans over go, the first to end first; those of bans in force are kept', async () => {
        const core = await make({ banStrikesMax: 2, banStrikeWindowMs: 600_000 });
        const strikeOf = async (addr: string, lengthMs: number): Promise<number | undefined> => {
          await core.store.addBan(addr, lengthMs, '', core.clock.now());
          return (await core.store.listBans(core.clock.now())).find((b) => b.addr === addr)?.strike;
        };
        assert.equal(await strikeOf('early', 10_000), 1);
        assert.equal(await strikeOf('late', 20_000), 1);
        await core.clock.advance(25_000);
        assert.equal(await strikeOf('third', 60_000), 1, 'a third strike: the two bans before it are over');
        assert.equal(await strikeOf('late', 10_000), 2, 'the later-ending strike was kept');
        assert.equal(await strikeOf('early', 10_000), 1, 'the first to end was forgotten');
        // Three bans in force now (third, late, early): none of their strikes goes, even past the cap.
        assert.equal(await strikeOf('fourth', 10_000), 1);
        await core.clock.advance(1_000);
        for (const [addr, strike] of [['third', 2], ['late', 3], ['early', 2]] as const) assert.equal(await strikeOf(addr, 100_000), strike, `${addr}: its ban was in force, its strike kept`);
        // All four bans over: at the next ban three of the five held go, the first to end first: fourth, then early and late (a tie with third, by name).
        await core.clock.advance(100_000);
        assert.equal(await strikeOf('fifth', 10_000), 1);
        assert.equal(await strikeOf('third', 10_000), 3, 'ends last of those over (a tie with early and late, by name): kept');
        assert.equal(await strikeOf('fourth', 10_000), 1, 'ended first: forgotten');
        assert.equal(await strikeOf('late', 10_000), 1, 'ends with third, but its name comes first: forgotten');
      });

      it('a report says whether it had someone to report: not while waiting alone, yes in a room and just after it', async () => {
        const core = await make();
        const a = await core.join({ addr: 'lone' });
        const alone = await core.store.report(a.id, a.m.id, undefined, core.clock.now(), true);
        assert.equal(alone.partner, false);
        assert.ok(alone.effects.close.length === 0 && alone.effects.paired.length === 0, 'nothing done but the no-partner');
        const b = await core.join({ addr: 'other' });
        assert.ok(b.matched());
        assert.equal((await core.store.report(a.id, a.m.id, undefined, core.clock.now(), false)).partner, true, 'in a room, even unrecorded');
        await b.send({ event: 'stop' });
        assert.equal((await core.store.report(a.id, a.m.id, undefined, core.clock.now(), true)).partner, true, 'the partner just left');
      });

      it('one reporter with many sessions counts once', async () => {
        const core = await make({ reportBanThreshold: 2 });
        const bad = await core.join({ addr: 'bad2' });
        for (let i = 0; i < 3; i++) {
          const r = await core.join({ addr: 'same' });
          assert.equal(r.matched()?.peer, bad.id);
          await r.send({ event: 'report' });
          await r.send({ event: 'stop' });
          await bad.send({ event: 'next' });
        }
        assert.equal(bad.m.closedWith, undefined);
        assert.equal(await core.store.bannedUntil('bad2', core.clock.now()), undefined);
      });
    });
  });
}
