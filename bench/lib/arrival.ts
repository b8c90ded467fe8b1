// Arrival: from a visitor's first request until both members of its pair hold
// `matched`, one pair at a time and in bursts, and the server CPU an arrival
// costs. Beside Dyad, in the same run and with the same client code, the
// floor: a bare `ws` server that pairs the two latest arrivals with no rules
// (bench/lib/peers/arrival-floor.ts). On a shared, noisy machine the ratios
// to the floor and the CPU per arrival are the figures to judge by.
import { load1, type BenchContext } from './context.js';
import { threadCpuSeconds } from './procs.js';
import { startPeerServer } from './relay.js';
import { cdf, summarize, type Summary } from './stats.js';
import type { Point } from './svg.js';
import type { ArrivalWay, MatchAnomalies, VisitorsResult, VisitorsTask } from './tasks.js';
import { startForSection, type TopologyName } from './topology.js';

export const ARRIVAL_ROWS = ['floor', 'memory-one-trip', 'memory-register', 'redis-1-one-trip', 'redis-2-one-trip'] as const;
export type ArrivalRowName = (typeof ARRIVAL_ROWS)[number];

export const ARRIVAL_LABEL: Record<ArrivalRowName, string> = {
  floor: 'floor (bare ws server)',
  'memory-one-trip': 'Dyad memory, one-trip',
  'memory-register': 'Dyad memory, POST /register + socket',
  'redis-1-one-trip': 'Dyad Redis 1 process, one-trip',
  'redis-2-one-trip': 'Dyad Redis 2 processes, one-trip',
};

/** The rows each Dyad set-up gives, and how its visitors arrive. */
const ROWS_OF: Record<TopologyName, [ArrivalRowName, ArrivalWay][]> = {
  memory: [
    ['memory-one-trip', 'one-trip'],
    ['memory-register', 'register'],
  ],
  'redis-1': [['redis-1-one-trip', 'one-trip']],
  'redis-2': [['redis-2-one-trip', 'one-trip']],
  'cluster-2': [],
};

/** A pairs task stops starting pairs after this long (the run's watchdog bounds everything else). */
const TASK_DEADLINE_MS = 60_000;

/** Server CPU per arriving session, microseconds. */
export interface CpuPerSession {
  /** The Dyad processes (or the floor). */
  server: number;
  redis: number;
}

export interface ArrivalBurst {
  size: number;
  /** Each run: first arrival -> every visitor holds `matched` (NaN when one never did). */
  runsMs: number[];
  medianMs: number;
}

export interface ArrivalRow {
  row: ArrivalRowName;
  /** One pair at a time: the second arrival's first request -> both hold `matched`. */
  pairs: Summary;
  /** Pairs done per second by one visitor at a time (both arrive, both matched, both closed). */
  pairsPerSec: number;
  bursts: ArrivalBurst[];
  /** Over the measured pairs, and over the measured bursts. */
  cpu: { pairs: CpuPerSession; bursts: CpuPerSession };
  /** Over every visitor of the row, warm-up included. */
  anomalies: MatchAnomalies;
  /**
   * This row ÷ the floor: latency p50 and p99, each burst's median (in the
   * order of `bursts`), and server CPU per session (Dyad + Redis ÷ the floor's).
   */
  vsFloor?: { p50: number; p99: number; bursts: number[]; cpuPairs: number; cpuBursts: number };
  latencyCdf: Point[];
  load1: number;
}

export interface ArrivalResults {
  rows: ArrivalRow[];
  unavailable: Partial<Record<TopologyName, string>>;
  errors: string[];
}

export const anomalyTotal = (a: MatchAnomalies): number => a.doubles + a.oddRooms + a.lost;

interface Target {
  row: ArrivalRowName;
  way: ArrivalWay;
  /** http://HOST:PORT of each matching process (or of the floor). */
  servers: string[];
  /** CPU seconds used so far by the server processes and by Redis. */
  cpu(): { server: number; redis: number };
}

function addAnomalies(into: MatchAnomalies, a: MatchAnomalies): void {
  into.doubles += a.doubles;
  into.oddRooms += a.oddRooms;
  into.lost += a.lost;
  for (const [k, v] of Object.entries(a.failed)) into.failed[k] = (into.failed[k] ?? 0) + v;
}

const medianOf = (xs: number[]): number => summarize(xs.filter(Number.isFinite)).p50;

