// The lifecycle and pairing rules of the contract on the memory store, with a fake clock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Core } from './harness.js';

describe('pairing', () => {
  it('pairs the second arrival at once, with exactly one initiator and a shared room', async () => {
    const core = new Core();
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
  });

  it('keeps modes apart', async () => {
    const core = new Core();
    const v = await core.join({ mode: 'video' });
    const t = await core.join({ mode: 'text' });
    assert.equal(v.matched(), undefined);
    assert.equal(t.matched(), undefined);
    const t2 = await core.join({ mode: 'text' });
    assert.equal(t2.matched()?.peer, t.id);
    assert.equal(t2.matched()?.mode, 'text');
  });

  it('pairs on shared interests first and falls back to anyone exactly at the timeout', async () => {
    const core = new Core({ interestTimeoutMs: 5_000 });
    const a = await core.join({ interests: ['music'] });
    const b = await core.join();
    assert.equal(a.matched(), undefined, 'a accepts only someone sharing an interest');
    await core.clock.advance(4_999);
    assert.equal(a.matched(), undefined, 'not before the timeout');
    await core.clock.advance(1);
    assert.equal(a.matched()?.peer, b.id, 'paired the moment the timeout runs out');
    assert.deepEqual(a.matched()?.common_interests, []);
  });

  it('prefers a sharer and reports the common interests case-insensitively', async () => {
    const core = new Core();
    const a = await core.join({ interests: ['music', 'go'] });
    const b = await core.join({ interests: ['go'] });
    assert.deepEqual(a.matched()?.common_interests, ['go']);
    assert.deepEqual(b.matched()?.common_interests, ['go']);
  });

  it('narrows by lang until the timeout', async () => {
    const core = new Core({ interestTimeoutMs: 1_000 });
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

  it('does not re-pair two sessions within the cooldown while anyone else is eligible', async () => {
    for (let run = 0; run < 20; run++) {
      const core = new Core({ interestTimeoutMs: 600_000 });
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
    const core = new Core();
    const a = await core.join();
    const b = await core.join();
    await a.send({ event: 'next' });
    await b.send({ event: 'next' });
    assert.equal(b.matched()?.peer, a.id);
  });

  it('pairs a session waiting longer than FAIR_WAIT_MS before newer ones', async () => {
    for (let run = 0; run < 20; run++) {
      const core = new Core({ interestTimeoutMs: 600_000, fairWaitMs: 10_000 });
      const old = await core.join({ interests: ['x'] });
      await core.clock.advance(10_001);
      const newer = await core.join({ interests: ['y'] });
      const seeker = await core.join({ interests: ['x', 'y'] });
      assert.equal(seeker.matched()?.peer, old.id);
      assert.equal(newer.matched(), undefined);
    }
  });

  it('never pairs a reporter with the reported again', async () => {
    const core = new Core();
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

  it('bans an address after REPORT_BAN_THRESHOLD distinct reporters', async () => {
    const core = new Core({ reportBanThreshold: 2 });
    const bad = await core.join({ addr: 'bad' });
    const r1 = await core.join({ addr: 'r1' });
    await r1.send({ event: 'report' });
    await r1.send({ event: 'stop' });
    assert.equal(bad.m.closedWith, undefined);
    await bad.send({ event: 'next' });
    const r2 = await core.join({ addr: 'r2' });
    assert.equal(r2.matched()?.peer, bad.id);
    await r2.send({ event: 'report' });
    const banned = bad.m.last();
    assert.equal(banned?.event, 'error');
    assert.equal(banned?.event === 'error' && banned.code, 'banned');
    assert.equal(bad.m.closedWith, 4003);
    assert.equal(r2.m.last()?.event, 'peer-disconnected');
    const again = await core.store.register({ mode: 'video', interests: [], token: 'z', addr: 'bad' }, core.clock.now());
    assert.equal(again.status, 'banned');
  });
});

describe('lifecycle', () => {
  it('ends the session when the matching grace period runs out, telling the partner timeout', async () => {
    const core = new Core({ graceMs: 15_000 });
    const a = await core.join();
    const b = await core.join();
    await a.drop();
    await core.clock.advance(14_999);
    assert.equal(b.m.last()?.event, 'matched', 'the partner is told nothing during the grace period');
    await core.clock.advance(1);
    const last = b.m.last();
    assert.equal(last?.event === 'peer-disconnected' && last.reason, 'timeout');
    assert.equal(await core.store.verify(a.id, a.token), false, 'the token opens nothing more');
  });

  it('resumes within the grace period: matched resumed, then the chat kept meanwhile, in order', async () => {
    const core = new Core();
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
    const core = new Core();
    const a = await core.join();
    const b = await core.join();
    await a.drop();
    await b.send({ event: 'next' });
    const m = await a.connect();
    assert.deepEqual(m.events(), ['peer-disconnected', 'idle']);
  });

  it('a clean close leaves at once: the partner gets left', async () => {
    const core = new Core();
    const a = await core.join();
    const b = await core.join();
    await a.drop(true);
    const last = b.m.last();
    assert.equal(last?.event === 'peer-disconnected' && last.reason, 'left');
    assert.equal(await core.store.verify(a.id, a.token), false);
  });

  it('expires a registration whose matching socket never opens', async () => {
    const core = new Core({ registrationTtlMs: 30_000 });
    const r = await core.store.register({ mode: 'video', interests: [], token: 'tok', addr: 'x' }, core.clock.now());
    assert.equal(r.status, 'ok');
    if (r.status !== 'ok') return;
    await core.hub.run(r.effects);
    await core.clock.advance(29_999);
    assert.equal(await core.store.verify(r.id, 'tok'), true);
    await core.clock.advance(1);
    assert.equal(await core.store.verify(r.id, 'tok'), false);
  });

  it('ends the room when a joined signalling socket’s grace runs out', async () => {
    const core = new Core({ graceMs: 1_000 });
    const a = await core.join();
    const b = await core.join();
    const room = a.matched()?.room_code ?? '';
    await a.connectSignalling();
    await a.join(room);
    await a.dropSignalling();
    await core.clock.advance(1_000);
    const last = b.m.last();
    assert.equal(last?.event === 'peer-disconnected' && last.reason, 'timeout');
    assert.equal(a.m.last()?.event, 'idle');
  });

  it('keeps signals for a partner that has not joined and delivers them in order on join', async () => {
    const core = new Core({ signalBuffer: 3 });
    const a = await core.join();
    const b = await core.join();
    const [ini, res] = a.matched()?.initiator ? [a, b] : [b, a];
    const room = a.matched()?.room_code ?? '';
    await ini.connectSignalling();
    await ini.join(room);
    await ini.signal(room, 'offer', { n: 0 });
    await ini.signal(room, 'candidate', { n: 1 });
    await ini.signal(room, 'candidate', { n: 2 });
    await ini.signal(room, 'candidate', { n: 3 });
    const full = ini.s?.last();
    assert.equal(full?.event === 'error' && full.code, 'buffer-full');
    const s = await res.connectSignalling();
    await res.join(room);
    assert.deepEqual(s.events(), ['verified', 'signal', 'signal', 'signal']);
    assert.deepEqual(s.received.slice(1).map((m) => (m.event === 'signal' ? m.data.n : -1)), [0, 1, 2]);
  });
});
