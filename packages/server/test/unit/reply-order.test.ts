// The order between a transition's reply and the inbox entries (store/redis/order.ts),
// with the reader's progress played by hand.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LONG_WAIT_MS, ReplyOrder, compareIds } from '../../src/store/redis/order.js';

/** An inbox reader: carries out entries in order, telling the order after each. */
class Reader {
  carried = '';
  readonly order = new ReplyOrder(() => this.carried, 200);
  readonly log: string[] = [];
  async carry(id: string, stamp: number): Promise<void> {
    await this.order.ready(id, stamp);
    this.log.push(id);
    this.carried = id;
    this.order.progressed();
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('reply order', () => {
  it('compares stream ids by time, then sequence, with none before all', () => {
    assert.ok(compareIds('1-2', '1-10') < 0);
    assert.ok(compareIds('2-0', '1-10') > 0);
    assert.equal(compareIds('5-5', '5-5'), 0);
    assert.ok(compareIds('', '0-0') < 0);
    assert.equal(compareIds('', ''), 0);
  });

  it('a reply placed after an entry waits for it; an entry read while the call was out waits for the reply', async () => {
    const r = new Reader();
    const seq = r.order.send();
    // The inbox holds 1-0 and 3-0, read while the call was out; the script ran between them (after 1-0).
    const stamp = r.order.stamp();
    const batch = (async () => {
      await r.carry('1-0', stamp);
      await r.carry('3-0', stamp);
    })();
    await tick();
    assert.deepEqual(r.log, [], 'entries wait while a call sent before they were read is unanswered');
    // Carrying a reply out takes a while (a hub writing to sockets): 3-0 must wait for it to finish.
    const ran = r.order.answered(seq, {
      after: '1-0',
      run: async () => {
        await tick();
        r.log.push('reply');
      },
    });
    await ran;
    await batch;
    assert.deepEqual(r.log, ['1-0', 'reply', '3-0']);
  });

  it('an entry read before a call was sent does not wait for it, and a reply after it comes next', async () => {
    const r = new Reader();
    const stamp = r.order.stamp();
    const seq = r.order.send();
    await r.carry('1-0', stamp);
    const ran = r.order.answered(seq, { after: '1-0', run: async () => void r.log.push('reply') });
    await ran;
    assert.deepEqual(r.log, ['1-0', 'reply']);
  });

  it('a reply with nothing before it goes at once; a call without messages for here holds nothing once answered', async () => {
    const r = new Reader();
    const a = r.order.send();
    const b = r.order.send();
    const stamp = r.order.stamp();
    await r.order.answered(a, { after: '', run: async () => void r.log.push('a') });
    const entry = r.carry('9-0', stamp);
    await tick();
    assert.deepEqual(r.log, ['a']);
    assert.equal(r.order.answered(b), undefined);
    await entry;
    assert.deepEqual(r.log, ['a', '9-0']);
    assert.equal(r.order.holding, 0);
  });

  it('an entry that names the last call before it waits for that call alone, not for those sent later', async () => {
    const r = new Reader();
    const first = r.order.send();
    const later = r.order.send();
    const entry = r.carry('4-0', first);
    await tick();
    assert.deepEqual(r.log, []);
    r.order.answered(first);
    await entry;
    assert.deepEqual(r.log, ['4-0'], 'carried out while the later call is still out');
    await r.order.answered(later, { after: '4-0', run: async () => void r.log.push('later') });
    assert.deepEqual(r.log, ['4-0', 'later']);
  });

  it('a reply placed after an entry that never comes goes once the reader waits at a later one', async () => {
    const r = new Reader();
    const seq = r.order.send();
    const stamp = r.order.stamp();
    // The script ran after 2-0, which was lost (a Redis restart); the reader gets 5-0, read while the call was out.
    const later = r.carry('5-0', stamp);
    const ran = r.order.answered(seq, { after: '2-0', run: async () => void r.log.push('reply') });
    const t0 = performance.now();
    await ran;
    await later;
    assert.deepEqual(r.log, ['reply', '5-0']);
    assert.ok(performance.now() - t0 < 150, 'no wait for the longest wait: the reader is past 2-0');
  });

  it('a reply waiting for an entry of a lost inbox goes at once when the loss is known', async () => {
    const r = new Reader();
    const ran = r.order.answered(r.order.send(), { after: '3-0', run: async () => void r.log.push('reply') });
    const t0 = performance.now();
    r.order.lost(() => true);
    await ran;
    assert.ok(performance.now() - t0 < 150);
    assert.deepEqual(r.log, ['reply']);
  });

  it('a reply that ran after an entry of the new inbox still waits for it when the loss becomes known', async () => {
    const r = new Reader();
    // Redis came back: the new inbox starts at 9-0. One reply ran before the loss (after 3-0, lost),
    // the next after the new inbox's 9-0, which the reader has not carried out yet.
    const old = r.order.answered(r.order.send(), { after: '3-0', run: async () => void r.log.push('old reply') });
    const fresh = r.order.answered(r.order.send(), { after: '9-0', run: async () => void r.log.push('new reply') });
    const gone = (id: string): boolean => compareIds(id, '9-0') < 0;
    r.order.lost(gone);
    await old;
    await tick();
    assert.deepEqual(r.log, ['old reply'], 'the reply after 9-0 waits for the reader');
    await r.carry('9-0', r.order.stamp());
    await fresh;
    assert.deepEqual(r.log, ['old reply', '9-0', 'new reply']);
  });

  it('gives up on a call never answered, and on an entry the reader never reaches, after the longest wait', async () => {
    const r = new Reader();
    const lost = r.order.send();
    const t0 = performance.now();
    await r.carry('1-0', lost);
    const waited = performance.now() - t0;
    assert.ok(waited >= 150, `the entry waited for the unanswered call (${waited.toFixed(0)} ms)`);
    const ran = r.order.answered(r.order.send(), { after: '7-0', run: async () => void r.log.push('reply') });
    await ran;
    assert.deepEqual(r.log, ['1-0', 'reply'], 'the reply went although 7-0 never came');
  });

  it('an entry that waits for a reply on its way is not a long wait; one that waits longer is, told once', async () => {
    const r = new Reader();
    let long = 0;
    // Answered in the next turn: no long wait (the inbox is trimmed after the batch, not for this entry).
    let seq = r.order.send();
    const short = r.order.ready('1-0', seq, () => long++);
    setImmediate(() => r.order.answered(seq));
    await short;
    assert.equal(long, 0);
    // Answered ten times LONG_WAIT_MS later: told once, while it still waits.
    seq = r.order.send();
    const t0 = performance.now();
    let toldAfter = Number.NaN;
    const slow = r.order.ready('2-0', seq, () => {
      long++;
      toldAfter = performance.now() - t0;
    });
    setTimeout(() => r.order.answered(seq), 10 * LONG_WAIT_MS);
    // Other calls answered meanwhile wake the entry without ending its wait.
    for (let i = 0; i < 3; i++) r.order.answered(r.order.send());
    await slow;
    assert.equal(long, 1);
    assert.ok(toldAfter >= LONG_WAIT_MS, `told after ${toldAfter.toFixed(1)} ms`);
  });
});
