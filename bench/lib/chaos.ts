// Chaos soak: the seeded chaos crowd of the Redis tests
// (packages/server/test/redis/support/chaos.ts), grown to 100,000 sessions
// over four processes, first on one Redis and then on a Redis Cluster of three
// primaries. While it runs, a process is SIGKILLed every minute (a new one
// takes its place, so four stay up), Redis (on the Cluster: the shard holding
// the state) is restarted once, and a process is frozen (SIGSTOP) past its
// heartbeat and then let go (SIGCONT). The same invariants as the chaos test
// are checked from the clients' own logs, each session as soon as it ends.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BACKENDS, type Backend } from '../../packages/server/test/redis/support/backends.js';
import { Checker, FIRST_WORD_MS, runCrowd, settle, type ChaosSession, type Entry, type Invariant, type Target } from '../../packages/server/test/redis/support/chaos.js';
import { DyadProcess } from '../../packages/server/test/redis/support/dyad-process.js';
import { HeartbeatWatch } from '../../packages/server/test/redis/support/heartbeats.js';
import { load1, type BenchContext } from './context.js';
import { LOAD_ENV, sleep } from './procs.js';

export interface ChaosSettings {
  sessions: number;
  /** Sessions alive at once. */
  actors: number;
  /** Pause before each step of a session, ms. */
  stepMs: [number, number];
  /** Steps a session takes before it leaves. */
  steps: [number, number];
  /** Share of sessions that stay on for the end-of-run check. */
  lingerChance: number;
  processes: number;
  /** One process SIGKILLed (and replaced) this often. */
  killEveryMs: number;
  /** Redis (the state's shard on the Cluster) restarts once this share of the sessions has started (or of the time limit has passed). */
  restartAt: number;
  /** How long Redis stays down. */
  redisDownMs: number;
  /** A process is frozen once this share of the sessions has started (or of the time limit has passed)… */
  freezeAt: number;
  /** …for this long: past its heartbeat's 2 s lifetime and the reaper's 2 s of suspicion. */
  freezeMs: number;
  /** No session starts after this long; the run then drains and settles. */
  runLimitMs: number;
  settleMs: number;
  graceMs: number;
  /** How close to a crash, a restart, a freeze, or a drop or leave of one of its members, a one-sided pairing may be. */
  windowMs: number;
  seed: number;
}

export interface ChaosDisruption {
  /** Seconds since the start of the crowd. */
  atSec: number;
  what: string;
}

export interface ChaosRun {
  store: string;
  seed: number;
  /** Sessions asked for, and started. */
  target: number;
  sessions: number;
  pairings: number;
  /** Rooms seen by one member only, each near a crash, a drop or a restart. */
  oneSided: number;
  chats: number;
  signals: number;
  resumptions: number;
  /** Sockets upgraded and told nothing within FIRST_WORD_MS (the client gave up on them and went on). */
  silent: number;
  disruptions: ChaosDisruption[];
  byInvariant: Record<Invariant, number>;
  violations: string[];
  /** Processes that ended without being killed. */
  unexpectedExits: string[];
  stoppedAtLimit: boolean;
  lingering: number;
  churnSec: number;
  settleSec: number;
  sessionsPerSec: number;
  load1: { start: number; max: number; end: number };
  /** Where the logs of a run with violations went. */
  logFile?: string;
}

export interface ChaosResults {
  settings: ChaosSettings;
  runs: ChaosRun[];
}

const STORE_LABEL = ['one Redis', 'Redis Cluster, 3 primaries'] as const;
/** Logs of the last sessions to end, kept to explain a violation found later; and at most this many logs written. */
const RECENT_LOGS = 5_000;
const LOGS_KEPT = 60;
/** What each server's log keeps for a finding's evidence: a run's warnings and errors, at their busiest around a disruption. */
const SERVER_LOG_KEPT_CHARS = 1_000_000;
const SESSION_ID = /[\w-]{12}/g;

/**
 * The logs behind violations: a long run forgets each session once checked,
 * so the last few thousand are kept, and those a violation names are set aside
 * (now, or when they end).
 */
