// GET /online: how many people are here, for the landing and waiting screens.
// Aggregates only (no per-person data), from the store's own counts: on Redis
// those are the whole deployment's, from a copy at most ONLINE_CACHE_MS old
// (ops/recent-stats.ts), the same one /metrics reads.
import type { OnlineResponse } from '@dyad/protocol';
import type { RecentStats } from '../ops/recent-stats.js';

export class OnlineCounts {
  constructor(private readonly counts: Pick<RecentStats, 'get'>) {}

  async get(): Promise<OnlineResponse> {
    const s = await this.counts.get();
    return { online: s.online, waiting: { video: s.waiting.video, text: s.waiting.text } };
  }
}
