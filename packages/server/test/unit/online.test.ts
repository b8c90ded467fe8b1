import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock } from '../../src/core/clock.js';
import { OnlineCounts } from '../../src/matching/online.js';
import { RecentStats } from '../../src/ops/recent-stats.js';
import type { StoreStats } from '../../src/store/store.js';

const clockAt = (t: { now: number }): Clock => ({ now: () => t.now, setTimer: () => ({ cancel() {} }) });

describe('OnlineCounts', () => {
  it('asks the store at most once per period, and once for requests that arrive together', async () => {
    const time = { now: 0 };
    let asked = 0;
    let sessions = 3;
    const stats = async (): Promise<StoreStats> => {
      asked++;
      return { waiting: { video: 1, text: 2 }, rooms: 7, sessions: 9, online: sessions, keptBytes: 99 };
    };
    const counts = new OnlineCounts(new RecentStats(stats, clockAt(time), 1_000));
    const together = await Promise.all([counts.get(), counts.get(), counts.get()]);
    assert.equal(asked, 1);
    // Aggregates only: no rooms or kept bytes leave the process.
    for (const c of together) assert.deepEqual(c, { online: 3, waiting: { video: 1, text: 2 } });
    sessions = 4;
    time.now = 999;
    assert.equal((await counts.get()).online, 3, 'within the period: the copy');
    assert.equal(asked, 1);
    time.now = 1_000;
    assert.equal((await counts.get()).online, 4, 'after it: asked again');
    assert.equal(asked, 2);
  });

  it('a failed question is not kept: the next request asks again', async () => {
    let fail = true;
    const counts = new OnlineCounts(new RecentStats(
      async () => {
        if (fail) throw new Error('store away');
        return { waiting: { video: 0, text: 0 }, rooms: 0, sessions: 1, online: 1, keptBytes: 0 };
      },
      clockAt({ now: 0 }),
      1_000,
    ));
    await assert.rejects(counts.get(), /store away/);
    fail = false;
    assert.equal((await counts.get()).online, 1);
  });
});