class Evidence {
  private readonly recent = new Map<string, { mode: string; log: Entry[] }>();
  private readonly wanted = new Set<string>();
  readonly kept = new Map<string, { mode: string; log: Entry[] }>();

  /** `s` ended and was checked; `found` is what it broke. */
  ended(s: ChaosSession, found: string[]): void {
    const entry = { mode: s.mode, log: s.log };
    this.recent.set(s.id, entry);
    if (this.recent.size > RECENT_LOGS) this.recent.delete(this.recent.keys().next().value ?? '');
    if (this.wanted.delete(s.id)) this.keep(s.id, entry);
    this.want(found);
  }

  want(violations: string[]): void {
    for (const id of violations.flatMap((v) => v.match(SESSION_ID) ?? [])) {
      const entry = this.recent.get(id);
      if (entry) this.keep(id, entry);
      else if (this.kept.size + this.wanted.size < LOGS_KEPT) this.wanted.add(id);
    }
  }

  private keep(id: string, entry: { mode: string; log: Entry[] }): void {
    if (this.kept.size < LOGS_KEPT) this.kept.set(id, entry);
  }
}

export async function runChaos(ctx: BenchContext): Promise<ChaosResults> {
  const settings = { ...ctx.profile.chaos, seed: Number(process.env.CHAOS_SEED ?? ctx.profile.chaos.seed) };
  const runs: ChaosRun[] = [];
  for (const [i, backend] of BACKENDS.entries()) {
    const store = STORE_LABEL[i] ?? backend.name;
    ctx.progress.line(`chaos soak, ${store}: ${settings.sessions.toLocaleString('en-US')} sessions over ${settings.processes} processes (seed ${settings.seed})`);
    const redis = await backend.start();
    try {
      runs.push(await runOne(ctx, settings, store, redis));
    } finally {
      await redis.stop();
    }
  }
  return { settings, runs };
}

