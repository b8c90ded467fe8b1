// Pairing: sessions arriving at set rates (one-trip start, matched, clean
// close), and held sessions that `next` as fast as they are matched.
import { load1, split, type BenchContext } from './context.js';
import { sleep } from './procs.js';
import { diffHistogram, fractionWithin, histogram, histogramQuantile, sumHistograms, total, type Scrape } from './prom.js';
import { cdf, mergeSamples, middle, summarize, type Summary } from './stats.js';
import type { ArrivalsResult, CycleResult } from './tasks.js';
import { startForSection, TOPOLOGY_LABEL, type Topology, type TopologyName } from './topology.js';
import type { Point } from './svg.js';
import { profileRedis, type RedisProfile } from './redis-diag.js';

/** How long Redis logs every command when a run is diagnosed. */
export const REDIS_DIAG_MS = 1_500;

const MATCH_WAIT = 'dyad_match_wait_seconds';
const PAIRS = 'dyad_pairs_total';
const REGISTRATIONS = 'dyad_registrations_total';

export interface ServerWait {
  count: number;
  /** Interpolated inside the server's buckets (1, 5, 10, 50 ms …): coarse. */
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  /** Exact fractions at bucket edges. */
  within1Ms: number;
  within5Ms: number;
  within10Ms: number;
}

export interface CpuUse {
  /** Cores busy on average over the window (1 = one core all the time). */
  dyad: number;
  redis: number;
  clients: number;
}

export interface PairingStep {
  topology: TopologyName;
  offered: number;
  /** Arrivals actually started per second (below `offered` when the generators fall behind). */
  arrived: number;
  /** Rooms opened per second inside the measured window (server counter). */
  pairsPerSec: number;
  launched: number;
  matched: number;
  unmatched: number;
  failed: Record<string, number>;
  /** Time in the pool: `waiting` -> `matched` on the session's own socket. */
  wait: Summary;
  /** Socket created -> `matched`: TCP, upgrade, registration and pool. */
  e2e: Summary;
  /** How late arrivals started against their schedule. */
  lag: Summary;
  server: ServerWait;
  /** p99 of the pool wait that Poisson arrivals alone imply (zero processing): ln(50)/rate. */
  floorP99Ms: number;
  cpu: CpuUse;
  /** Server CPU (Dyad processes and Redis) per arrival, microseconds: steadier than rates on a shared machine. */
  serverUsPerSession: number;
  clientUsPerSession: number;
  load1: number;
  waitCdf: Point[];
}

export interface CycleStep {
  topology: TopologyName;
  sessions: number;
  pairsPerSec: number;
  clientPairsPerSec: number;
  wait: Summary;
  errors: Record<string, number>;
  cpu: CpuUse;
  /** Server CPU (Dyad processes and Redis) per pairing, microseconds. */
  serverUsPerPairing: number;
  /** Of which Redis. */
  redisUsPerPairing: number;
  /** Redis's own account of its time per pairing, by script (Redis set-ups). */
  redis?: RedisProfile;
  load1: number;
}

/** Held sessions run in rounds (every set-up in turn, profile.pairing.cycleRounds): the ratios of each round. */
export interface HeldRounds {
  /** Dyad CPU per pairing, Redis with one process ÷ memory, per round with both. */
  dyadVsMemory: number[];
  /** Pairings/s, Redis with two processes ÷ with one, per round with both. */
  twoVsOne: number[];
}

export interface PairingResults {
  steps: PairingStep[];
  /** Held sessions: per set-up, its run of the median round (by Dyad CPU per pairing). */
  cycles: CycleStep[];
  rounds?: HeldRounds;
  unavailable: Partial<Record<TopologyName, string>>;
  /** Steps that failed (the run goes on without them). */
  errors: string[];
}