async function measureRow(ctx: BenchContext, target: Target, tag: string): Promise<ArrivalRow> {
  const a = ctx.profile.arrival;
  const label = ARRIVAL_LABEL[target.row];
  const anomalies: MatchAnomalies = { doubles: 0, oddRooms: 0, lost: 0, failed: {} };
  let phase = 'starting';
  ctx.progress.watch(() => {
    const p = ctx.workers.progress();
    return `arrival, ${label}, ${phase}: ${p.arrived ?? 0} arrived, ${p.matched ?? 0} matched`;
  });
  // One load generator: the server has the other core to itself.
  const run = async (shape: VisitorsTask['shape'], count: number, id: string): Promise<VisitorsResult> => {
    phase = shape === 'pairs' ? `${count} pairs one at a time` : `burst of ${count}`;
    const task: VisitorsTask = {
      kind: 'visitors',
      way: target.way,
      servers: target.servers,
      shape,
      count,
      timeoutMs: a.timeoutMs,
      deadlineMs: TASK_DEADLINE_MS,
      tag: `${tag}${id}`,
    };
    const [r] = await ctx.workers.run<VisitorsResult>([task]);
    if (!r) throw new Error('no answer from the load generator');
    addAnomalies(anomalies, r.anomalies);
    return r;
  };
  const perSession = (c0: { server: number; redis: number }, c1: { server: number; redis: number }, sessions: number): CpuPerSession => ({
    server: ((c1.server - c0.server) / sessions) * 1e6,
    redis: ((c1.redis - c0.redis) / sessions) * 1e6,
  });

  // Warm the path up (JIT, buffers) before anything is measured.
  await run('pairs', a.warmupPairs, 'w');
  const c0 = target.cpu();
  const seq = await run('pairs', a.pairs, 'p');
  const c1 = target.cpu();
  await run('burst', a.bursts[0] ?? 100, 'wb');
  const bursts: ArrivalBurst[] = [];
  let burstSessions = 0;
  const c2 = target.cpu();
  for (const size of a.bursts) {
    const runsMs: number[] = [];
    for (let i = 0; i < a.burstRuns; i++) {
      const r = await run('burst', size, `b${size}r${i}`);
      runsMs.push(r.latencyMs[0] ?? Number.NaN);
      burstSessions += r.sessions;
    }
    bursts.push({ size, runsMs, medianMs: medianOf(runsMs) });
  }
  const c3 = target.cpu();
  return {
    row: target.row,
    pairs: summarize(seq.latencyMs),
    pairsPerSec: seq.latencyMs.length / (seq.elapsedMs / 1000),
    bursts,
    cpu: { pairs: perSession(c0, c1, seq.sessions), bursts: perSession(c2, c3, burstSessions) },
    anomalies,
    latencyCdf: cdf(seq.latencyMs, 200),
    load1: load1(),
  };
}

function describe(r: ArrivalRow): string {
  const cpu = (c: CpuPerSession): string => `${c.server.toFixed(0)}${c.redis > 0 ? ` + Redis ${c.redis.toFixed(0)}` : ''} µs`;
  const n = anomalyTotal(r.anomalies);
  return (
    `arrival, ${ARRIVAL_LABEL[r.row]}: one at a time p50 ${r.pairs.p50.toFixed(2)} ms p99 ${r.pairs.p99.toFixed(2)} ms, ` +
    `${r.pairsPerSec.toFixed(0)} pairs/s; ${r.bursts.map((b) => `burst ${b.size} ${b.medianMs.toFixed(1)} ms`).join(', ')}; ` +
    `server CPU per session ${cpu(r.cpu.pairs)} one at a time, ${cpu(r.cpu.bursts)} in bursts; ` +
    `${n === 0 ? 'no anomaly' : `ANOMALIES ${n}: ${JSON.stringify(r.anomalies)}`}`
  );
}

export async function runArrival(ctx: BenchContext): Promise<ArrivalResults> {
  const out: ArrivalResults = { rows: [], unavailable: {}, errors: [] };
  const tag = Date.now().toString(36);
  const attempt = async (target: Target): Promise<void> => {
    try {
      const r = await measureRow(ctx, target, `${tag}${ARRIVAL_ROWS.indexOf(target.row)}`);
      ctx.progress.done();
      out.rows.push(r);
      ctx.progress.line(describe(r));
    } catch (err) {
      ctx.progress.done();
      const msg = `arrival, ${ARRIVAL_LABEL[target.row]}: failed: ${err instanceof Error ? err.message : String(err)}`;
      out.errors.push(msg);
      ctx.progress.line(msg);
      await ctx.workers.idle();
    }
  };

  // The floor first, then each Dyad set-up.
  let floor: Awaited<ReturnType<typeof startPeerServer>> | undefined;
  try {
    floor = await startPeerServer('arrival-floor.ts');
  } catch (err) {
    out.errors.push(`arrival, ${ARRIVAL_LABEL.floor}: did not start: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (floor) {
    const pid = floor.pid;
    try {
      await attempt({ row: 'floor', way: 'floor', servers: [floor.url.replace(/^ws/, 'http')], cpu: () => ({ server: threadCpuSeconds(pid), redis: 0 }) });
    } finally {
      await floor.stop();
    }
  }
  for (const name of ctx.profile.arrival.topologies) {
    // Named `arrivals-<store>`: with --cpu-prof, flame-arrivals-<store>.svg.
    const topo = await startForSection(ctx, 'arrivals', name, out.unavailable);
    if (!topo) continue;
    const { procs, redis } = topo;
    const cpu = (): { server: number; redis: number } => ({
      server: procs.reduce((n, p) => n + threadCpuSeconds(p.pid), 0),
      redis: redis ? threadCpuSeconds(redis.pid) : 0,
    });
    try {
      for (const [row, way] of ROWS_OF[name]) await attempt({ row, way, servers: procs.map((p) => p.matching ?? ''), cpu });
    } finally {
      await topo.stop();
    }
  }

  const base = out.rows.find((r) => r.row === 'floor');
  if (base) {
    const cpuOf = (c: CpuPerSession): number => c.server + c.redis;
    for (const r of out.rows) {
      if (r === base) continue;
      r.vsFloor = {
        p50: r.pairs.p50 / base.pairs.p50,
        p99: r.pairs.p99 / base.pairs.p99,
        bursts: r.bursts.map((b) => b.medianMs / (base.bursts.find((x) => x.size === b.size)?.medianMs ?? Number.NaN)),
        cpuPairs: cpuOf(r.cpu.pairs) / cpuOf(base.cpu.pairs),
        cpuBursts: cpuOf(r.cpu.bursts) / cpuOf(base.cpu.bursts),
      };
    }
  }
  return out;
}
