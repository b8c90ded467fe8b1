// Redis's work per operation, counted rather than timed: a private
// redis-server runs under valgrind's callgrind, which counts the instructions
// it executes; the shipped server, one process on that Redis, is driven over
// the wire, and the counters are zeroed before a window of operations and
// read after it. A count is nearly the same whatever else the machine does
// (runs of one build differ by a percent or two), so a change to the Redis
// path shows against the build before it even on a busy, shared box, where
// Redis's CPU seconds per operation move with the load. Needs `valgrind` and
// `callgrind_control` on the PATH; without them the section says so.
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import type { BenchContext } from './context.js';
import { fmtInt } from './context.js';
import { closeSocket, eventSocket, type EventSocket } from './event-socket.js';
import { commandStats } from './redis-diag.js';
import { sleep, startDyad, startRedis, type DyadProcess, type RedisProcess } from './procs.js';

const run = promisify(execFile);

/** Longest wait for one event of the workload. */
const WAIT_MS = 20_000;
/** Sessions cycling with `next` for the held pairings. */
const HELD_SESSIONS = 40;

export interface RedisWorkOp {
  /** Operations counted (one-trip pairs, or held pairings). */
  ops: number;
  /** Instructions Redis executed over the window. */
  instructions: number;
  /** Commands Redis ran per operation, by name (INFO commandstats; scripts' own commands included). */
  commands: Record<string, number>;
}

export interface RedisWorkResults {
  /** Why nothing was counted (no valgrind, say). */
  unavailable?: string;
  /** Two one-trip arrivals, matched, both closed with 1000, one pair at a time. */
  oneTrip?: RedisWorkOp;
  /** Held sessions sending `next` on every match: per pairing. */
  held?: RedisWorkOp;
}

function missingTool(): string | undefined {
  for (const tool of ['valgrind', 'callgrind_control']) {
    const r = spawnSync(tool, ['--version'], { stdio: 'ignore' });
    if (r.error) return `${tool} not found`;
  }
  return undefined;
}

/** Zero the counters, run `work` (it returns the operations done), read the count. */
async function counted(redisProc: RedisProcess, outDir: string, admin: Redis, work: () => Promise<number>): Promise<RedisWorkOp> {
  const pid = String(redisProc.pid);
  await run('callgrind_control', ['-z', pid]);
  const before = await commandStats(admin);
  const ops = await work();
  const after = await commandStats(admin);
  await run('callgrind_control', ['-d', pid]);
  // Each dump is a file of its own (<out>.<pid>.<n>); the newest holds this window.
  const dumps = readdirSync(outDir)
    .filter((f) => f.startsWith(`cg.${pid}.`))
    .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
  const last = dumps[dumps.length - 1];
  const total = last ? /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(`${outDir}/${last}`, 'utf8')) : null;
  if (!total?.[1]) throw new Error('callgrind wrote no count');
  const commands: Record<string, number> = {};
  for (const [name, { calls }] of after) {
    const d = calls - (before.get(name)?.calls ?? 0);
    // The counting's own commands are not the workload's.
    if (d > 0 && name !== 'info') commands[name] = d / Math.max(1, ops);
  }
  return { ops, instructions: Number(total[1]), commands };
}

/** `n` one-trip pairs, one at a time: A waits, B arrives, both matched, both close. */
async function oneTripPairs(url: string, n: number): Promise<number> {
  for (let i = 0; i < n; i++) {
    const a = eventSocket(`${url}/ws?mode=video`, WAIT_MS);
    await a.when('waiting');
    const b = eventSocket(`${url}/ws?mode=video`, WAIT_MS);
    await Promise.all([a.when('matched'), b.when('matched')]);
    await Promise.all([closeSocket(a.ws), closeSocket(b.ws)]);
  }
  // The last closes reach Redis after the sockets end.
  await sleep(300);
  return n;
}

/**
 * Held sessions that send `next` on every match while a run is on;
 * `run(n)` lets them cycle until n more pairings, then lets what is in flight
 * settle, and returns the pairings done meanwhile.
 */
