// Churn soak: sessions pair, chat, and move on every few seconds for minutes,
// some leave for good and new ones arrive. Memory is read after a full GC at
// intervals: once the run is steady it should stay flat.
import { load1, split, type BenchContext } from './context.js';
import { memoryAfterGc, sleep } from './procs.js';
import { total } from './prom.js';
import { linearFit } from './stats.js';
import type { SoakCounters } from './tasks.js';
import { startTopology } from './topology.js';

export interface SoakSample {
  t: number;
  rss: number;
  heapUsed: number;
  sockets: number;
  rooms: number;
  pairs: number;
}

export interface SoakResults {
  durationMs: number;
  sessions: number;
  samples: SoakSample[];
  /** Means of the first and of the last sixth of the samples after the warm-up (60 s, or half of a shorter run). */
  start: SoakSample;
  end: SoakSample;
  /** Least-squares growth over the second half of the run, bytes per minute. */
  heapSlopePerMin: number;
  rssSlopePerMin: number;
  counters: SoakCounters;
  pairsPerSec: number;
  serverErrors: number;
  load1: number;
}

export async function runSoak(ctx: BenchContext): Promise<SoakResults> {
  const s = ctx.profile.soak;
  const n = ctx.workers.size;
  const topo = await startTopology('memory', { label: 'soak', inspect: true, cpuProfDir: ctx.cpuProfDir });
  const proc = topo.procs[0];
  if (!proc?.inspector) throw new Error('soak: server started without an inspector');
  const inspector = proc.inspector;
  try {
    const samples: SoakSample[] = [];
    const t0 = performance.now();
    const run = ctx.workers.run<SoakCounters>(
      split(s.sessions, n).map((sessions) => ({
        kind: 'soak',
        matchingWs: topo.matchingWs,
        sessions,
        durationMs: s.durationMs,
        dwellSec: s.dwellSec,
        leaveChance: s.leaveChance,
      })),
    );
    let finished = false;
    void run.then(
      () => (finished = true),
      () => (finished = true),
    );
    ctx.progress.watch(() => {
      const pr = ctx.workers.progress();
      const last = samples[samples.length - 1];
      return (
        `soak: ${((performance.now() - t0) / 1000).toFixed(0)}/${(s.durationMs / 1000).toFixed(0)} s, ${pr.open ?? 0} open, ` +
        `${(pr.pairs ?? 0).toLocaleString('en-US')} pairings, ${(pr.chats ?? 0).toLocaleString('en-US')} chats` +
        (last ? `, heap ${(last.heapUsed / 1048576).toFixed(1)} MiB, RSS ${(last.rss / 1048576).toFixed(0)} MiB` : '')
      );
    });
    // Sample until the load ends (the last sample is taken while it still runs).
    let next = t0 + s.sampleMs;
    while (!finished && performance.now() < t0 + s.durationMs - 200) {
      await sleep(Math.max(0, Math.min(next, t0 + s.durationMs - 300) - performance.now()));
      const [m, scraped] = await Promise.all([memoryAfterGc(inspector), topo.scrape()]);
      const sc = scraped[0];
      samples.push({
        t: (performance.now() - t0) / 1000,
        rss: m.rss,
        heapUsed: m.heapUsed,
        sockets: sc ? total(sc, 'dyad_sockets') : 0,
        rooms: sc ? total(sc, 'dyad_rooms') : 0,
        pairs: sc ? total(sc, 'dyad_pairs_total') : 0,
      });
      next += s.sampleMs;
    }
    const counters = (await run).reduce<SoakCounters>(
      (acc, c) => {
        for (const k of ['sessionsStarted', 'pairs', 'chatsSent', 'chatsReceived', 'nexts', 'leaves', 'cpuSec'] as const) acc[k] += c[k];
        for (const k of ['errors', 'unexpectedCloses', 'connectFailures'] as const) {
          for (const [key, v] of Object.entries(c[k])) acc[k][key] = (acc[k][key] ?? 0) + v;
        }
        return acc;
      },
      { sessionsStarted: 0, pairs: 0, chatsSent: 0, chatsReceived: 0, nexts: 0, leaves: 0, errors: {}, unexpectedCloses: {}, connectFailures: {}, cpuSec: 0 },
    );
    const finalScrape = (await topo.scrape())[0];
    // Steady once the per-session timers of the first arrivals (registration
    // expiry 30 s, re-pair cooldown 60 s) have run their course, where the run is long enough.
    const warm = Math.max(s.durationMs / 5, Math.min(60_000, s.durationMs / 2)) / 1000;
    const steady = samples.filter((x) => x.t >= warm);
    const last = samples[samples.length - 1];
    if (!last || steady.length === 0) throw new Error('soak: no memory samples');
    // Heap after GC still moves by a few hundred KiB from one sample to the
    // next: compare the mean of the first and of the last sixth of the steady part.
    const k = Math.max(1, Math.floor(steady.length / 6));
    const mean = (xs: SoakSample[]): SoakSample => ({
      t: xs[0]?.t ?? 0,
      rss: xs.reduce((a, x) => a + x.rss, 0) / xs.length,
      heapUsed: xs.reduce((a, x) => a + x.heapUsed, 0) / xs.length,
      sockets: xs[0]?.sockets ?? 0,
      rooms: xs[0]?.rooms ?? 0,
      pairs: xs[0]?.pairs ?? 0,
    });
    const first = mean(steady.slice(0, k));
    const end = { ...mean(steady.slice(-k)), t: last.t, pairs: last.pairs };
    const half = samples.filter((x) => x.t >= last.t / 2);
    const slope = (key: 'rss' | 'heapUsed'): number => linearFit(half.map((x) => x.t), half.map((x) => x[key])).slope * 60;
    return {
      durationMs: s.durationMs,
      sessions: s.sessions,
      samples,
      start: first,
      end,
      heapSlopePerMin: slope('heapUsed'),
      rssSlopePerMin: slope('rss'),
      counters,
      pairsPerSec: last.t > first.t ? (last.pairs - first.pairs) / (last.t - first.t) : Number.NaN,
      serverErrors: finalScrape ? total(finalScrape, 'dyad_rejected_total') : 0,
      load1: load1(),
    };
  } finally {
    ctx.progress.unwatch();
    await topo.stop();
  }
}
