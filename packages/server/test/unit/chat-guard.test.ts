// The chat guard's fold (what of a message is compared for repeats) and what
// it costs: Unicode normalization sees a bounded prefix with combining marks
// cut short, and only messages within the pace are normalized at all.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChatGuard, FOLD_UNITS, fold } from '../../src/matching/chat-guard.js';
import { WindowLimiter } from '../../src/store/window-limiter.js';

const SETTINGS = { chatRatePerMin: 3, chatRepeatMax: 2, chatRepeatWindowMs: 60_000, chatRepeatMinChars: 12, chatMaskWords: [] };
const guard = (): ChatGuard => new ChatGuard(SETTINGS, (_name, points, durationSec) => new WindowLimiter(points, durationSec, Date.now, 1_000));

/** 2,000 combining marks in falling canonical order: normalization sorts them, in time that grows with the square of the run. */
const MARKS = '\u0345'.repeat(1_000) + '\u0316'.repeat(1_000);

/** Records the length of every string normalized while `run` runs. */
async function normalized(run: () => Promise<unknown>): Promise<number[]> {
  const lengths: number[] = [];
  const original = String.prototype.normalize;
  String.prototype.normalize = function (this: string, form?: string): string {
    lengths.push(this.length);
    return original.call(this, form);
  };
  try {
    await run();
  } finally {
    String.prototype.normalize = original;
  }
  return lengths;
}

describe('chat guard: fold', () => {
  it('case, spacing, punctuation and compatibility forms do not make a message new', () => {
    assert.equal(fold('Visit  example.com   for FREE!!'), fold('visit example com for free'));
    assert.equal(fold('ＦＲＥＥ stuff'), fold('free stuff'));
  });

  it(`compares the first ${FOLD_UNITS} UTF-16 units: messages that differ only later fold alike`, () => {
    const head = 'buy now '.repeat(40);
    assert.ok(head.length > FOLD_UNITS);
    assert.equal(fold(`${head}one`), fold(`${head}two`));
    assert.notEqual(fold(`one ${head}`), fold(`two ${head}`));
  });

  it('a run of combining marks is cut to four before normalization: 2,000 of them fold as four', () => {
    assert.equal(fold(`a${MARKS}b`), fold(`a${'\u0345'.repeat(4)}b`));
    assert.equal(fold(`cafe\u0301 ok`), fold('café ok'), 'a mark or two are kept, and composed');
  });
});

describe('chat guard: what normalization sees', () => {
  it(`a message of 2,000 combining marks is normalized as at most ${FOLD_UNITS} units, and is relayed whole`, async () => {
    const g = guard();
    let verdict: Awaited<ReturnType<ChatGuard['check']>> | undefined;
    const lengths = await normalized(async () => (verdict = await g.check('addr', 'session', MARKS)));
    assert.ok(lengths.length > 0 && lengths.every((n) => n <= FOLD_UNITS), `normalized lengths ${lengths.join(', ')}`);
    assert.deepEqual(verdict, { ok: true, message: MARKS });
  });

  it('a message refused by the pace is not normalized at all', async () => {
    const g = guard();
    for (let i = 0; i < SETTINGS.chatRatePerMin; i++) assert.equal((await g.check('addr', 'session', `line ${i}`)).ok, true);
    const lengths = await normalized(async () => assert.equal((await g.check('addr', 'session', MARKS)).ok, false));
    assert.deepEqual(lengths, []);
  });
});
