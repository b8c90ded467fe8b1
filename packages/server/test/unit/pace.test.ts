import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PaceBook } from '../../src/http/pace.js';

/** How many of `n` frames at time `now` the bucket lets through. */
const takeMany = (book: PaceBook, pace: ReturnType<PaceBook['open']>, n: number, now: number): number => {
  let passed = 0;
  for (let i = 0; i < n; i++) if (book.take(pace, now)) passed++;
  return passed;
};

describe('PaceBook', () => {
  it('lets a burst through at once, then the sustained rate', () => {
    const book = new PaceBook(100, 200);
    const pace = book.open('s', 0);
    assert.equal(takeMany(book, pace, 300, 0), 200, 'the burst');
    assert.equal(takeMany(book, pace, 300, 500), 50, 'half a second later: 50 more at 100/s');
    assert.equal(takeMany(book, pace, 1_000, 10_000), 200, 'never more than the burst, however long it waited');
  });

  it('a socket reopened for the same key carries on with the same bucket', () => {
    const book = new PaceBook(100, 200);
    const first = book.open('s', 0);
    assert.equal(takeMany(book, first, 200, 0), 200);
    book.close('s', first, 10);
    const second = book.open('s', 20);
    assert.equal(second, first);
    assert.equal(takeMany(book, second, 100, 20), 2, 'only what 20 ms refilled');
  });

  it('forgets a key without sockets once its bucket would be full again, and only then', () => {
    const book = new PaceBook(100, 200); // full again 2 s after the last frame
    const a = book.open('a', 0);
    takeMany(book, a, 200, 0);
    book.close('a', a, 0);
    book.open('b', 1_999);
    assert.equal(book.size, 2, 'a is kept while its bucket refills');
    const b = book.open('b', 2_000);
    assert.equal(book.size, 1, 'a is gone: a fresh entry would be the same');
    book.close('b', b, 2_000);
    book.close('b', b, 2_000);
    book.open('c', 4_000);
    assert.equal(book.size, 1, 'b went too; only c is left');
  });

  it('forgets a key that took one token within a second, however large its bucket (keys made up per request hold little)', () => {
    const book = new PaceBook(1, 60); // an empty bucket takes a minute to refill
    for (let i = 0; i < 1_000; i++) assert.ok(book.takeOnce(`a${i}`, 0));
    assert.equal(book.size, 1_000);
    book.takeOnce('probe', 999);
    assert.equal(book.size, 1_001, 'kept while their bucket refills');
    book.takeOnce('probe', 1_000);
    assert.equal(book.size, 1, 'a second later only the probe is left');
  });

  it('a key that refills slowly keeps none of the quick ones behind it, and is itself kept until full', () => {
    const book = new PaceBook(1, 60);
    for (let i = 0; i < 60; i++) assert.ok(book.takeOnce('slow', 0));
    assert.equal(book.takeOnce('slow', 0), false, 'its bucket is empty');
    for (let i = 0; i < 1_000; i++) book.takeOnce(`quick${i}`, 10);
    book.takeOnce('probe', 1_100);
    assert.equal(book.size, 2, 'the quick ones went after a second; slow and the probe are left');
    assert.equal(book.waitMs('slow', 1_100), 0, 'a token refilled after a second');
    assert.equal(book.takeOnce('slow', 1_100), true);
    assert.ok(book.waitMs('slow', 1_100) > 0, 'and it is spent: the key was not forgotten');
    book.takeOnce('probe', 60_900);
    assert.equal(book.size, 2, 'still kept 59.8 s after its last token: its bucket is not full yet');
    book.takeOnce('probe', 61_200);
    assert.equal(book.size, 1, 'gone once full');
  });

  it('keeps a key whose flood window is still open, though its bucket is full', () => {
    const book = new PaceBook(1_000, 1_000);
    const pace = book.open('s', 0);
    book.count(pace, 0);
    book.close('s', pace, 0);
    book.open('probe', 999);
    assert.equal(book.size, 2);
    book.open('probe', 1_000);
    assert.equal(book.size, 1);
  });

  it('says how long until a key has a token again', () => {
    const book = new PaceBook(2, 2);
    assert.equal(book.waitMs('new', 0), 0, 'a key never seen has a full bucket');
    book.takeOnce('k', 0);
    book.takeOnce('k', 0);
    assert.equal(book.waitMs('k', 0), 500);
    assert.equal(book.waitMs('k', 400), 100);
  });

  it('keeps a key while any of its sockets is open', () => {
    const book = new PaceBook(100, 200);
    const one = book.open('s', 0);
    const two = book.open('s', 0);
    book.close('s', one, 0);
    book.open('other', 60_000);
    assert.equal(book.size, 2);
    book.close('s', two, 60_000);
    book.open('other', 62_000);
    assert.equal(book.size, 1);
  });

  it('sweep lets go of the keys gone quiet with no socket opening or closing after them (a quiet process)', () => {
    const book = new PaceBook(100, 200); // full again 2 s after the last frame
    for (const key of ['a', 'b', 'c']) {
      const pace = book.open(key, 0);
      takeMany(book, pace, 200, 0);
      book.close(key, pace, 0);
    }
    book.sweep(1_000);
    assert.equal(book.size, 3, 'kept while their buckets refill');
    book.sweep(2_000);
    assert.equal(book.size, 0);
  });

  it('counts frames per one-second window for the flood rule', () => {
    const book = new PaceBook(100, 200);
    const pace = book.open('s', 0);
    for (let i = 1; i <= 300; i++) assert.equal(book.count(pace, 999), i);
    assert.equal(book.count(pace, 1_000), 1, 'a new window');
  });
});