async function heldSessions(url: string): Promise<{ run: (n: number) => Promise<number>; close: () => Promise<void> }> {
  let matched = 0;
  let cycling = false;
  let wanted = Number.POSITIVE_INFINITY;
  let reached: (() => void) | undefined;
  const parked: WebSocket[] = [];
  const sockets: EventSocket[] = [];
  for (let i = 0; i < HELD_SESSIONS; i++) {
    const s = eventSocket(`${url}/ws?mode=text`, WAIT_MS);
    s.ws.on('message', (data) => {
      if (!String(data).includes('"event":"matched"')) return;
      matched++;
      if (matched >= wanted) {
        cycling = false;
        reached?.();
      }
      if (cycling) s.ws.send('{"event":"next"}');
      else parked.push(s.ws);
    });
    await s.when('session');
    sockets.push(s);
  }
  return {
    run: async (n) => {
      const from = matched;
      wanted = from + 2 * n;
      cycling = true;
      for (const ws of parked.splice(0)) if (ws.readyState === WebSocket.OPEN) ws.send('{"event":"next"}');
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          new Promise<void>((resolve) => (reached = resolve)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`held pairings: ${Math.floor((matched - from) / 2)} of ${n} within ${(WAIT_MS * 6) / 1000} s`)), WAIT_MS * 6);
          }),
        ]);
      } finally {
        clearTimeout(timer);
        cycling = false;
      }
      // The nexts already sent finish; every member is told matched: two per pairing.
      await sleep(500);
      return (matched - from) / 2;
    },
    close: async () => {
      await Promise.all(sockets.map((s) => closeSocket(s.ws)));
    },
  };
}

export async function runRedisWork(ctx: BenchContext): Promise<RedisWorkResults> {
  const missing = missingTool();
  if (missing) return { unavailable: missing };
  const quick = ctx.profile.name === 'quick';
  const { progress } = ctx;
  let redisProc: RedisProcess | undefined;
  let dyad: DyadProcess | undefined;
  let admin: Redis | undefined;
  try {
    progress.watch(() => 'redis work: starting redis-server under callgrind');
    redisProc = await startRedis({ wrap: ['valgrind', '--tool=callgrind', `--callgrind-out-file=${ctx.outDir}/cg.%p`], startMs: 60_000 });
    dyad = await startDyad({ label: 'redis-work', roles: ['matching', 'signalling'], env: { REDIS_URL: redisProc.url } });
    admin = new Redis(redisProc.url, { maxRetriesPerRequest: 1 });
    const url = dyad.matchingWs;
    if (!url) throw new Error('the server did not say where matching listens');
    const pairs = quick ? 40 : 100;
    progress.watch(() => `redis work: ${pairs} one-trip pairs`);
    await oneTripPairs(url, 10);
    const oneTrip = await counted(redisProc, ctx.outDir, admin, () => oneTripPairs(url, pairs));
    const pairings = quick ? 300 : 1_000;
    progress.watch(() => `redis work: ${fmtInt(pairings)} held pairings`);
    const held = await heldSessions(url);
    await held.run(100);
    const heldOp = await counted(redisProc, ctx.outDir, admin, () => held.run(pairings));
    await held.close();
    return { oneTrip, held: heldOp };
  } finally {
    progress.unwatch();
    admin?.disconnect();
    await dyad?.stop();
    await redisProc?.stop();
    // The counts are read: callgrind's files go.
    for (const f of readdirSync(ctx.outDir).filter((x) => /^cg\.\d+/.test(x))) rmSync(`${ctx.outDir}/${f}`, { force: true });
  }
}

/** The commands of an operation, most first: "12 hset, 3 pexpire, …". */
function commandText(c: Record<string, number>): string {
  return Object.entries(c)
    .sort((a, b) => b[1] - a[1])
    .map(([name, n]) => `${n.toFixed(n < 10 ? 2 : 1)} ${name}`)
    .join(', ');
}

/** The section's lines, for the report and the summary. */
export function redisWorkLines(r: RedisWorkResults | undefined): string[] {
  if (!r) return [];
  if (r.unavailable) return [`Redis's work per operation: not counted (${r.unavailable}).`];
  const out: string[] = [];
  const line = (what: string, op: RedisWorkOp | undefined, unit: string): void => {
    if (!op) return;
    const total = Object.values(op.commands).reduce((a, b) => a + b, 0);
    out.push(
      `${what}: ${fmtInt(op.instructions / op.ops / 1000)}k instructions per ${unit} (${fmtInt(op.ops)} ${unit}s counted); ` +
        `${total.toFixed(1)} commands per ${unit}: ${commandText(op.commands)}`,
    );
  };
  line('One-trip pairs (two arrivals, matched, both closed), Redis, 1 process', r.oneTrip, 'pair');
  line(`Held pairings (${HELD_SESSIONS} sessions sending next on every match), Redis, 1 process`, r.held, 'pairing');
  return out;
}
