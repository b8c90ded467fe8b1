// Arrival: from a visitor's first request until both members of its pair hold
// `matched`, one pair at a time and in bursts, and the server CPU an arrival
// costs. Beside Dyad, in the same run and with the same client code, the
// floor: a bare `ws` server that pairs the two latest arrivals with no rules
// (bench/lib/peers/arrival-floor.ts). On a shared, noisy machine the ratios
// to the floor and the CPU per arrival are the figures to judge by. When
// `npm run bench:uws-floor` has installed it, a second floor beside it: the
// same server on uWebSockets.js (peers/arrival-floor-uws.ts), what an arrival
// would cost below `ws`.
import { existsSync } from 'node:fs';
import { load1, type BenchContext } from './context.js';
import { threadCpuSeconds } from './procs.js';
import { startPeerServer } from './relay.js';
import { cdf, medianOf, summarize, type Summary } from './stats.js';
import type { Point } from './svg.js';
import type { ArrivalWay, MatchAnomalies, VisitorsResult, VisitorsTask } from './tasks.js';
import { startForSection, type TopologyName } from './topology.js';
import { UWS_BINARY } from './uws-floor.js';

export const ARRIVAL_ROWS = ['floor', 'floor-uws', 'memory-one-trip', 'memory-register', 'redis-1-one-trip', 'redis-2-one-trip'] as const;
export type ArrivalRowName = (typeof ARRIVAL_ROWS)[number];

export const ARRIVAL_LABEL: Record<ArrivalRowName, string> = {
  floor: 'floor (bare ws server)',
  'floor-uws': 'floor on uWebSockets.js (bare, optional)',
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
   * order of `bursts`), and server CPU per session (Dyad + Redis ÷ the floor's),
   * each the median of the rounds' ratios (`rounds`: each round's, where the
   * row and the floor ran minutes apart at most; absent in results saved before).
   */
  vsFloor?: ArrivalFigures & { rounds?: ArrivalFigures[] };
  latencyCdf: Point[];
  load1: number;
}

/**
 * A row's one-at-a-time p50 and p99, each burst size's median (in the order
 * of the profile's sizes) and server (and Redis) CPU per session in µs: the
 * figures of one round, or their ratios to the floor's.
 */
export interface ArrivalFigures {
  p50: number;
  p99: number;
  bursts: number[];
  cpuPairs: number;
  cpuBursts: number;
}

