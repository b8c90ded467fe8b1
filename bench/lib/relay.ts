// Relay: signal frames between the two members of a pair, through Dyad (same
// process; across two processes over Redis), through a bare `ws` forwarder
// (the ceiling of this stack on this machine) and through the PeerJS server,
// all with the same clients, frames and load.
import path from 'node:path';
import { load1, split, type BenchContext } from './context.js';
import { cpuSeconds, REPO_ROOT, runQueueSeconds, sleep, spawnRaised } from './procs.js';
import { medianOf, mergeSamples, middle, summarize, type Summary } from './stats.js';
import type { RelayKind, RelayResult, RelayTask } from './tasks.js';
import { startTopology, Unavailable, type Topology, type TopologyName } from './topology.js';
import { diffHistogram, histogram, total, type Scrape } from './prom.js';
import { profileRedis, type RedisProfile } from './redis-diag.js';
import { REDIS_DIAG_MS } from './pairing.js';
import { chatLatency } from './chat.js';

/** Between chat lines of the chat latency run: latency, not queueing. */
const CHAT_GAP_MS = 20;

export const RELAY_TARGETS = ['echo', 'peerjs', 'dyad-memory', 'dyad-redis-same', 'dyad-redis-cross', 'dyad-cluster-cross'] as const;
export type RelayTarget = (typeof RELAY_TARGETS)[number];

export const RELAY_LABEL: Record<RelayTarget, string> = {
  echo: 'raw ws forwarder',
  peerjs: 'PeerJS server',
  'dyad-memory': 'Dyad, same process',
  'dyad-redis-same': 'Dyad, Redis, same process',
  'dyad-redis-cross': 'Dyad, Redis, across processes',
  'dyad-cluster-cross': 'Dyad, Redis Cluster of 3 primaries, across processes',
};

export interface RelayRun {
  target: RelayTarget;
  /** Frames delivered per second with `window` frames in flight per direction (the ceiling). */
  throughput: number;
  /** Latency while at the ceiling (mostly queueing). */
  saturatedLatency: Summary;
  /** Offered and delivered frames per second in the fixed-rate run. */
  offered: number;
  delivered: number;
  /** Latency at the fixed offered rate. */
  latency: Summary;
  errors: Record<string, number>;
  /** Cores busy at the ceiling: the server process(es), Redis, the clients. */
  cpu: { server: number; redis: number; clients: number };
  /** Cores each Redis node was busy at the ceiling (a Cluster: one per shard). */
  shards: number[];
  /**
   * CPU time per relayed frame at the ceiling (server processes plus Redis),
   * microseconds: unlike frames/s it barely moves when other work shares the
   * machine, so ratios of it are the steadier comparison.
   */
  serverUsPerFrame: number;
  clientUsPerFrame: number;
  /** Redis's own account of its time per relayed frame, by script (Redis set-ups). */
  redis?: RedisProfile;
  /** Dyad set-ups: a chat line from one member until the other has it, one line at a time. */
  chat?: Summary;
  /** Dyad set-ups: the servers' garbage-collection pauses during the fixed-rate run (see gcPauses). */
  gc?: GcPauses;
  /**
   * Share of the fixed-rate run the server processes' main threads waited,
   * runnable, for a CPU that other processes held (per process): on a machine
   * whose cores the load generators, Redis and the servers share, a frame
   * ready to be handled waits that long. Absent in results saved before it.
   */
  cpuWait?: number;
  load1: number;
  /**
   * Each round's ceiling (profile.relay.rounds, every server in turn in each):
   * the figures above at the ceiling are those of the round of the median CPU
   * per frame. Absent in results saved before rounds.
   */
  rounds?: { throughput: number; serverUsPerFrame: number }[];
}

/**
 * Garbage-collection pauses of the server processes over a run, from their
 * own `nodejs_gc_duration_seconds` histograms: a frame that arrives while its
 * process is paused waits for the pause, so the latency tail follows them.
 */
export interface GcPauses {
  /** Share of each process's time spent paused (all processes' pauses ÷ processes × elapsed). */
  share: number;
  /** Pauses per second per process. */
  perSecond: number;
  /** Pauses of 10 ms or more, in all. */
  long: number;
}

