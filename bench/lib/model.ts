// Capacity model (issue #11): what each kind of work costs on the Redis
// set-up (two processes sharing one Redis), measured one kind at a time; the
// cores a load needs, predicted from those costs; the topology that serves
// the full scale; and a check: a scaled-down mix of all the work at once,
// measured against its prediction.
//
//   Dyad cores  = P × fixed + held × c_held + pairings/s × c_pair + frames/s × c_frame + chats/s × c_chat
//   Redis cores = the same with Redis's costs (one Redis: every lifecycle key is in one slot)
//
// CPU is read from /proc for the server processes and Redis, so the load
// generators sharing the machine do not count; other work on the machine
// still moves the CPU per operation (a process woken less often does more per
// wake-up). The sums over-count work that runs together (MODEL_CHECK), and
// docs/SCALING.md ("Capacity model") lists the model's other limits.
import { Redis } from 'ioredis';
import { load1, split, type BenchContext, type ModelSettings } from './context.js';
import { Workers } from './loadgen.js';
import { memoryAfterGc, sleep } from './procs.js';
import { total, type Scrape } from './prom.js';
import { summarize, mergeSamples, type Summary } from './stats.js';
import type { ArrivalsResult, ArrivalsTask, HoldStatus, HoldTask, RelayResult, RelayTask } from './tasks.js';
import { startTopology, Unavailable, type Topology } from './topology.js';

/** The scale the model is asked about (issue #11): people online, pairings and signal frames per second. */
export const FULL_SCALE = { held: 100_000, pairingsPerSec: 2_000, framesPerSec: 50_000 } as const;
/** Chat is given per this many messages a second (the issue gives no figure for it). */
export const CHAT_UNIT = 1_000;
/**
 * The scaled-down check passes when measured ÷ predicted cores lies in this
 * range, for Dyad and for Redis. The model adds up costs measured one kind of
 * work at a time, and a process does part of its work per wake-up rather than
 * per operation (a wake-up serves whatever has arrived), so work running
 * together costs less than the sum: the model is an upper bound, meant for
 * provisioning. Measured above the prediction (beyond noise) means it would
 * under-provision; far below, that it wastes too much.
 */
export const MODEL_CHECK = { min: 0.5, max: 1.1 } as const;
/** Load kept on after a measured window, so the window ends inside the load. */
const TAIL_MS = 1_000;
/** Wait after the held sessions are open before their window: their pairing and set-up settle. */
const HELD_SETTLE_MS = 2_000;

/** CPU of one unit of work, microseconds of one core, and the rate it was measured at. */
export interface OpCost {
  dyadUs: number;
  redisUs: number;
  /** Units per second (held: sessions) during the measurement. */
  at: number;
}

export interface ModelCosts {
  /** One process with no load (heartbeats, the reaper, the inbox reader): µs per second. */
  fixed: { dyadUs: number; redisUs: number };
  /** One held session (paired, idle) for one second. */
  held: OpCost;
  /** One pairing: two one-trip arrivals, matched, both closed. */
  pairing: OpCost;
  /** One signal frame relayed between members on different processes. */
  frame: OpCost;
  /** One chat message between members on different processes. */
  chat?: OpCost;
  memory: {
    /** RSS of one process with nothing held, after a full GC, bytes. */
    processBase: number;
    /** Per held session: Dyad RSS (after GC) and Redis `used_memory`, bytes. */
    dyadPerHeld: number;
    redisPerHeld: number;
    redisBase: number;
  };
}

export interface Load {
  processes: number;
  held: number;
  pairingsPerSec: number;
  framesPerSec: number;
  chatsPerSec: number;
}

export interface Cores {
  dyad: number;
  redis: number;
}

export interface Prediction extends Cores {
  /** Each term of the sums. */
  parts: Record<'fixed' | 'held' | 'pairings' | 'frames' | 'chat', Cores>;
}

/** One measured window: what the servers counted and the cores they used. */
export interface Window {
  seconds: number;
  cores: Cores;
  pairingsPerSec: number;
  framesPerSec: number;
  chatsPerSec: number;
  load1: number;
}

