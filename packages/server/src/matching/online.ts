// GET /online: how many people are here, for the landing and waiting screens.
// Aggregates only (no per-person data), from the store's own counts: on Redis
// those are the whole deployment's, from a copy at most ONLINE_CACHE_MS old
// (ops/recent-stats.ts).
import type { OnlineResponse } from '@dyad/protocol';
import type { Clock } from '../core/clock.js';
import type { StoreStats } from '../store/store.js';
import { RecentStats } from '../ops/recent-stats.js';

export class OnlineCounts {
  private readonly recent: RecentStats;

  constructor(stats: () => Promise<StoreStats>, clock: Clock, maxAgeMs: number) {
    this.recent = new RecentStats(stats, clock, maxAgeMs);
  }

  async get(): Promise<OnlineResponse> {
    const s = await this.recent.get();
    return { online: s.online, waiting: { video: s.waiting.video, text: s.waiting.text } };
  }
}