function serverWait(h: ReturnType<typeof histogram>): ServerWait {
  return {
    count: h.count,
    p50Ms: histogramQuantile(h, 0.5) * 1000,
    p95Ms: histogramQuantile(h, 0.95) * 1000,
    p99Ms: histogramQuantile(h, 0.99) * 1000,
    within1Ms: fractionWithin(h, 0.001),
    within5Ms: fractionWithin(h, 0.005),
    within10Ms: fractionWithin(h, 0.01),
  };
}

const sumTotal = (s: Scrape[], name: string): number => s.reduce((n, x) => n + total(x, name), 0);
const sumHist = (s: Scrape[]) => sumHistograms(s.map((x) => histogram(x, MATCH_WAIT)));

interface Window {
  seconds: number;
  pairs: number;
  /** Sessions registered per second (server counter). */
  arrivals: number;
  cpu: CpuUse;
}

/** Counters and CPU between now and `untilMs` (performance.now() time). */
async function measureWindow(ctx: BenchContext, topo: Topology, untilMs: number): Promise<Window> {
  const a = await topo.scrape();
  const ta = performance.now();
  const ca = topo.cpu();
  const wa = ctx.workers.cpuSeconds();
  await sleep(Math.max(0, untilMs - performance.now()));
  const b = await topo.scrape();
  const tb = performance.now();
  const cb = topo.cpu();
  const wb = ctx.workers.cpuSeconds();
  const s = (tb - ta) / 1000;
  return {
    seconds: s,
    pairs: (sumTotal(b, PAIRS) - sumTotal(a, PAIRS)) / s,
    arrivals: (sumTotal(b, REGISTRATIONS) - sumTotal(a, REGISTRATIONS)) / s,
    cpu: { dyad: (cb.dyad - ca.dyad) / s, redis: (cb.redis - ca.redis) / s, clients: (wb - wa) / s },
  };
}

/** Longest wait for the server to be rid of the sessions of an overloaded step. */
const DRAIN_MS = 15_000;

/** Wait until the server holds no sockets (bounded), so one step's backlog does not spill into the next. */
async function drain(topo: Topology): Promise<void> {
  const end = performance.now() + DRAIN_MS;
  while (performance.now() < end) {
    try {
      if (sumTotal(await topo.scrape(), 'dyad_sockets') === 0) return;
    } catch {
      // Not answering yet: still busy.
    }
    await sleep(250);
  }
}

async function arrivalStep(ctx: BenchContext, topo: Topology, rate: number): Promise<PairingStep> {
  const p = ctx.profile.pairing;
  const n = ctx.workers.size;
  const label = TOPOLOGY_LABEL[topo.name];
  await drain(topo);
  const before = await topo.scrape();
  ctx.progress.watch(() => {
    const pr = ctx.workers.progress();
    return `pairing, ${label}, ${rate.toLocaleString('en-US')} arrivals/s: ${pr.launched ?? 0} arrived, ${pr.matched ?? 0} matched, ${pr.open ?? 0} open`;
  });
  const t0 = performance.now();
  const run = ctx.workers.run<ArrivalsResult>(
    split(1_000_000, n).map(() => ({
      kind: 'arrivals',
      matchingWs: topo.matchingWs,
      rate: rate / n,
      durationMs: p.durationMs,
      settleMs: p.settleMs,
      // Past the server's capacity arrivals queue here instead of piling up sockets without bound.
      maxOpen: 3_000,
    })),
  );
  // Throughput and CPU are read inside the arrival phase, after its first quarter.
  await sleep(p.durationMs * 0.25);
  const win = await measureWindow(ctx, topo, t0 + p.durationMs);
  const results = await run;
  const after = await topo.scrape();
  const h = diffHistogram(sumHist(after), sumHist(before));
  const wait = mergeSamples(results.map((r) => r.waitMs));
  const failed: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.failed)) failed[k] = (failed[k] ?? 0) + v;
  const launched = results.reduce((s, r) => s + r.launched, 0);
  const elapsed = Math.max(...results.map((r) => r.elapsedMs)) / 1000;
  return {
    topology: topo.name,
    offered: rate,
    arrived: launched / elapsed,
    pairsPerSec: win.pairs,
    launched,
    matched: results.reduce((s, r) => s + r.matched, 0),
    unmatched: results.reduce((s, r) => s + r.unmatched, 0),
    failed,
    wait: summarize(wait),
    e2e: summarize(mergeSamples(results.map((r) => r.e2eMs))),
    lag: summarize(mergeSamples(results.map((r) => r.lagMs))),
    server: serverWait(h),
    floorP99Ms: (Math.log(50) / rate) * 1000,
    cpu: win.cpu,
    serverUsPerSession: ((win.cpu.dyad + win.cpu.redis) / win.arrivals) * 1e6,
    clientUsPerSession: (win.cpu.clients / win.arrivals) * 1e6,
    load1: load1(),
    waitCdf: cdf(wait, 300),
  };
}

