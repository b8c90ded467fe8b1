import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { regionOf, wantedPlace } from '../../src/geo/regions.js';
import {
  accepts,
  banLengthMs,
  choosePartner,
  commonInterests,
  countingReports,
  inGoodStanding,
  keptReport,
  mutuallyAccept,
  narrows,
  nextStrike,
  reportCounts,
  sharedArea,
  talkedMs,
  type Candidate,
  type ReportEntry,
  type ReportPolicy,
} from '../../src/core/rules.js';

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

  it('a session that wants a place accepts only sessions in it (its country, or its region) until its timeout (issue 17)', () => {
    const paris = { country: 'FR', area: 'europe' };
    const near = c('a', { ...paris, wants: 'FR' });
    assert.equal(accepts(near, c('b', paris), 0, policy), true);
    assert.equal(accepts(near, c('b', { country: 'DE', area: 'europe' }), 0, policy), false);
    assert.equal(accepts(near, c('b'), 0, policy), false, 'an unknown place is in no country');
    assert.equal(accepts(near, c('b'), 5_000, policy), true);
    const europe = c('a', { wants: 'europe' });
    assert.equal(accepts(europe, c('b', { country: 'DE', area: 'europe' }), 0, policy), true);
    assert.equal(accepts(europe, c('b', { country: 'US', area: 'north-america' }), 0, policy), false);
    // Mutual: one who wants nothing is accepted by, and accepts, one whose place it is in.
    assert.equal(mutuallyAccept(near, c('b', paris), 0, policy), true);
    assert.equal(mutuallyAccept(c('b', { country: 'US', area: 'north-america' }), near, 0, policy), false);
    assert.equal(narrows(near), true);
    assert.equal(narrows(c('b', paris)), false, 'a place alone narrows nothing');
  });

  it('near is the own country, or anywhere when that is unknown; a region is itself; the shared area is never finer than a region', () => {
    const fr = { country: 'FR', area: regionOf('FR') };
    assert.equal(wantedPlace('near', fr), 'FR');
    assert.equal(wantedPlace('near', undefined), undefined);
    assert.equal(wantedPlace('anywhere', fr), undefined);
    assert.equal(wantedPlace(undefined, fr), undefined);
    assert.equal(wantedPlace('asia', undefined), 'asia');
    assert.equal(regionOf('FR'), 'europe');
    assert.equal(regionOf('BR'), 'south-america');
    assert.equal(regionOf('AQ'), undefined);
    assert.equal(sharedArea(c('a', fr), c('b', { country: 'DE', area: 'europe' })), 'europe');
    assert.equal(sharedArea(c('a', fr), c('b', { country: 'US', area: 'north-america' })), undefined);
    assert.equal(sharedArea(c('a'), c('b')), undefined, 'two unknown places share nothing');
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

  describe('reports and bans', () => {
    const rp: ReportPolicy = {
      reportMinRoomMs: 10_000,
      reportBanThreshold: 3,
      reportWindowMs: 3_600_000,
      banDurationMs: 3_600_000,
      banMaxMs: 604_800_000,
      banStrikeWindowMs: 2_592_000_000,
    };
    const e = (at: number, room: string, counts = true): ReportEntry => ({ at, room, counts });

    it('a report counts after REPORT_MIN_ROOM_MS of conversation (room age, or room length once it ended), from a reporter in good standing', () => {
      assert.equal(reportCounts(talkedMs(0, undefined, 9_999), true, rp), false);
      assert.equal(reportCounts(talkedMs(0, undefined, 10_000), true, rp), true);
      assert.equal(reportCounts(talkedMs(0, 9_000, 50_000), true, rp), false, 'the room ended after 9 s: reporting later changes nothing');
      assert.equal(reportCounts(talkedMs(0, 10_000, 50_000), false, rp), false, 'a reporter in bad standing');
    });

    it('standing: a counting report by anyone but the target, or a ban that ended within the report window, takes it away', () => {
      assert.equal(inGoodStanding([], undefined, 't', 0, rp), true);
      assert.equal(inGoodStanding([['x', e(0, 'r')]], undefined, 't', 1_000, rp), false);
      assert.equal(inGoodStanding([['t', e(0, 'r')]], undefined, 't', 1_000, rp), true, "the target's own report of the reporter");
      assert.equal(inGoodStanding([['x', e(0, 'r', false)]], undefined, 't', 1_000, rp), true, 'a report that does not count');
      assert.equal(inGoodStanding([['x', e(0, 'r')]], undefined, 't', 3_600_001, rp), true, 'an old report');
      assert.equal(inGoodStanding([], { strike: 1, until: 10_000 }, 't', 5_000, rp), false, 'banned now');
      assert.equal(inGoodStanding([], { strike: 1, until: 10_000 }, 't', 10_000 + 3_600_000, rp), false, 'banned lately');
      assert.equal(inGoodStanding([], { strike: 1, until: 10_000 }, 't', 10_001 + 3_600_000, rp), true);
    });

    it('counting reports: fresh, counting, one per room; a counting report is not replaced by one that does not count', () => {
      assert.equal(countingReports([e(0, 'a'), e(0, 'a'), e(0, 'b'), e(0, 'c', false), e(-3_600_001, 'd')], 0, rp), 2);
      assert.deepEqual(keptReport(e(0, 'a'), e(5, 'b', false), 5, rp), e(0, 'a'));
      assert.deepEqual(keptReport(e(0, 'a', false), e(5, 'b'), 5, rp), e(5, 'b'));
      assert.deepEqual(keptReport(e(0, 'a'), e(3_600_001, 'b', false), 3_600_001, rp), e(3_600_001, 'b', false), 'an old one is replaced');
    });

    it('a ban lasts BAN_DURATION_MS, doubling per strike within BAN_STRIKE_WINDOW_MS, at most BAN_MAX_MS', () => {
      assert.deepEqual([1, 2, 3, 4, 8, 9, 1_000].map((n) => banLengthMs(n, rp) / 3_600_000), [1, 2, 4, 8, 128, 168, 168]);
      assert.equal(nextStrike(undefined, 0, rp), 1);
      assert.equal(nextStrike({ strike: 2, until: 0 }, rp.banStrikeWindowMs, rp), 3);
      assert.equal(nextStrike({ strike: 2, until: 0 }, rp.banStrikeWindowMs + 1, rp), 1);
    });
  });
});