export interface ArrivalResults {
  rows: ArrivalRow[];
  unavailable: Partial<Record<TopologyName, string>>;
  errors: string[];
  /** Rows left out on purpose, and why (absent in results saved before). */
  skipped?: string[];
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

/** One row across its rounds. */
interface RowRun {
  target: Target;
  latencyMs: number[];
  elapsedMs: number;
  sessions: number;
  cpuPairs: { server: number; redis: number };
  burstRuns: Map<number, number[]>;
  burstSessions: number;
  cpuBursts: { server: number; redis: number };
  anomalies: MatchAnomalies;
  /** What each round measured, for its ratios to the floor's. */
  rounds: ArrivalFigures[];
  /** Why the row stopped, if it did (its later rounds are not run). */
  failed?: string;
}

function addAnomalies(into: MatchAnomalies, a: MatchAnomalies): void {
  into.doubles += a.doubles;
  into.oddRooms += a.oddRooms;
  into.lost += a.lost;
  for (const [k, v] of Object.entries(a.failed)) into.failed[k] = (into.failed[k] ?? 0) + v;
}

const perSessionUs = (cpuSec: number, sessions: number): number => (sessions > 0 ? (cpuSec / sessions) * 1e6 : Number.NaN);

/** Runs one load-generator task of `target` and counts its anomalies into `run`. */
async function task(ctx: BenchContext, run: RowRun, shape: VisitorsTask['shape'], count: number, tag: string): Promise<VisitorsResult> {
  const a = ctx.profile.arrival;
  // One load generator: the server has the other core to itself.
  const t: VisitorsTask = {
    kind: 'visitors',
    way: run.target.way,
    servers: run.target.servers,
    shape,
    count,
    timeoutMs: a.timeoutMs,
    deadlineMs: TASK_DEADLINE_MS,
    tag,
  };
  const [r] = await ctx.workers.run<VisitorsResult>([t]);
  if (!r) throw new Error('no answer from the load generator');
  addAnomalies(run.anomalies, r.anomalies);
  return r;
}

/** One round of one row: its share of the pairs one at a time, then its share of each burst size's runs. */
async function measureRound(ctx: BenchContext, run: RowRun, round: number, tag: string): Promise<void> {
  const a = ctx.profile.arrival;
  const label = ARRIVAL_LABEL[run.target.row];
  let phase = 'starting';
  ctx.progress.watch(() => {
    const p = ctx.workers.progress();
    return `arrival, ${label}, round ${round + 1} of ${a.rounds}, ${phase}: ${p.arrived ?? 0} arrived, ${p.matched ?? 0} matched`;
  });
  const share = (n: number): number => Math.max(1, Math.ceil(n / a.rounds));
  const used = (c0: { server: number; redis: number }, into: { server: number; redis: number }): number => {
    const c1 = run.target.cpu();
    into.server += c1.server - c0.server;
    into.redis += c1.redis - c0.redis;
    return c1.server - c0.server + (c1.redis - c0.redis);
  };
  phase = 'one at a time';
  const c0 = run.target.cpu();
  const seq = await task(ctx, run, 'pairs', share(a.pairs), `${tag}p`);
  const pairsCpu = used(c0, run.cpuPairs);
  run.latencyMs.push(...seq.latencyMs);
  run.elapsedMs += seq.elapsedMs;
  run.sessions += seq.sessions;
  const bursts: number[] = [];
  let burstCpu = 0;
  let burstSessions = 0;
  for (const size of a.bursts) {
    const runs = run.burstRuns.get(size) ?? [];
    run.burstRuns.set(size, runs);
    const mine: number[] = [];
    for (let i = 0; i < share(a.burstRuns); i++) {
      phase = `burst of ${size}`;
      const b0 = run.target.cpu();
      const r = await task(ctx, run, 'burst', size, `${tag}b${size}r${i}`);
      burstCpu += used(b0, run.cpuBursts);
      mine.push(r.latencyMs[0] ?? Number.NaN);
      burstSessions += r.sessions;
    }
    runs.push(...mine);
    bursts.push(medianOf(mine));
  }
  run.burstSessions += burstSessions;
  const latency = summarize(seq.latencyMs);
  run.rounds.push({ p50: latency.p50, p99: latency.p99, bursts, cpuPairs: perSessionUs(pairsCpu, seq.sessions), cpuBursts: perSessionUs(burstCpu, burstSessions) });
}

/** Warm the path up (JIT, buffers) before anything is measured: pairs one at a time, then a burst. */
async function warmUp(ctx: BenchContext, run: RowRun, tag: string): Promise<void> {
  const a = ctx.profile.arrival;
  ctx.progress.watch(() => `arrival, ${ARRIVAL_LABEL[run.target.row]}, warming up`);
  await task(ctx, run, 'pairs', a.warmupPairs, `${tag}w`);
  await task(ctx, run, 'burst', a.bursts[0] ?? 100, `${tag}wb`);
}

/** A row's figures over all its rounds; its ratios to the floor are the medians of the rounds' ratios. */
function rowOf(ctx: BenchContext, run: RowRun, floor: RowRun | undefined): ArrivalRow {
  const cpu = (c: { server: number; redis: number }, sessions: number): CpuPerSession => ({ server: perSessionUs(c.server, sessions), redis: perSessionUs(c.redis, sessions) });
  const row: ArrivalRow = {
    row: run.target.row,
    pairs: summarize(run.latencyMs),
    pairsPerSec: run.latencyMs.length / (run.elapsedMs / 1000),
    bursts: ctx.profile.arrival.bursts.map((size) => {
      const runsMs = run.burstRuns.get(size) ?? [];
      return { size, runsMs, medianMs: medianOf(runsMs) };
    }),
    cpu: { pairs: cpu(run.cpuPairs, run.sessions), bursts: cpu(run.cpuBursts, run.burstSessions) },
    anomalies: run.anomalies,
    latencyCdf: cdf(run.latencyMs, 200),
    load1: load1(),
  };
  if (floor && run !== floor) {
    const rounds: ArrivalFigures[] = run.rounds.slice(0, floor.rounds.length).map((x, i) => {
      const y = floor.rounds[i] as ArrivalFigures;
      return { p50: x.p50 / y.p50, p99: x.p99 / y.p99, bursts: x.bursts.map((b, k) => b / (y.bursts[k] ?? Number.NaN)), cpuPairs: x.cpuPairs / y.cpuPairs, cpuBursts: x.cpuBursts / y.cpuBursts };
    });
    const median = (f: (r: ArrivalFigures) => number): number => medianOf(rounds.map(f));
    if (rounds.length > 0) {
      row.vsFloor = {
        p50: median((r) => r.p50),
        p99: median((r) => r.p99),
        bursts: row.bursts.map((_, k) => median((r) => r.bursts[k] ?? Number.NaN)),
        cpuPairs: median((r) => r.cpuPairs),
        cpuBursts: median((r) => r.cpuBursts),
        rounds,
      };
    }
  }
  return row;
}

function describe(r: ArrivalRow): string {
  const cpu = (c: CpuPerSession): string => `${c.server.toFixed(0)}${c.redis > 0 ? ` + Redis ${c.redis.toFixed(0)}` : ''} µs`;
  const n = anomalyTotal(r.anomalies);
  const rounds = r.vsFloor?.rounds ?? [];
  return (
    `arrival, ${ARRIVAL_LABEL[r.row]}: one at a time p50 ${r.pairs.p50.toFixed(2)} ms p99 ${r.pairs.p99.toFixed(2)} ms, ` +
    `${r.pairsPerSec.toFixed(0)} pairs/s; ${r.bursts.map((b) => `burst ${b.size} ${b.medianMs.toFixed(1)} ms`).join(', ')}; ` +
    `server CPU per session ${cpu(r.cpu.pairs)} one at a time, ${cpu(r.cpu.bursts)} in bursts; ` +
    (rounds.length > 0 ? `÷ floor by round: p50 ${rounds.map((x) => x.p50.toFixed(2)).join(', ')}, CPU ${rounds.map((x) => x.cpuPairs.toFixed(2)).join(', ')}; ` : '') +
    `${n === 0 ? 'no anomaly' : `ANOMALIES ${n}: ${JSON.stringify(r.anomalies)}`}`
  );
}

export async function runArrival(ctx: BenchContext): Promise<ArrivalResults> {
  const out: ArrivalResults = { rows: [], unavailable: {}, errors: [], skipped: [] };
  const tag = Date.now().toString(36);
  const runs: RowRun[] = [];
  const stops: (() => Promise<void>)[] = [];
  const add = (target: Target): void => {
    runs.push({
      target,
      latencyMs: [],
      elapsedMs: 0,
      sessions: 0,
      cpuPairs: { server: 0, redis: 0 },
      burstRuns: new Map(),
      burstSessions: 0,
      cpuBursts: { server: 0, redis: 0 },
      anomalies: { doubles: 0, oddRooms: 0, lost: 0, failed: {} },
      rounds: [],
    });
  };
  /** Runs `step` of a row that has not failed; a failure stops the row and is reported. */
  const step = async (run: RowRun, what: () => Promise<void>): Promise<void> => {
    if (run.failed) return;
    try {
      await what();
    } catch (err) {
      run.failed = `arrival, ${ARRIVAL_LABEL[run.target.row]}: failed: ${err instanceof Error ? err.message : String(err)}`;
      out.errors.push(run.failed);
      ctx.progress.done();
      ctx.progress.line(run.failed);
      await ctx.workers.idle();
    }
  };

  try {
    // Every set-up is started first: the floor, then each Dyad set-up.
    const floors: [ArrivalRowName, string][] = [['floor', 'arrival-floor.ts']];
    if (existsSync(UWS_BINARY)) floors.push(['floor-uws', 'arrival-floor-uws.ts']);
    else out.skipped?.push(`${ARRIVAL_LABEL['floor-uws']}: not installed (npm run bench:uws-floor installs it)`);
    for (const [row, file] of floors) {
      try {
        const floor = await startPeerServer(file);
        stops.push(() => floor.stop());
        add({ row, way: 'floor', servers: [floor.url.replace(/^ws/, 'http')], cpu: () => ({ server: threadCpuSeconds(floor.pid), redis: 0 }) });
      } catch (err) {
        out.errors.push(`arrival, ${ARRIVAL_LABEL[row]}: did not start: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const name of ctx.profile.arrival.topologies) {
      // Named `arrivals-<store>`: with --cpu-prof, flame-arrivals-<store>.svg.
      const topo = await startForSection(ctx, 'arrivals', name, out.unavailable);
      if (!topo) continue;
      stops.push(() => topo.stop());
      const { procs, redis } = topo;
      const cpu = (): { server: number; redis: number } => ({
        server: procs.reduce((n, p) => n + threadCpuSeconds(p.pid), 0),
        redis: redis ? threadCpuSeconds(redis.pid) : 0,
      });
      for (const [row, way] of ROWS_OF[name]) add({ row, way, servers: procs.map((p) => p.matching ?? ''), cpu });
    }
    // Then rounds, each row in turn in each: a slow spell of a shared machine
    // falls on the floor and on Dyad alike, and each ratio is the median of the rounds'.
    const tagOf = (run: RowRun): string => `${tag}${ARRIVAL_ROWS.indexOf(run.target.row)}`;
    for (const run of runs) await step(run, () => warmUp(ctx, run, tagOf(run)));
    for (let round = 0; round < ctx.profile.arrival.rounds; round++) {
      for (const run of runs) await step(run, () => measureRound(ctx, run, round, `${tagOf(run)}r${round}`));
    }
    ctx.progress.done();
  } finally {
    for (const stop of stops) await stop();
  }

  const floor = runs.find((r) => r.target.row === 'floor' && !r.failed);
  for (const run of runs) {
    if (run.failed) continue;
    const r = rowOf(ctx, run, floor);
    out.rows.push(r);
    ctx.progress.line(describe(r));
  }
  return out;
}
