// The store's counts as a copy at most ONLINE_CACHE_MS old. Counting is not
// free (the memory store walks its sessions: about 3 ms at 100,000), and
// `GET /online` and `/metrics` answer anyone: however many ask, the store is
// counted at most once per period, and those who ask while it is being
// counted share that one question.
import type { Clock } from '../core/clock.js';
import type { StoreStats } from '../store/store.js';

export class RecentStats {
  private kept: { at: number; value: StoreStats } | null = null;
  private asking: Promise<StoreStats> | null = null;

  constructor(
    private readonly stats: () => Promise<StoreStats>,
    private readonly clock: Pick<Clock, 'now'>,
    private readonly maxAgeMs: number,
  ) {}

  get(): Promise<StoreStats> {
    if (this.kept && this.clock.now() - this.kept.at < this.maxAgeMs) return Promise.resolve(this.kept.value);
    this.asking ??= this.stats()
      .then((value) => {
        this.kept = { at: this.clock.now(), value };
        return value;
      })
      .finally(() => (this.asking = null));
    return this.asking;
  }
}
