// Messages waiting behind the store, in all (MESSAGE_BYTES_WAITING_TOTAL):
// past the total the socket that sent is read no more until half is left.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WaitingMessages, type Pausable } from '../../src/http/waiting.js';

/** A socket that records whether it is read. */
class Socket implements Pausable {
  reading = true;
  pause(): void {
    this.reading = false;
  }
  resume(): void {
    this.reading = true;
  }
}

describe('WaitingMessages', () => {
  it('pauses the socket whose message passes the total, and resumes every paused one once half is left', () => {
    const w = new WaitingMessages(100);
    const [a, b] = [new Socket(), new Socket()];
    assert.equal(w.add(60, a), false);
    assert.equal(w.add(30, b), false);
    assert.equal(w.add(20, a), true, 'past the total: a is paused');
    assert.equal(w.add(20, b), true, 'and b with its next');
    assert.deepEqual([a.reading, b.reading], [false, false]);
    w.done(60);
    assert.deepEqual([a.reading, b.reading], [false, false], '70 left: more than half');
    w.done(30);
    assert.deepEqual([a.reading, b.reading], [true, true], '40 left: both are read again');
    assert.deepEqual(w.state, { bytes: 40, paused: 0 });
  });

  it('pauses a listed socket again when something else resumed it, and never resumes one that closed', () => {
    const w = new WaitingMessages(100);
    const [a, gone] = [new Socket(), new Socket()];
    w.add(150, a);
    w.add(10, gone);
    a.resume();
    w.add(10, a);
    assert.equal(a.reading, false, 'paused again');
    w.forget(gone);
    w.done(170);
    assert.equal(a.reading, true);
    assert.equal(gone.reading, false, 'a closed socket is left alone');
  });
});
