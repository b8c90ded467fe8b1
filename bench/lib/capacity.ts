// Capacity: how many idle sessions one process holds, and what each costs.
// Sessions are one-trip text starts that pair up and then sit in their rooms
// with nothing to say (the common state of a chat server between messages);
// clients come from 127.0.0.2, 127.0.0.3 … so the ephemeral ports of one
// source address (~28k) are not the limit.
import { fmtInt, load1, split, type BenchContext } from './context.js';
import { Workers } from './loadgen.js';
import { effectiveNofile, memoryAfterGc, rssBytes, sleep, type MemoryReading } from './procs.js';
import { linearFit } from './stats.js';
import type { HoldStatus, HoldTask } from './tasks.js';
import { startTopology, type Topology } from './topology.js';

export interface CapacityPoint {
  target: number;
  sessions: number;
  rss: number;
  heapUsed: number;
  external: number;
  /** Seconds the step took to open its sessions. */
  seconds: number;
}

export interface CapacityResults {
  points: CapacityPoint[];
  baseline: MemoryReading;
  /** After holding the top step for `holdMs`. */
  held: { sessions: number; rss: number; heapUsed: number; holdMs: number };
  released: MemoryReading;
  /** Most sessions open at once, and failures on the way. */
  maxSessions: number;
  failed: Record<string, number>;
  closedUnexpectedly: Record<string, number>;
  /** Least-squares slopes over the steps, bytes per session. */
  perSession: { rss: number; heap: number; external: number };
  /** Plain deltas from the baseline to the top step, bytes per session. */
  perSessionDelta: { rss: number; heap: number };
  openRate: number;
  /** Open-file limit of every process of the run. */
  nofile: number;
  /** True when the steps were cut short by that limit rather than by the server. */
  limitedByOpenFiles: boolean;
  load1: number;
}

const mergeCounts = (statuses: HoldStatus[], key: 'failed' | 'closedUnexpectedly'): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const s of statuses) for (const [k, v] of Object.entries(s[key])) out[k] = (out[k] ?? 0) + v;
  return out;
};

/** File descriptors a process keeps for other things than client sockets (listeners, inspector, stdio, …). */
const FD_MARGIN = 200;

/**
 * The steps this machine allows: one socket is one file descriptor, so a
 * process holds at most its open-file limit of sessions. Steps above it are
 * replaced by one step just under it.
 */
export function feasibleSteps(steps: readonly number[], nofile: number): { steps: number[]; capped: boolean } {
  const max = Math.floor((nofile - FD_MARGIN) / 500) * 500;
  const ok = steps.filter((s) => s <= max);
  const capped = ok.length < steps.length;
  if (capped && (ok[ok.length - 1] ?? 0) < max) ok.push(max);
  return { steps: ok, capped };
}

export async function runCapacity(ctx: BenchContext): Promise<CapacityResults> {
  const c = ctx.profile.capacity;
  const nofile = effectiveNofile();
  const { steps, capped } = feasibleSteps(c.steps, nofile);
  const top = steps[steps.length - 1] ?? 0;
  if (capped) {
    ctx.progress.line(
      `capacity: this machine allows ${fmtInt(nofile)} open files per process (hard limit; raising it needs root with CAP_SYS_RESOURCE), ` +
        `so one process can hold at most ~${fmtInt(top)} sockets: growing to ${fmtInt(top)} instead of ${fmtInt(c.steps[c.steps.length - 1] ?? 0)}`,
    );
  }
  // The client side needs as many sockets, and its processes have the same limit.
  const needed = Math.max(ctx.workers.size, Math.ceil(top / (nofile - FD_MARGIN)));
  const own = needed > ctx.workers.size ? await Workers.start(needed) : undefined;
  const workers = own ?? ctx.workers;
  try {
    return await measure(ctx, workers, steps, nofile, capped);
  } finally {
    await own?.close();
  }
}