async function cycleStep(ctx: BenchContext, topo: Topology, mayDiagnose: boolean): Promise<CycleStep> {
  const p = ctx.profile.pairing;
  const diagnose = topo.redis !== undefined && ctx.diagnoseRedis && mayDiagnose;
  const n = ctx.workers.size;
  const label = TOPOLOGY_LABEL[topo.name];
  const sessions = split(p.cycleSessions, n);
  await drain(topo);
  ctx.progress.watch(() => {
    const pr = ctx.workers.progress();
    return `pairing throughput, ${label}: ${pr.connected ?? 0}/${p.cycleSessions} sessions, ${pr.matched ?? 0} matched`;
  });
  const run = ctx.workers.run<CycleResult>(
    sessions.map((count, i) => ({
      kind: 'cycle',
      matchingWs: topo.matchingWs,
      sessions: count,
      warmupMs: p.cycleWarmupMs,
      durationMs: p.cycleMs,
      tailMs: diagnose ? 1_000 + REDIS_DIAG_MS + 1_000 : 1_000,
      localAddresses: [`127.0.0.${2 + i}`],
    })),
  );
  // Wait until every worker has its sessions connected, start them together, and measure inside their window.
  while ((ctx.workers.progress().loading ?? 0) < n) {
    const done = await Promise.race([run.then(() => true), sleep(100).then(() => false)]);
    if (done) break;
  }
  ctx.workers.go();
  await sleep(p.cycleWarmupMs);
  const win = await measureWindow(ctx, topo, performance.now() + p.cycleMs - 500);
  let redis: RedisProfile | undefined;
  if (diagnose && topo.redis) {
    // Inside the workers' tail, after the measured window.
    await sleep(1_000);
    const url = topo.redis.url;
    ctx.progress.watch(() => `pairing throughput, ${label}: logging Redis commands for ${REDIS_DIAG_MS / 1000} s`);
    redis = await profileRedis(url, REDIS_DIAG_MS, async () => sumTotal(await topo.scrape(), PAIRS));
  }
  const results = await run;
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    topology: topo.name,
    sessions: results.reduce((s, r) => s + r.sessions, 0),
    pairsPerSec: win.pairs,
    clientPairsPerSec: results.reduce((s, r) => s + r.matchedInWindow / 2 / (r.windowMs / 1000), 0),
    wait: summarize(mergeSamples(results.map((r) => r.waitMs))),
    errors,
    cpu: win.cpu,
    serverUsPerPairing: ((win.cpu.dyad + win.cpu.redis) / win.pairs) * 1e6,
    redisUsPerPairing: (win.cpu.redis / win.pairs) * 1e6,
    redis,
    load1: load1(),
  };
}

/** CPU per held pairing of the Dyad processes or of Redis, microseconds. */
export const usPerPairing = (c: CycleStep, part: 'dyad' | 'redis'): number => (c.cpu[part] / c.pairsPerSec) * 1e6;
const dyadUsPerPairing = (c: CycleStep): number => usPerPairing(c, 'dyad');

