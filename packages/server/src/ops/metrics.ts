// Prometheus metrics of one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Hub } from '../core/hub.js';
import type { RecentStats } from './recent-stats.js';

export class Metrics {
  readonly registry = new Registry();
  readonly registrations = new Counter({
    name: 'dyad_registrations_total',
    help: 'Session registrations by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly pairs = new Counter({ name: 'dyad_pairs_total', help: 'Rooms opened', labelNames: ['mode'] as const, registers: [this.registry] });
  readonly roomsEnded = new Counter({
    name: 'dyad_rooms_ended_total',
    help: 'Rooms ended, by the reason given to the partner',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly matchWait = new Histogram({
    name: 'dyad_match_wait_seconds',
    help: 'Time a session waited in the pool before being paired',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly messages = new Counter({
    name: 'dyad_messages_total',
    help: 'Client messages received, by socket kind',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'dyad_rejected_total',
    help: 'Refused requests and messages, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  /** The per-address paces and counts of this process, by limit (watchAddresses). */
  private readonly paces = new Map<string, { readonly size?: number }>();

  /**
   * `counts`: the store's counts, at most ONLINE_CACHE_MS old, so that one
   * counting serves every gauge and every scrape of the period (the port
   * answers anyone), and GET /online too.
   */
  /** Node's and the process's own metrics (prom-client's defaults), apart: see text(). */
  private readonly processRegistry = new Registry();
  /** Their last text rendered, and when. */
  private rendered: { at: number; text: Promise<string> } | undefined;

  /**
   * What `/metrics` answers: Dyad's metrics as they are now, and the
   * process's own rendered at most once every `renderEveryMs`
   * (ONLINE_CACHE_MS), every scrape of the period getting the same text of
   * them. Rendering those reads the process's open files one by one
   * (process_open_fds), which took 33 ms of the one thread at 11,700 open
   * connections: scrapes from a few addresses at their request rate kept it
   * busy (fifth review, finding H1).
   */
  async text(now = performance.now()): Promise<string> {
    let last = this.rendered;
    if (!last || now - last.at >= this.renderEveryMs) {
      const text = this.processRegistry.metrics();
      this.rendered = last = { at: now, text };
      // A render that failed is not kept.
      text.catch(() => {
        if (this.rendered?.text === text) this.rendered = undefined;
      });
    }
    const [own, processes] = await Promise.all([this.registry.metrics(), last.text]);
    return `${processes}${own}`;
  }

  constructor(
    counts: Pick<RecentStats, 'get'>,
    hub: () => Hub | undefined,
    private readonly renderEveryMs = 0,
  ) {
    collectDefaultMetrics({ register: this.processRegistry });
    const paces = this.paces;
    new Gauge({
      name: 'dyad_address_entries',
      help: 'Client addresses this process holds a pace or a count for, by limit (a pace is forgotten once its allowance is whole again; a count when its window ends, or at LIMITER_KEYS_MAX)',
      labelNames: ['limit'] as const,
      registers: [this.registry],
      collect() {
        for (const [limit, book] of paces) this.set({ limit }, book.size ?? 0);
      },
    });
    new Gauge({
      name: 'dyad_sockets',
      help: 'Open WebSockets on this process',
      labelNames: ['channel'] as const,
      registers: [this.registry],
      collect() {
        const h = hub();
        this.set({ channel: 'matching' }, h?.count('matching') ?? 0);
        this.set({ channel: 'signalling' }, h?.count('signalling') ?? 0);
      },
    });
    new Gauge({
      name: 'dyad_waiting_sessions',
      help: 'Sessions waiting in the pool',
      labelNames: ['mode'] as const,
      registers: [this.registry],
      async collect() {
        const s = await counts.get();
        this.set({ mode: 'video' }, s.waiting.video);
        this.set({ mode: 'text' }, s.waiting.text);
      },
    });
    new Gauge({
      name: 'dyad_rooms',
      help: 'Open rooms',
      registers: [this.registry],
      async collect() {
        this.set((await counts.get()).rooms);
      },
    });
    new Gauge({
      name: 'dyad_kept_bytes',
      help: 'Bytes kept for absent members, as counted against KEPT_BYTES_PER_PROCESS (with Redis: by every process together)',
      registers: [this.registry],
      async collect() {
        this.set((await counts.get()).keptBytes);
      },
    });
  }

  /** Show in `dyad_address_entries{limit}` how many addresses `book` holds. */
  watchAddresses(limit: string, book: { readonly size?: number }): void {
    this.paces.set(limit, book);
  }
}