async function measure(ctx: BenchContext, workers: Workers, steps: number[], nofile: number, capped: boolean): Promise<CapacityResults> {
  const c = ctx.profile.capacity;
  const n = workers.size;
  const topo: Topology = await startTopology('memory', { label: 'capacity', inspect: true, cpuProfDir: ctx.cpuProfDir });
  const proc = topo.procs[0];
  if (!proc?.inspector || !proc.matchingWs) throw new Error('capacity: server started without an inspector');
  const inspector = proc.inspector;
  try {
    await sleep(500);
    const baseline = await memoryAfterGc(inspector);
    // Each worker gets its own source addresses.
    const perWorker = Math.max(1, Math.floor(c.addresses / n));
    const tasks: HoldTask[] = Array.from({ length: n }, (_, i) => ({
      kind: 'hold',
      matchingWs: proc.matchingWs ?? '',
      localAddresses: Array.from({ length: perWorker }, (_, k) => `127.0.0.${2 + i * perWorker + k}`),
      rate: c.rate / n,
      concurrency: 200,
    }));
    await workers.hold(tasks);
    const points: CapacityPoint[] = [{ target: 0, sessions: 0, rss: baseline.rss, heapUsed: baseline.heapUsed, external: baseline.external, seconds: 0 }];
    let statuses: HoldStatus[] = [];
    let failedTotal = 0;
    for (const target of steps) {
      ctx.progress.watch(() => {
        const pr = workers.progress();
        return `capacity: ${(pr.open ?? 0).toLocaleString('en-US')} sessions open (step to ${target.toLocaleString('en-US')}), server RSS ${(rssBytes(proc.pid) / 1048576).toFixed(0)} MiB`;
      });
      const t0 = performance.now();
      statuses = await workers.grow(split(target, n));
      const seconds = (performance.now() - t0) / 1000;
      await sleep(1_000);
      const m = await memoryAfterGc(inspector);
      const sessions = statuses.reduce((s, x) => s + x.open, 0);
      points.push({ target, sessions, rss: m.rss, heapUsed: m.heapUsed, external: m.external, seconds });
      const failed = mergeCounts(statuses, 'failed');
      failedTotal = Object.values(failed).reduce((a, b) => a + b, 0);
      ctx.progress.line(
        `capacity: ${sessions.toLocaleString('en-US')} sessions open in ${seconds.toFixed(1)} s, RSS ${(m.rss / 1048576).toFixed(0)} MiB, ` +
          `heap ${(m.heapUsed / 1048576).toFixed(0)} MiB${failedTotal ? `, failed ${JSON.stringify(failed)}` : ''}`,
      );
      // Past the first failures the process (or the box) is at its limit: stop growing.
      if (failedTotal > target * 0.01) break;
    }
    ctx.progress.watch(() => `capacity: holding ${(workers.progress().open ?? 0).toLocaleString('en-US')} sessions`);
    await sleep(c.holdMs);
    const heldMem = await memoryAfterGc(inspector);
    const heldSessions = workers.progress().open ?? 0;
    ctx.progress.watch(() => `capacity: closing ${(workers.progress().open ?? 0).toLocaleString('en-US')} sessions`);
    const end = await workers.release(n);
    await sleep(1_000);
    const released = await memoryAfterGc(inspector);
    const top = points[points.length - 1] as CapacityPoint;
    const xs = points.map((p) => p.sessions);
    return {
      points,
      baseline,
      held: { sessions: heldSessions, rss: heldMem.rss, heapUsed: heldMem.heapUsed, holdMs: c.holdMs },
      released,
      maxSessions: Math.max(...xs),
      failed: mergeCounts(statuses, 'failed'),
      // The workers' counters are cumulative: the last status covers the whole hold.
      closedUnexpectedly: mergeCounts(end, 'closedUnexpectedly'),
      perSession: {
        rss: linearFit(xs, points.map((p) => p.rss)).slope,
        heap: linearFit(xs, points.map((p) => p.heapUsed)).slope,
        external: linearFit(xs, points.map((p) => p.external)).slope,
      },
      perSessionDelta: {
        rss: top.sessions ? (top.rss - baseline.rss) / top.sessions : Number.NaN,
        heap: top.sessions ? (top.heapUsed - baseline.heapUsed) / top.sessions : Number.NaN,
      },
      openRate: c.rate,
      nofile,
      limitedByOpenFiles: capped,
      load1: load1(),
    };
  } finally {
    ctx.progress.unwatch();
    await topo.stop();
  }
}