export interface Plan {
  scale: Load;
  ceiling: number;
  predicted: Prediction;
  /** Processes needed so that none is busier than the ceiling. */
  processes: number;
  /** Redis shards at the ceiling if the work spread evenly over them. */
  shardsIfSpread: number;
  /**
   * The cores of the shard holding every lifecycle key (the `{dyad}` slot):
   * all of Redis's work but the relayed frames, which spread over every
   * shard through the processes' lanes (> ceiling: does not fit).
   */
  stateShardCores: number;
  /** What one process, or one Redis shard, carries of each kind of work alone at the ceiling. */
  perProcess: { held: number; pairingsPerSec: number; framesPerSec: number; chatsPerSec: number };
  perShard: { held: number; pairingsPerSec: number; framesPerSec: number; chatsPerSec: number };
  memory: { dyadBytes: number; perProcessBytes: number; redisBytes: number; socketsPerProcess: number };
  /** What each CHAT_UNIT chat messages a second would add. */
  chatUnit?: Cores;
}

export interface ModelCheck {
  /** What was asked for, and what the servers counted (held: sessions the generators held open). */
  nominal: Load;
  measured: Load;
  /** From the measured rates, so the check is of the model, not of the load generators. */
  predicted: Prediction;
  cores: Cores;
  /** Measured ÷ predicted. */
  ratio: Cores & { total: number };
  relayLatency: Summary;
  errors: Record<string, number>;
  load1: number;
}

export interface ModelResults {
  settings: ModelSettings;
  windows: Partial<Record<'idle' | 'held' | 'pairing' | 'frame' | 'chat' | 'mixed', Window>>;
  costs: ModelCosts;
  full: Plan;
  check?: ModelCheck;
  errors: string[];
}

// ------------------------------------------------------------------ the arithmetic

const us = (cores: number): number => cores * 1e6;
const cores = (microseconds: number): number => microseconds / 1e6;
const atLeast0 = (v: number): number => (Number.isFinite(v) ? Math.max(0, v) : 0);

/** Cores a load needs, term by term. */
export function predict(c: ModelCosts, l: Load): Prediction {
  const term = (n: number, cost: { dyadUs: number; redisUs: number } | undefined): Cores =>
    cost ? { dyad: cores(n * atLeast0(cost.dyadUs)), redis: cores(n * atLeast0(cost.redisUs)) } : { dyad: 0, redis: 0 };
  const parts = {
    fixed: term(l.processes, c.fixed),
    held: term(l.held, c.held),
    pairings: term(l.pairingsPerSec, c.pairing),
    frames: term(l.framesPerSec, c.frame),
    chat: term(l.chatsPerSec, c.chat),
  };
  const sum = (k: keyof Cores): number => Object.values(parts).reduce((n, p) => n + p[k], 0);
  return { dyad: sum('dyad'), redis: sum('redis'), parts };
}

/** The topology for `scale` with no process and no shard busier than `ceiling`. */
export function plan(c: ModelCosts, scale: Omit<Load, 'processes'>, ceiling: number): Plan {
  const variable = predict(c, { ...scale, processes: 0 });
  const room = ceiling - cores(atLeast0(c.fixed.dyadUs));
  const processes = Math.max(1, Math.ceil(variable.dyad / room));
  const load: Load = { ...scale, processes };
  const predicted = predict(c, load);
  const each = (budget: number, unitUs: number | undefined): number => (unitUs && unitUs > 0 ? budget / cores(unitUs) : Number.POSITIVE_INFINITY);
  const dyadPerSession = atLeast0(c.memory.dyadPerHeld);
  return {
    scale: load,
    ceiling,
    predicted,
    processes,
    shardsIfSpread: Math.max(1, Math.ceil(predicted.redis / ceiling)),
    stateShardCores: predicted.redis - predicted.parts.frames.redis,
    perProcess: {
      held: each(room, c.held.dyadUs),
      pairingsPerSec: each(room, c.pairing.dyadUs),
      framesPerSec: each(room, c.frame.dyadUs),
      chatsPerSec: each(room, c.chat?.dyadUs),
    },
    perShard: {
      held: each(ceiling, c.held.redisUs),
      pairingsPerSec: each(ceiling, c.pairing.redisUs),
      framesPerSec: each(ceiling, c.frame.redisUs),
      chatsPerSec: each(ceiling, c.chat?.redisUs),
    },
    memory: {
      perProcessBytes: c.memory.processBase + (scale.held / processes) * dyadPerSession,
      dyadBytes: processes * c.memory.processBase + scale.held * dyadPerSession,
      redisBytes: c.memory.redisBase + scale.held * atLeast0(c.memory.redisPerHeld),
      socketsPerProcess: Math.ceil(scale.held / processes),
    },
    chatUnit: c.chat ? { dyad: cores(CHAT_UNIT * atLeast0(c.chat.dyadUs)), redis: cores(CHAT_UNIT * atLeast0(c.chat.redisUs)) } : undefined,
  };
}