/** The pauses between two scrapes of the same processes, `secs` apart. */
export function gcPauses(before: readonly Scrape[], after: readonly Scrape[], secs: number): GcPauses | undefined {
  const hs = after.map((s, i) => diffHistogram(histogram(s, 'nodejs_gc_duration_seconds'), histogram(before[i] ?? new Map(), 'nodejs_gc_duration_seconds')));
  if (hs.length === 0 || secs <= 0 || hs.some((h) => h.le.length === 0)) return undefined;
  const paused = hs.reduce((n, h) => n + h.sum, 0);
  const count = hs.reduce((n, h) => n + h.count, 0);
  const under10 = hs.reduce((n, h) => n + (h.counts[h.le.findIndex((b) => Math.abs(b - 0.01) < 1e-12)] ?? Number.NaN), 0);
  return { share: paused / (hs.length * secs), perSecond: count / (hs.length * secs), long: count - under10 };
}

/** The GC line of a run, for the progress line and the report. */
export const gcText = (g: GcPauses): string =>
  `the servers paused for GC ${(g.share * 100).toFixed(1)}% of the time (${g.perSecond.toFixed(1)} pauses/s each, ${g.long} of 10 ms or more)`;

/** The run-queue line of a run (RelayRun.cpuWait). */
export const cpuWaitText = (share: number, who = 'their main threads'): string => `${who} waited for a CPU ${(share * 100).toFixed(1)}% of the time`;

export interface RelayResults {
  runs: RelayRun[];
  /**
   * Throughput ratios at the ceiling, and the same by CPU per frame (their CPU
   * ÷ ours; sameVsMemory: Redis on one process ÷ the memory store), each the
   * median of the rounds' ratios.
   */
  ratios: {
    vsEcho?: number;
    vsPeerjs?: number;
    crossVsEcho?: number;
    crossVsPeerjs?: number;
    cpuVsEcho?: number;
    cpuVsPeerjs?: number;
    sameVsMemory?: number;
  };
  /** Each ratio's rounds (absent in results saved before rounds). */
  rounds?: Partial<Record<keyof RelayResults['ratios'], number[]>>;
  unavailable: Partial<Record<RelayTarget, string>>;
  errors: string[];
}

interface Server {
  kind: RelayKind;
  url?: string;
  dyad?: RelayTask['dyad'];
  redisUrl?: string;
  scrape?: () => Promise<Scrape[]>;
  cpu(): { server: number; redis: number };
  shards(): number[];
  /** Seconds the server processes' main threads have waited for a CPU so far (summed), and how many processes. */
  waited(): { seconds: number; procs: number };
  stop(): Promise<void>;
}

/** Start one of the comparison servers in `bench/lib/peers/` and wait for its port. */
export async function startPeerServer(file: string): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const child = spawnRaised(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench/lib/peers', file)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  let errText = '';
  child.stderr?.on('data', (d: Buffer) => {
    errText = (errText + d.toString()).slice(-2_000);
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /listening on (\d+)/.exec(buf);
      if (m?.[1]) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code}: ${errText.trim().split('\n').pop() ?? ''}`)));
    setTimeout(() => reject(new Error(`${file} did not start`)), 15_000).unref();
  });
  return {
    url: `ws://127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(3_000)]);
      child.kill('SIGKILL');
    },
  };
}

const TOPOLOGY_OF: Record<Exclude<RelayTarget, 'echo' | 'peerjs'>, TopologyName> = {
  'dyad-memory': 'memory',
  'dyad-redis-same': 'redis-1',
  'dyad-redis-cross': 'redis-2',
  'dyad-cluster-cross': 'cluster-2',
};

async function startTarget(ctx: BenchContext, target: RelayTarget): Promise<Server> {
  if (target === 'echo' || target === 'peerjs') {
    const s = await startPeerServer(target === 'echo' ? 'echo-server.ts' : 'peerjs-server.ts');
    return {
      kind: target,
      url: s.url,
      cpu: () => ({ server: cpuSeconds(s.pid), redis: 0 }),
      shards: () => [],
      waited: () => ({ seconds: runQueueSeconds(s.pid), procs: 1 }),
      stop: s.stop,
    };
  }
  const topoName = TOPOLOGY_OF[target];
  const topo: Topology = await startTopology(topoName, { label: `relay-${topoName}`, cpuProfDir: ctx.cpuProfDir });
  const [m1, m2] = [topo.matchingWs[0] ?? '', topo.matchingWs[1] ?? topo.matchingWs[0] ?? ''];
  const [s1, s2] = [topo.signallingWs[0] ?? '', topo.signallingWs[1] ?? topo.signallingWs[0] ?? ''];
  return {
    kind: 'dyad',
    // Across processes: member A on process 1 for both sockets, member B on process 2.
    dyad: { matchingA: m1, matchingB: m2, signallingA: s1, signallingB: s2 },
    redisUrl: topo.redis?.url,
    scrape: () => topo.scrape(),
    cpu: () => {
      const c = topo.cpu();
      return { server: c.dyad, redis: c.redis };
    },
    shards: () => topo.shards(),
    waited: () => topo.waited(),
    stop: () => topo.stop(),
  };
}