async function runOne(ctx: BenchContext, c: ChaosSettings, store: string, redis: Backend): Promise<ChaosRun> {
  // Warnings too (a heal, a lapsed heartbeat, a message that could not be kept): with the errors, what a finding's log needs.
  const env = { ...LOAD_ENV, ...redis.env, ROLES: 'matching,signalling', GRACE_MS: String(c.graceMs), INTEREST_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn' };
  let named = 0;
  const live = new Set<DyadProcess>();
  const killed = new Set<DyadProcess>();
  const all: DyadProcess[] = [];
  const unexpectedExits: string[] = [];
  const checker = new Checker();
  let began = Date.now();
  const at = (): number => (Date.now() - began) / 1000;
  const heartbeats = new HeartbeatWatch(
    redis.stateUrl,
    () => [...live].map((p) => p.name),
    (name, since, now) =>
      checker.bad('alive', `${name} (${heartbeats.idOf(name) ?? '?'}) ran without a heartbeat from ${((since - began) / 1000).toFixed(1)} s, still at ${((now - began) / 1000).toFixed(1)} s`),
  );
  await heartbeats.start();
  // One at a time (the watch matches each to the id it adds).
  const start = async (): Promise<DyadProcess> => {
    const name = `p${named++}`;
    const p = await heartbeats.launch(name, () => DyadProcess.start(name, env, SERVER_LOG_KEPT_CHARS));
    all.push(p);
    live.add(p);
    void p.exited.then((e) => {
      live.delete(p);
      if (!killed.has(p)) unexpectedExits.push(`${p.name} (code ${e.code}, signal ${e.signal})`);
    });
    return p;
  };
  for (let i = 0; i < c.processes; i++) await start();
  began = Date.now();
  const disruptions: number[] = [];
  const told: ChaosDisruption[] = [];
  /** A disruption that began at `t` (Date.now()), told once it is over. */
  const note = (t: number, what: string): void => {
    const atSec = (t - began) / 1000;
    told.push({ atSec: +atSec.toFixed(1), what });
    ctx.progress.line(`chaos soak, ${store}: ${atSec.toFixed(0)} s: ${what}`);
  };
  // One disruption at a time, in the order asked.
  let queue = Promise.resolve();
  const disrupt = (fn: () => Promise<void>): Promise<void> => (queue = queue.then(fn).catch((err: unknown) => note(Date.now(), `failed: ${String(err).split('\n')[0]}`)));
  let victim = 0;
  const pickVictim = (): DyadProcess | undefined => [...live][victim++ % Math.max(1, live.size)];
  const kill = async (): Promise<void> => {
    const p = pickVictim();
    if (!p) return;
    killed.add(p);
    live.delete(p);
    const t = Date.now();
    disruptions.push(t);
    await p.stop('SIGKILL');
    const next = await start();
    note(t, `SIGKILL ${p.name}; ${next.name} up ${((Date.now() - t) / 1000).toFixed(1)} s later`);
  };
  const restart = async (): Promise<void> => {
    const t = Date.now();
    disruptions.push(t);
    heartbeats.excuseAll(c.redisDownMs + 60_000);
    await redis.kill();
    await sleep(c.redisDownMs);
    await redis.run();
    heartbeats.excuseAll();
    disruptions.push(Date.now());
    note(t, `${store === STORE_LABEL[0] ? 'Redis' : 'the state shard'} restarted (down ${c.redisDownMs} ms, its data gone)`);
  };
  const freeze = async (): Promise<void> => {
    const p = pickVictim();
    if (!p) return;
    const t = Date.now();
    disruptions.push(t);
    heartbeats.excuse(p.name, c.freezeMs + 60_000);
    p.child.kill('SIGSTOP');
    await sleep(c.freezeMs);
    p.child.kill('SIGCONT');
    heartbeats.excuse(p.name);
    disruptions.push(Date.now());
    note(t, `${p.name} frozen (SIGSTOP) for ${c.freezeMs / 1000} s, then SIGCONT`);
  };

  const evidence = new Evidence();
  let started = 0;
  let churning = true;
  const loads = [load1()];
  // The restart and the freeze come at a share of the sessions, or of the time limit in a run too slow to get there.
  const once = (fn: () => Promise<void>): (() => void) => {
    let done = false;
    return () => {
      if (!done) void disrupt(fn);
      done = true;
    };
  };
  const restartOnce = once(restart);
  const freezeOnce = once(freeze);
  const killer = (async () => {
    for (let next = began + c.killEveryMs; churning; next += c.killEveryMs) {
      while (churning && Date.now() < next) {
        await sleep(Math.min(500, next - Date.now()));
        if (Date.now() - began >= c.runLimitMs * c.restartAt) restartOnce();
        if (Date.now() - began >= c.runLimitMs * c.freezeAt) freezeOnce();
      }
      if (churning) await disrupt(kill);
    }
  })();
  const sampler = setInterval(() => loads.push(load1()), 5_000);
  ctx.progress.watch(
    () =>
      `chaos soak, ${store}: ${started.toLocaleString('en-US')}/${c.sessions.toLocaleString('en-US')} sessions, ` +
      `${checker.pairings.toLocaleString('en-US')} pairings, ${checker.violationCount} violations, ${live.size} processes, ${at().toFixed(0)} s, load ${load1()}`,
  );
  const targets = (): Target[] => [...live].map((p) => ({ name: p.name, matching: p.ws('matching'), signalling: p.ws('signalling') }));
  const opts = { seed: c.seed, sessions: c.sessions, actors: c.actors, graceMs: c.graceMs, targets, stepMs: c.stepMs, steps: c.steps, lingerChance: c.lingerChance, stopAt: began + c.runLimitMs };
  const crowd = await runCrowd(
    opts,
    {
      onStarted: (n) => {
        started = n;
        if (n >= c.sessions * c.restartAt) restartOnce();
        if (n >= c.sessions * c.freezeAt) freezeOnce();
      },
      onDone: (s) => {
        const found = checker.add(s);
        evidence.ended(s, found);
        // A socket the server never said a word on: its session's log is kept, as a violation's is.
        if (s.log.some((e) => e.kind === 'silent')) evidence.want([s.id]);
      },
    },
    false,
  );
  churning = false;
  await killer;
  await queue;
  heartbeats.stop();
  const churnSec = at();
  ctx.progress.status(`chaos soak, ${store}: settling ${crowd.lingering.length} lingering sessions`);
  const settled = await settle(crowd.lingering, c.settleMs);
  const settleSec = at() - churnSec;
  for (const s of crowd.lingering) {
    s.close();
    evidence.ended(s, checker.add(s));
  }
  if (!settled.settled) {
    const astray = settled.present.filter((s) => s.state !== 'matched' && s.state !== 'waiting');
    // The first few by name, with the state each was left in, so that their logs are kept.
    const named = astray.slice(0, 5).map((s) => `${s.id} (${s.state} on ${s.at ?? 'none'})`).join(', ');
    checker.bad('settled', `at the end, ${JSON.stringify(settled.waiting)} waiting; ${astray.length} neither matched nor waiting${named ? `: ${named}` : ''}`);
  }
  clearInterval(sampler);
  ctx.progress.unwatch();
  const findings = checker.finish(disruptions, c.windowMs);
  evidence.want(findings.violations);
  const run: ChaosRun = {
    store,
    seed: c.seed,
    target: c.sessions,
    sessions: crowd.started,
    pairings: findings.rooms,
    oneSided: findings.oneSided,
    chats: findings.chats,
    signals: findings.signals,
    resumptions: findings.resumptions,
    silent: findings.silent,
    disruptions: told,
    byInvariant: findings.byInvariant,
    violations: findings.violations,
    unexpectedExits,
    stoppedAtLimit: crowd.started < c.sessions,
    lingering: crowd.lingering.length,
    churnSec: +churnSec.toFixed(1),
    settleSec: +settleSec.toFixed(1),
    sessionsPerSec: +(crowd.started / churnSec).toFixed(1),
    load1: { start: loads[0] ?? 0, max: Math.max(...loads), end: load1() },
  };
  for (const p of live) killed.add(p);
  await Promise.all([...live].map((p) => p.stop('SIGKILL')));
  if (findings.violations.length > 0 || unexpectedExits.length > 0 || findings.silent > 0) {
    // The violations, the logs of the sessions they name (tokens left out) and what the servers said last.
    mkdirSync(ctx.outDir, { recursive: true });
    run.logFile = path.join(ctx.outDir, `chaos-${store.split(/[ ,]/)[0]?.toLowerCase()}-${c.seed}.json`);
    const servers = Object.fromEntries(all.map((p) => [p.name, p.log()]));
    const logs = Object.fromEntries(evidence.kept);
    const noTokens = (key: string, value: unknown): unknown => (key === 'token' ? undefined : value);
    writeFileSync(run.logFile, JSON.stringify({ began, disruptions: told, violations: findings.violations, logs, servers }, noTokens, 1));
  }
  ctx.progress.line(chaosLine(run));
  return run;
}

/** One line of counts for a finished run. */
export function chaosLine(r: ChaosRun): string {
  const v = Object.entries(r.byInvariant)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return (
    `chaos soak, ${r.store}: ${r.sessions.toLocaleString('en-US')} sessions in ${r.churnSec} s (${r.sessionsPerSec}/s), ` +
    `${r.pairings.toLocaleString('en-US')} pairings (${r.oneSided} one-sided near a disruption), ${r.chats.toLocaleString('en-US')} chats, ` +
    `${r.signals.toLocaleString('en-US')} signals, ${r.resumptions.toLocaleString('en-US')} resumptions, ${r.disruptions.length} disruptions; ` +
    (r.silent > 0 ? `${r.silent} sockets told nothing within ${FIRST_WORD_MS / 1000} s; ` : '') +
    `violations: ${v}; settled in ${r.settleSec} s; load ${r.load1.start} → max ${r.load1.max} → ${r.load1.end}`
  );
}