// ------------------------------------------------------------------ measuring

interface Reading {
  t: number;
  cpu: { dyad: number; redis: number };
  s: Scrape[];
}

const PAIRS = 'dyad_pairs_total';
const SIGNALS = 'dyad_messages_total{channel="signalling"}';
const CHATS = 'dyad_messages_total{channel="matching"}';
const sumOf = (s: Scrape[], name: string): number => s.reduce((n, x) => n + total(x, name), 0);

async function reading(topo: Topology): Promise<Reading> {
  const s = await topo.scrape();
  return { t: performance.now(), cpu: topo.cpu(), s };
}

/** Cores used and operations counted by the servers over the next `ms`. */
async function measureWindow(topo: Topology, ms: number): Promise<Window> {
  const a = await reading(topo);
  await sleep(ms);
  const b = await reading(topo);
  const secs = (b.t - a.t) / 1000;
  const rate = (name: string): number => (sumOf(b.s, name) - sumOf(a.s, name)) / secs;
  return {
    seconds: secs,
    cores: { dyad: (b.cpu.dyad - a.cpu.dyad) / secs, redis: (b.cpu.redis - a.cpu.redis) / secs },
    pairingsPerSec: rate(PAIRS),
    framesPerSec: rate(SIGNALS),
    chatsPerSec: rate(CHATS),
    load1: load1(),
  };
}

async function redisUsedMemory(url: string): Promise<number> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await r.connect();
    const m = /used_memory:(\d+)/.exec(await r.info('memory'));
    return m?.[1] ? Number(m[1]) : Number.NaN;
  } finally {
    r.disconnect();
  }
}

/** RSS of the Dyad processes after a full GC in each, bytes. */
async function dyadMemory(topo: Topology): Promise<number> {
  let sum = 0;
  for (const p of topo.procs) {
    if (!p.inspector) return Number.NaN;
    sum += (await memoryAfterGc(p.inspector)).rss;
  }
  return sum;
}

/** Resolves once the workers' relay load has started (its pairs are set up); throws if their run ended first. */
async function loadStarted(ctx: BenchContext, run: Promise<unknown>): Promise<void> {
  while ((ctx.workers.progress().loading ?? 0) < 1) {
    if (await Promise.race([run.then(() => true), sleep(50).then(() => false)])) throw new Error('the load ended before it started');
  }
}

function relayTask(m: ModelSettings, topo: Topology, frames: 'signal' | 'chat', rate: number, tag: string): RelayTask {
  const [ma = '', mb = ''] = topo.matchingWs;
  const [sa = '', sb = ''] = topo.signallingWs;
  return {
    kind: 'relay',
    server: 'dyad',
    pairs: m.relayPairs,
    load: { type: 'rate', rate },
    warmupMs: m.warmupMs,
    durationMs: m.windowMs + TAIL_MS,
    tailMs: 0,
    frames,
    // Across processes: member A on process 1 for both its sockets, member B on process 2.
    dyad: { matchingA: ma, matchingB: mb, signallingA: sa, signallingB: sb },
    tag,
  };
}