function tasks(ctx: BenchContext, server: Server, load: RelayTask['load'], tag: string, tailMs = 0): RelayTask[] {
  const r = ctx.profile.relay;
  const n = ctx.workers.size;
  return split(r.pairs, n).map((pairs, i) => ({
    kind: 'relay',
    server: server.kind,
    pairs,
    load: load.type === 'rate' ? { type: 'rate', rate: load.rate / n } : load,
    warmupMs: r.warmupMs,
    durationMs: r.durationMs,
    tailMs,
    dyad: server.dyad,
    url: server.url,
    tag: `${tag}w${i}`,
  }));
}

const rate = (rs: RelayResult[]): number => rs.reduce((s, r) => s + r.delivered / (r.windowMs / 1000), 0);

/** CPU of the server and the clients over the middle of the workers' load phase. */
async function cpuInWindow(
  ctx: BenchContext,
  server: Server,
  done: Promise<unknown>,
): Promise<{ server: number; redis: number; clients: number; shards: number[] }> {
  const r = ctx.profile.relay;
  // The load starts once every worker has its pairs set up.
  while ((ctx.workers.progress().loading ?? 0) < ctx.workers.size) {
    if (await Promise.race([done.then(() => true), sleep(50).then(() => false)])) return { server: Number.NaN, redis: Number.NaN, clients: Number.NaN, shards: [] };
  }
  await sleep(r.warmupMs);
  const c0 = server.cpu();
  const s0 = server.shards();
  const w0 = ctx.workers.cpuSeconds();
  const t0 = performance.now();
  await sleep(r.durationMs * 0.7);
  const secs = (performance.now() - t0) / 1000;
  const c1 = server.cpu();
  const s1 = server.shards();
  const w1 = ctx.workers.cpuSeconds();
  return {
    server: (c1.server - c0.server) / secs,
    redis: (c1.redis - c0.redis) / secs,
    clients: (w1 - w0) / secs,
    shards: s1.map((c, i) => (c - (s0[i] ?? 0)) / secs),
  };
}

/** One run at the ceiling: a fixed number of frames in flight, as fast as the server turns them round. */
interface Ceiling {
  throughput: number;
  saturatedLatency: Summary;
  cpu: { server: number; redis: number; clients: number };
  shards: number[];
  serverUsPerFrame: number;
  clientUsPerFrame: number;
  errors: Record<string, number>;
  redis?: RedisProfile;
}

/** Add the error counts of `from` (load-generator results, or rounds) into `into`. */
const addErrors = (into: Record<string, number>, from: readonly { errors: Record<string, number> }[]): void => {
  for (const x of from) for (const [k, v] of Object.entries(x.errors)) into[k] = (into[k] ?? 0) + v;
};

async function ceiling(ctx: BenchContext, target: RelayTarget, server: Server, runId: string, diagnose: boolean): Promise<Ceiling> {
  const r = ctx.profile.relay;
  const tail = diagnose ? REDIS_DIAG_MS + 1_500 : 0;
  const satRun = ctx.workers.run<RelayResult>(tasks(ctx, server, { type: 'window', window: r.window }, `${runId}s`, tail));
  const { shards, ...cpu } = await cpuInWindow(ctx, server, satRun);
  let redis: RedisProfile | undefined;
  if (diagnose && server.redisUrl && server.scrape) {
    // In the workers' tail, after their measured window.
    await sleep(r.durationMs * 0.3 + 700);
    const scrapeOps = server.scrape;
    ctx.progress.watch(() => `relay, ${RELAY_LABEL[target]}: logging Redis commands for ${REDIS_DIAG_MS / 1000} s`);
    redis = await profileRedis(server.redisUrl, REDIS_DIAG_MS, async () =>
      (await scrapeOps()).reduce((n, s) => n + total(s, 'dyad_messages_total{channel="signalling"}'), 0),
    );
  }
  const sat = await satRun;
  const errors: Record<string, number> = {};
  addErrors(errors, sat);
  const throughput = rate(sat);
  return {
    throughput,
    saturatedLatency: summarize(mergeSamples(sat.map((x) => x.latencyMs))),
    cpu,
    shards,
    serverUsPerFrame: ((cpu.server + cpu.redis) / throughput) * 1e6,
    clientUsPerFrame: (cpu.clients / throughput) * 1e6,
    errors,
    redis,
  };
}

