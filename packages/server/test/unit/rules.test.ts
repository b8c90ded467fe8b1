import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { accepts, choosePartner, commonInterests, type Candidate } from '../../src/core/rules.js';

const policy = { interestTimeoutMs: 5_000, fairWaitMs: 10_000 };
const c = (id: string, extra: Partial<Candidate> = {}): Candidate => ({ id, interests: [], lang: undefined, enteredAt: 0, waitingSince: 0, ...extra });

describe('rules', () => {
  it('a session with interests accepts only sharers until its timeout', () => {
    const a = c('a', { interests: ['x'] });
    assert.equal(accepts(a, c('b'), 4_999, policy), false);
    assert.equal(accepts(a, c('b', { interests: ['x'] }), 0, policy), true);
    assert.equal(accepts(a, c('b'), 5_000, policy), true);
  });

  it('a session with lang accepts only the same lang until its timeout', () => {
    const a = c('a', { lang: 'en' });
    assert.equal(accepts(a, c('b', { lang: 'fr' }), 0, policy), false);
    assert.equal(accepts(a, c('b'), 0, policy), false);
    assert.equal(accepts(a, c('b', { lang: 'en' }), 0, policy), true);
  });

  it('commonInterests keeps the seeker order', () => {
    assert.deepEqual(commonInterests(c('a', { interests: ['x', 'y', 'z'] }), c('b', { interests: ['z', 'x'] })), ['x', 'z']);
  });

  it('choosePartner: cooldown only as a last resort, fairness before random', () => {
    const seeker = c('s');
    const old = c('old', { waitingSince: 0 });
    const fresh = c('fresh', { waitingSince: 9_000 });
    assert.equal(choosePartner(seeker, [old, fresh], (x) => x.id === 'fresh', 1_000, policy, () => 0.99)?.id, 'old');
    assert.equal(choosePartner(seeker, [old], (x) => x.id === 'old', 1_000, policy)?.id, 'old');
    assert.equal(choosePartner(seeker, [old, fresh], () => false, 10_001, policy, () => 0.99)?.id, 'old');
    assert.equal(choosePartner(seeker, [old, fresh], () => false, 5_000, policy, () => 0.99)?.id, 'fresh');
    assert.equal(choosePartner(seeker, [], () => false, 0, policy), undefined);
  });
});