function arrivalsTask(topo: Topology, pairingsPerSec: number, durationMs: number, startOnGo = false): ArrivalsTask {
  return { kind: 'arrivals', matchingWs: topo.matchingWs, rate: 2 * pairingsPerSec, durationMs, settleMs: 1_000, maxOpen: 3_000, startOnGo };
}

const addErrors = (into: Record<string, number>, from: Record<string, number>): void => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

/** A relay load alone (signal frames or chat) and its window. */
async function relayWindow(ctx: BenchContext, topo: Topology, frames: 'signal' | 'chat', rate: number, tag: string): Promise<{ win: Window; result: RelayResult }> {
  const m = ctx.profile.model;
  const run = ctx.workers.run<RelayResult>([relayTask(m, topo, frames, rate, tag)]);
  await loadStarted(ctx, run);
  await sleep(m.warmupMs);
  const win = await measureWindow(topo, m.windowMs);
  const [result] = await run;
  if (!result) throw new Error('no answer from the load generator');
  return { win, result };
}

/** The CPU of `ops` units a second over what the idle processes use, per unit. */
function perOp(win: Window, idle: Window, ops: number, what: string): OpCost {
  if (!(ops > 0)) throw new Error(`${what}: the servers counted none in the window`);
  return { dyadUs: us(win.cores.dyad - idle.cores.dyad) / ops, redisUs: us(win.cores.redis - idle.cores.redis) / ops, at: ops };
}