/** The rest of a target's figures, once: latency at a fixed offered rate (with the servers' GC pauses), and chat. */
async function atRate(ctx: BenchContext, server: Server, runId: string): Promise<Pick<RelayRun, 'offered' | 'delivered' | 'latency' | 'gc' | 'cpuWait' | 'chat' | 'errors'>> {
  const r = ctx.profile.relay;
  // The same offered rate for every server, with the servers' GC pauses over that run (set-up included).
  const gc0 = server.scrape ? await server.scrape() : undefined;
  const w0 = server.waited();
  const t0 = performance.now();
  const fixed = await ctx.workers.run<RelayResult>(tasks(ctx, server, { type: 'rate', rate: r.rate }, `${runId}r`));
  const secs = (performance.now() - t0) / 1000;
  const w1 = server.waited();
  const cpuWait = secs > 0 && w1.procs > 0 ? (w1.seconds - w0.seconds) / (w1.procs * secs) : undefined;
  const gc = gc0 && server.scrape ? gcPauses(gc0, await server.scrape(), secs) : undefined;
  const chat = server.dyad ? await chatLatency(server.dyad.matchingA, server.dyad.matchingB, `${runId}chat`, r.chatLines, CHAT_GAP_MS) : undefined;
  const errors: Record<string, number> = {};
  addErrors(errors, fixed);
  return { offered: r.rate, delivered: rate(fixed), latency: summarize(mergeSamples(fixed.map((x) => x.latencyMs))), gc, ...(cpuWait === undefined ? {} : { cpuWait }), chat, errors };
}

