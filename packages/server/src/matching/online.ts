// GET /online: how many people are here, for the landing and waiting screens.
// Aggregates only (no per-person data), from the store's own counts: on Redis
// those are the whole deployment's. Answers come from a copy at most
// ONLINE_CACHE_MS old, and requests that arrive while the store is being asked
// share that one question, so a crowd polling the page costs the store at most
// one `stats()` per process per ONLINE_CACHE_MS.
import type { OnlineResponse } from '@dyad/protocol';
import type { Clock } from '../core/clock.js';
import type { StoreStats } from '../store/store.js';

export class OnlineCounts {
  private kept: { at: number; value: OnlineResponse } | null = null;
  private asking: Promise<OnlineResponse> | null = null;

  constructor(
    private readonly stats: () => Promise<StoreStats>,
    private readonly clock: Clock,
    private readonly maxAgeMs: number,
  ) {}

  get(): Promise<OnlineResponse> {
    if (this.kept && this.clock.now() - this.kept.at < this.maxAgeMs) return Promise.resolve(this.kept.value);
    this.asking ??= this.stats()
      .then((s) => {
        const value: OnlineResponse = { online: s.online, waiting: { video: s.waiting.video, text: s.waiting.text } };
        this.kept = { at: this.clock.now(), value };
        return value;
      })
      .finally(() => (this.asking = null));
    return this.asking;
  }
}