export async function runPairing(ctx: BenchContext): Promise<PairingResults> {
  const out: PairingResults = { steps: [], cycles: [], unavailable: {}, errors: [] };
  const failed = async (name: TopologyName, what: string, err: unknown): Promise<void> => {
    const msg = `pairing, ${TOPOLOGY_LABEL[name]}, ${what}: failed: ${err instanceof Error ? err.message : String(err)}`;
    out.errors.push(msg);
    ctx.progress.line(msg);
    // Let the workers finish what they were doing before the next step.
    await ctx.workers.idle();
  };
  const topos = new Map<TopologyName, Topology>();
  try {
    for (const name of ctx.profile.pairing.topologies) {
      const topo = await startForSection(ctx, 'pairing', name, out.unavailable);
      if (topo) topos.set(name, topo);
    }
    // Held sessions first, on fresh stores: an overloaded arrival step can
    // leave thousands of half-registered sessions behind (Redis keeps them
    // until they expire) that every later pairing would have to scan past.
    // In rounds, every set-up in turn, so that each ratio compares runs made
    // close together (Redis's commands are logged in the last round only).
    const rounds = ctx.profile.pairing.cycleRounds;
    const runs = new Map<TopologyName, CycleStep[]>();
    const ratios: HeldRounds = { dyadVsMemory: [], twoVsOne: [] };
    for (let round = 1; round <= rounds; round++) {
      const got = new Map<TopologyName, CycleStep>();
      for (const [name, topo] of topos) {
        try {
          const c = await cycleStep(ctx, topo, round === rounds);
          got.set(name, c);
          runs.set(name, [...(runs.get(name) ?? []), c]);
          ctx.progress.line(
            `pairing throughput, ${TOPOLOGY_LABEL[name]}, ${c.sessions} held sessions, round ${round} of ${rounds}: ${c.pairsPerSec.toFixed(0)} pairings/s ` +
              `(server ${c.cpu.dyad.toFixed(2)} cores, clients ${c.cpu.clients.toFixed(2)}; Dyad ${dyadUsPerPairing(c).toFixed(0)} µs per pairing)`,
          );
        } catch (err) {
          await failed(name, `held sessions, round ${round}`, err);
        }
      }
      const mem = got.get('memory');
      const one = got.get('redis-1');
      const two = got.get('redis-2');
      if (mem && one) ratios.dyadVsMemory.push(dyadUsPerPairing(one) / dyadUsPerPairing(mem));
      if (one && two) ratios.twoVsOne.push(two.pairsPerSec / one.pairsPerSec);
    }
    for (const name of topos.keys()) {
      const median = middle(runs.get(name) ?? [], dyadUsPerPairing);
      if (median) out.cycles.push(median);
    }
    if (ratios.dyadVsMemory.length + ratios.twoVsOne.length > 0) out.rounds = ratios;

    for (const [name, topo] of topos) {
      try {
        for (const rate of ctx.profile.pairing.rates) {
          let step: PairingStep;
          try {
            step = await arrivalStep(ctx, topo, rate);
          } catch (err) {
            await failed(name, `${rate}/s`, err);
            continue;
          }
          out.steps.push(step);
          ctx.progress.line(
            `pairing, ${TOPOLOGY_LABEL[name]}, ${rate.toLocaleString('en-US')}/s offered: ${step.arrived.toFixed(0)}/s arrived, ` +
              `${step.pairsPerSec.toFixed(0)} pairings/s, pool wait p99 ${step.wait.p99.toFixed(2)} ms, ` +
              `connect->matched p99 ${step.e2e.p99.toFixed(1)} ms, server ≤5 ms ${(step.server.within5Ms * 100).toFixed(1)}%` +
              `${Object.keys(step.failed).length ? `, failed ${JSON.stringify(step.failed)}` : ''}`,
          );
        }
      } finally {
        // Each set-up goes once its steps are done: the later ones run on a machine without it.
        topos.delete(name);
        await topo.stop();
      }
    }
  } finally {
    ctx.progress.unwatch();
    await Promise.all([...topos.values()].map((t) => t.stop()));
  }
  return out;
}