export async function runRelay(ctx: BenchContext): Promise<RelayResults> {
  const out: RelayResults = { runs: [], ratios: {}, rounds: {}, unavailable: {}, errors: [] };
  const rounds = ctx.profile.relay.rounds;
  const runId = Date.now().toString(36);
  const started: { target: RelayTarget; server: Server; ceilings: Ceiling[]; failed?: boolean }[] = [];
  const fail = async (target: RelayTarget, err: unknown): Promise<void> => {
    const msg = `relay, ${RELAY_LABEL[target]}: failed: ${err instanceof Error ? err.message : String(err)}`;
    out.errors.push(msg);
    ctx.progress.line(msg);
    await ctx.workers.idle();
  };
  try {
    // Every server is started first; then rounds, each server in turn in each, so that a slow
    // spell of a shared machine falls on all of them alike, and the ratios are the rounds' medians.
    for (const target of ctx.profile.relay.targets) {
      if ((target.startsWith('dyad-redis') || target.startsWith('dyad-cluster')) && ctx.redisUnavailable) {
        out.unavailable[target] = ctx.redisUnavailable;
        continue;
      }
      try {
        started.push({ target, server: await startTarget(ctx, target), ceilings: [] });
      } catch (err) {
        if (!(err instanceof Unavailable)) throw err;
        out.unavailable[target] = err.message;
        ctx.redisUnavailable = err.message;
        ctx.progress.line(`relay, ${RELAY_LABEL[target]}: redis mode unavailable (${err.message})`);
      }
    }
    const tagOf = (t: RelayTarget): string => `${runId}${t.replace(/[^a-z]/g, '').slice(0, 6)}`;
    for (let round = 0; round < rounds; round++) {
      for (const s of started) {
        if (s.failed) continue;
        ctx.progress.watch(() => `relay, ${RELAY_LABEL[s.target]}, round ${round + 1} of ${rounds}: ${(ctx.workers.progress().delivered ?? 0).toLocaleString('en-US')} frames delivered`);
        try {
          // Redis's command log in the last round only.
          s.ceilings.push(await ceiling(ctx, s.target, s.server, `${tagOf(s.target)}${round}`, s.server.redisUrl !== undefined && ctx.diagnoseRedis && round === rounds - 1));
        } catch (err) {
          s.failed = true;
          await fail(s.target, err);
        }
      }
    }
    for (const s of started) {
      if (s.failed || s.ceilings.length === 0) continue;
      ctx.progress.watch(() => `relay, ${RELAY_LABEL[s.target]}, at ${ctx.profile.relay.rate.toLocaleString('en-US')}/s: ${(ctx.workers.progress().delivered ?? 0).toLocaleString('en-US')} frames delivered`);
      let rest: Awaited<ReturnType<typeof atRate>>;
      try {
        rest = await atRate(ctx, s.server, tagOf(s.target));
      } catch (err) {
        await fail(s.target, err);
        continue;
      }
      // The round of the median CPU per frame stands for the target; the Redis log is the last round's.
      const mid = middle(s.ceilings, (c) => c.serverUsPerFrame) as Ceiling;
      const errors = { ...rest.errors };
      addErrors(errors, s.ceilings);
      const run: RelayRun = {
        target: s.target,
        throughput: mid.throughput,
        saturatedLatency: mid.saturatedLatency,
        offered: rest.offered,
        delivered: rest.delivered,
        latency: rest.latency,
        errors,
        cpu: mid.cpu,
        shards: mid.shards,
        serverUsPerFrame: mid.serverUsPerFrame,
        clientUsPerFrame: mid.clientUsPerFrame,
        redis: s.ceilings.at(-1)?.redis,
        chat: rest.chat,
        gc: rest.gc,
        ...(rest.cpuWait === undefined ? {} : { cpuWait: rest.cpuWait }),
        load1: load1(),
        rounds: s.ceilings.map((c) => ({ throughput: c.throughput, serverUsPerFrame: c.serverUsPerFrame })),
      };
      out.runs.push(run);
      ctx.progress.done();
      ctx.progress.line(
        `relay, ${RELAY_LABEL[s.target]}: ${Math.round(run.throughput).toLocaleString('en-US')} frames/s at the ceiling ` +
          `(server ${run.cpu.server.toFixed(2)} cores, clients ${run.cpu.clients.toFixed(2)}; the round of the median CPU per frame, ` +
          `${s.ceilings.map((c) => `${c.serverUsPerFrame.toFixed(1)} µs`).join(', ')} by round); ` +
          `at ${run.offered.toLocaleString('en-US')}/s p50 ${run.latency.p50.toFixed(2)} ms p99 ${run.latency.p99.toFixed(2)} ms` +
          `${run.gc ? `; ${gcText(run.gc)}` : ''}` +
          `${run.cpuWait === undefined ? '' : `; ${cpuWaitText(run.cpuWait)}`}` +
          `${run.shards.length > 1 ? `; Redis cores per shard ${run.shards.map((c) => c.toFixed(2)).join(', ')}` : ''}` +
          `${Object.keys(run.errors).length ? `; errors ${JSON.stringify(run.errors)}` : ''}`,
      );
    }
  } finally {
    ctx.progress.unwatch();
    for (const s of started) await s.server.stop();
  }
  // Each ratio round by round (both set-ups measured in that round), then the median.
  const ceilings = (t: RelayTarget): Ceiling[] | undefined => {
    const s = started.find((x) => x.target === t && !x.failed);
    return s && out.runs.some((r) => r.target === t) ? s.ceilings : undefined;
  };
  const byRound = (a: RelayTarget, b: RelayTarget, f: (x: Ceiling, y: Ceiling) => number): number[] | undefined => {
    const [xs, ys] = [ceilings(a), ceilings(b)];
    if (!xs || !ys) return undefined;
    return xs.slice(0, ys.length).map((x, i) => f(x, ys[i] as Ceiling));
  };
  const put = (key: keyof RelayResults['ratios'], each: number[] | undefined): void => {
    if (!each?.length) return;
    out.ratios[key] = medianOf(each);
    (out.rounds ??= {})[key] = each;
  };
  const faster = (x: Ceiling, y: Ceiling): number => x.throughput / y.throughput;
  const cheaper = (x: Ceiling, y: Ceiling): number => y.serverUsPerFrame / x.serverUsPerFrame;
  put('vsEcho', byRound('dyad-memory', 'echo', faster));
  put('vsPeerjs', byRound('dyad-memory', 'peerjs', faster));
  put('crossVsEcho', byRound('dyad-redis-cross', 'echo', faster));
  put('crossVsPeerjs', byRound('dyad-redis-cross', 'peerjs', faster));
  put('cpuVsEcho', byRound('dyad-memory', 'echo', cheaper));
  put('cpuVsPeerjs', byRound('dyad-memory', 'peerjs', cheaper));
  put('sameVsMemory', byRound('dyad-redis-same', 'dyad-memory', (x, y) => x.serverUsPerFrame / y.serverUsPerFrame));
  return out;
}