export async function runModel(ctx: BenchContext): Promise<ModelResults> {
  const m = ctx.profile.model;
  if (ctx.workers.size < 2) throw new Error('the model needs at least 2 load generators (--workers)');
  if (ctx.redisUnavailable) throw new Unavailable(ctx.redisUnavailable);
  const topo = await startTopology('redis-2', { label: 'model-redis-2', inspect: true, cpuProfDir: ctx.cpuProfDir });
  // The held sessions have load generators of their own: they stay open while the others run.
  const holders = await Workers.start(2);
  const tag = Date.now().toString(36);
  const windows: ModelResults['windows'] = {};
  const errors: string[] = [];
  const step = (text: string): void => ctx.progress.watch(() => `model: ${text}`);
  try {
    if (!topo.redis) throw new Error('the Redis set-up started without Redis');
    const redisUrl = topo.redis.url;
    await sleep(1_000);
    const processBase = (await dyadMemory(topo)) / topo.procs.length;
    step('the processes with no load');
    const idle = await measureWindow(topo, m.windowMs);
    windows.idle = idle;
    const fixed = { dyadUs: us(idle.cores.dyad) / topo.procs.length, redisUs: us(idle.cores.redis) / topo.procs.length };

    step(`${m.framesPerSec.toLocaleString('en-US')} signal frames/s across processes`);
    const sig = await relayWindow(ctx, topo, 'signal', m.framesPerSec, `${tag}f`);
    windows.frame = sig.win;
    const frame = perOp(sig.win, idle, sig.win.framesPerSec, 'signal frames');

    let chat: OpCost | undefined;
    try {
      step(`${m.chatsPerSec.toLocaleString('en-US')} chat messages/s across processes`);
      const ch = await relayWindow(ctx, topo, 'chat', m.chatsPerSec, `${tag}c`);
      windows.chat = ch.win;
      chat = perOp(ch.win, idle, ch.win.chatsPerSec, 'chat');
    } catch (err) {
      errors.push(`chat: ${err instanceof Error ? err.message : String(err)}`);
      await ctx.workers.idle();
    }

    step(`${m.pairingsPerSec.toLocaleString('en-US')} pairings/s (${2 * m.pairingsPerSec} arrivals/s)`);
    const arrivals = ctx.workers.run<ArrivalsResult>([arrivalsTask(topo, m.pairingsPerSec, m.warmupMs + m.windowMs + TAIL_MS)]);
    await sleep(m.warmupMs);
    windows.pairing = await measureWindow(topo, m.windowMs);
    await arrivals;
    const pairing = perOp(windows.pairing, idle, windows.pairing.pairingsPerSec, 'pairings');

    const redisBefore = await redisUsedMemory(redisUrl);
    const dyadBefore = await dyadMemory(topo);
    step(`opening ${m.held.toLocaleString('en-US')} held sessions`);
    const holdTasks: HoldTask[] = Array.from({ length: holders.size }, (_, i) => ({
      kind: 'hold',
      matchingWs: topo.matchingWs[i % topo.matchingWs.length] ?? '',
      localAddresses: [`127.0.0.${2 + i}`],
      rate: 2_000,
      concurrency: 200,
    }));
    await holders.hold(holdTasks);
    const grown: HoldStatus[] = await holders.grow(split(m.held, holders.size));
    const held = grown.reduce((n, s) => n + s.open, 0);
    await sleep(HELD_SETTLE_MS);
    step(`${held.toLocaleString('en-US')} held sessions`);
    windows.held = await measureWindow(topo, m.windowMs);
    const heldCost = perOp(windows.held, idle, held, 'held sessions');
    const memory = {
      processBase,
      dyadPerHeld: ((await dyadMemory(topo)) - dyadBefore) / held,
      redisPerHeld: ((await redisUsedMemory(redisUrl)) - redisBefore) / held,
      redisBase: redisBefore,
    };
    const costs: ModelCosts = { fixed, held: heldCost, pairing, frame, chat, memory };
    const full = plan(costs, { ...FULL_SCALE, chatsPerSec: 0 }, m.ceiling);

    // The check: every kind of work at once, on top of the held sessions.
    let check: ModelCheck | undefined;
    try {
      step(`mixed: ${held.toLocaleString('en-US')} held, ${m.pairingsPerSec}/s pairings, ${m.framesPerSec.toLocaleString('en-US')} frames/s`);
      // The arrivals start with the frames, once the frames' pairs are set up.
      const mix = ctx.workers.run<RelayResult | ArrivalsResult>([
        relayTask(m, topo, 'signal', m.framesPerSec, `${tag}m`),
        arrivalsTask(topo, m.pairingsPerSec, m.warmupMs + m.windowMs + TAIL_MS, true),
      ]);
      try {
        await loadStarted(ctx, mix);
      } finally {
        // Also when the frames could not start: the arrivals must not wait for ever.
        ctx.workers.go();
      }
      await sleep(m.warmupMs);
      const win = await measureWindow(topo, m.windowMs);
      windows.mixed = win;
      const [relayResult, arrivalResult] = (await mix) as [RelayResult, ArrivalsResult];
      const stillHeld = holders.progress().open ?? held;
      const measuredLoad: Load = {
        processes: topo.procs.length,
        held: stillHeld,
        pairingsPerSec: win.pairingsPerSec,
        framesPerSec: win.framesPerSec,
        chatsPerSec: win.chatsPerSec,
      };
      const predicted = predict(costs, measuredLoad);
      const errs: Record<string, number> = {};
      addErrors(errs, relayResult.errors);
      addErrors(errs, arrivalResult.failed);
      check = {
        nominal: { processes: topo.procs.length, held: m.held, pairingsPerSec: m.pairingsPerSec, framesPerSec: m.framesPerSec, chatsPerSec: 0 },
        measured: measuredLoad,
        predicted,
        cores: win.cores,
        ratio: {
          dyad: win.cores.dyad / predicted.dyad,
          redis: win.cores.redis / predicted.redis,
          total: (win.cores.dyad + win.cores.redis) / (predicted.dyad + predicted.redis),
        },
        relayLatency: summarize(mergeSamples([relayResult.latencyMs])),
        errors: errs,
        load1: load1(),
      };
    } catch (err) {
      errors.push(`mixed load: ${err instanceof Error ? err.message : String(err)}`);
      await ctx.workers.idle();
    }
    step('closing the held sessions');
    await holders.release(holders.size);
    return { settings: m, windows, costs, full, check, errors };
  } finally {
    ctx.progress.unwatch();
    await holders.close();
    await topo.stop();
  }
}
