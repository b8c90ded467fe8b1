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
  /** Where the instructions went (absent when the redis-server binary names none of the functions it is read from). */
  split?: WorkSplit;
}

/**
 * The window's instructions by where they ran, from the inclusive counts of
 * functions that Redis 7's binary exports (luaCallFunction runs a script or
 * function; lua_pcall its body; scriptCall a redis.call; call'2 the command
 * it runs, one level under the FCALL's own call):
 */
export interface WorkSplit {
  /** The commands that scripts ran (call'2). */
  commands: number;
  /** redis.call's own dispatch around them (scriptCall − call'2). */
  dispatch: number;
  /** The scripts' Lua: our code in the VM, its tables, strings and garbage, and the arguments and replies of redis.call handed between Lua and Redis (lua_pcall − scriptCall). */
  lua: number;
  /** A script call's set-up and return: its KEYS and ARGV, its reply, Lua's garbage collector step (luaCallFunction − lua_pcall). */
  setup: number;
  /** Everything else: reading and parsing requests, writing replies, commands sent outside scripts, the event loop. */
  rest: number;
}

/** Inclusive instruction counts of the functions WorkSplit is made of, from callgrind_annotate. */
async function workSplit(dump: string, total: number): Promise<WorkSplit | undefined> {
  const { stdout } = await run('callgrind_annotate', ['--inclusive=yes', '--threshold=100', dump], { maxBuffer: 64 * 1024 * 1024 });
  const count = (fn: string): number | undefined => {
    const m = new RegExp(`^\\s*([\\d,]+) \\([^)]*\\)\\s+\\S*:${fn} `, 'm').exec(stdout);
    return m?.[1] ? Number(m[1].replaceAll(',', '')) : undefined;
  };
  const [scripts, body, redisCall, commands] = ['luaCallFunction', 'lua_pcall', 'scriptCall', "call'2"].map(count);
  if (scripts === undefined || body === undefined || redisCall === undefined || commands === undefined) return undefined;
  return { commands, dispatch: redisCall - commands, lua: body - redisCall, setup: scripts - body, rest: total - scripts };
}

export interface RedisWorkResults {
  /** Why nothing was counted (no valgrind, say). */
  unavailable?: string;
  /** Two one-trip arrivals, matched, both closed with 1000, one pair at a time. */
  oneTrip?: RedisWorkOp;
  /** Held sessions sending `next` on every match: per pairing. */
  held?: RedisWorkOp;
  /** Instructions per use of each of BLOCKS, and (call) per call of a function that does nothing. */
  blocks?: Record<string, number>;
}

function missingTool(): string | undefined {
  for (const tool of ['valgrind', 'callgrind_control']) {
    const r = spawnSync(tool, ['--version'], { stdio: 'ignore' });
    if (r.error) return `${tool} not found`;
  }
  return undefined;
}

/** Zero the counters, run `work`, read what Redis executed meanwhile (and the dump that holds it). */
async function window<T>(redisProc: RedisProcess, outDir: string, work: () => Promise<T>): Promise<{ result: T; instructions: number; dump: string }> {
  const pid = String(redisProc.pid);
  await run('callgrind_control', ['-z', pid]);
  const result = await work();
  await run('callgrind_control', ['-d', pid]);
  // Each dump is a file of its own (<out>.<pid>.<n>); the newest holds this window.
  const dumps = readdirSync(outDir)
    .filter((f) => f.startsWith(`cg.${pid}.`))
    .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
  const last = dumps[dumps.length - 1];
  const total = last ? /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(`${outDir}/${last}`, 'utf8')) : null;
  if (!last || !total?.[1]) throw new Error('callgrind wrote no count');
  return { result, instructions: Number(total[1]), dump: `${outDir}/${last}` };
}

/** Count a window of `work` (it returns the operations done), with the commands Redis ran in it. */
async function counted(redisProc: RedisProcess, outDir: string, admin: Redis, work: () => Promise<number>): Promise<RedisWorkOp> {
  const { result, instructions, dump } = await window(redisProc, outDir, async () => {
    const before = await commandStats(admin);
    const ops = await work();
    return { before, ops, after: await commandStats(admin) };
  });
  const { before, ops, after } = result;
  const commands: Record<string, number> = {};
  for (const [name, { calls }] of after) {
    const d = calls - (before.get(name)?.calls ?? 0);
    // The counting's own commands are not the workload's.
    if (d > 0 && name !== 'info') commands[name] = d / Math.max(1, ops);
  }
  const split = await workSplit(dump, instructions).catch(() => undefined);
  return { ops, instructions, commands, ...(split ? { split } : {}) };
}

/**
 * What the building blocks of the transitions cost Redis, in instructions:
 * each is run BLOCK_ITERATIONS times in a loop inside one function call (so the
 * call's own cost is spread thin), on a session hash shaped like the store's
 * (store/redis/lua/: 13 fields, a 64-character token hash among them).
 */
const BLOCK_ITERATIONS = 2_000;
const BLOCK_LIBRARY = 'dyadbench_blocks';
const BLOCKS: Readonly<Record<string, { what: string; lua: string }>> = {
  empty: { what: 'nothing (the loop alone)', lua: '' },
  hgetall: {
    what: "a session read into a table (HGETALL, then field by field, as the store's load)",
    lua: "local f = redis.call('HGETALL', KEYS[1]) local s = {id = 'a'} for i = 1, #f, 2 do s[f[i]] = f[i + 1] end",
  },
  hset: { what: 'two fields of it written (HSET)', lua: "redis.call('HSET', KEYS[1], 'st', 'idle', 'news', 'skip')" },
  pexpire: { what: 'its lifetime set (PEXPIRE)', lua: "redis.call('PEXPIRE', KEYS[1], '3600000')" },
  exists: { what: 'a key looked for (EXISTS)', lua: "redis.call('EXISTS', KEYS[1] .. 'x')" },
  table: { what: 'a table of one field', lua: 'local t = {a = 1}' },
  json: {
    what: "a pairing's reply as JSON (cjson.encode: a timer list, the pairing, a matched message)",
    lua:
      "local x = cjson.encode({t = {}, p = {{room = 'abcdefghijklmnopqrstuvwx', a = 'abcdefghijkl', b = 'bcdefghijklm', mode = 'text', waitedMs = {0, 5}}}, e = {}, " +
      "i = {d = {{to = 'abcdefghijkl', channel = 'matching', conn = 'abcdefghijklmnop', msg = {event = 'matched', room_code = 'abcdefghijklmnopqrstuvwx', initiator = true, " +
      "peer = 'bcdefghijklm', common_interests = {}, mode = 'text', ice_servers = {}}}}, c = {}}, l = '1700000000000-0'})",
  },
};

/** Instructions per use of each building block, and per call of a function that does nothing. */
async function buildingBlocks(redisProc: RedisProcess, outDir: string, admin: Redis): Promise<Record<string, number>> {
  const key = 'dyadbench:blocks:s';
  await admin.hset(key, {
    mode: 'text', int: '[]', th: 'a'.repeat(64), addr: 'abcdefghijklmnopqrstuv', st: 'matched', ea: '1700000000000', ws: '1700000000000',
    wk: '1740800000000123', mc: 'abcdefghijklmnop', mp: 'abcdefghijkl', room: 'abcdefghijklmnopqrstuvwx', nx: '3', sc: 'abcdefghijklmnop',
  });
  const lib = Object.entries(BLOCKS)
    .map(([name, b]) => `redis.register_function('${BLOCK_LIBRARY}_${name}', function(KEYS, ARGV) for _ = 1, tonumber(ARGV[1]) do ${b.lua} end return 1 end)`)
    .join('\n');
  await admin.call('FUNCTION', 'LOAD', 'REPLACE', `#!lua name=${BLOCK_LIBRARY}\n${lib}`);
  const call = (name: string, n: number): Promise<unknown> => admin.fcall(`${BLOCK_LIBRARY}_${name}`, 1, key, String(n));
  try {
    const out: Record<string, number> = {};
    const loop = (await window(redisProc, outDir, () => call('empty', BLOCK_ITERATIONS))).instructions;
    for (const name of Object.keys(BLOCKS)) {
      if (name === 'empty') continue;
      const { instructions } = await window(redisProc, outDir, () => call(name, BLOCK_ITERATIONS));
      out[name] = (instructions - loop) / BLOCK_ITERATIONS;
    }
    // A call of a function that does nothing, request and reply included: many at once, so that the counters' own wake-ups are spread thin.
    const { instructions } = await window(redisProc, outDir, () => Promise.all(Array.from({ length: BLOCK_ITERATIONS }, () => call('empty', 0))));
    out.call = instructions / BLOCK_ITERATIONS;
    return out;
  } finally {
    await admin.call('FUNCTION', 'DELETE', BLOCK_LIBRARY).catch(() => undefined);
    await admin.del(key);
  }
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
    progress.watch(() => 'redis work: building blocks');
    const blocks = await buildingBlocks(redisProc, ctx.outDir, admin);
    return { oneTrip, held: heldOp, blocks };
  } finally {
    progress.unwatch();
    admin?.disconnect();
    await dyad?.stop();
    await redisProc?.stop();
    // The counts are read: callgrind's files go.
    for (const f of readdirSync(ctx.outDir).filter((x) => /^cg\.\d+/.test(x))) rmSync(`${ctx.outDir}/${f}`, { force: true });
  }
}

/** "the scripts' Lua 67% (760k), the commands they ran 21% (240k), …" (per operation). */
function splitText(s: WorkSplit, total: number, ops: number): string {
  const part = (what: string, n: number): string => `${what} ${((100 * n) / total).toFixed(0)}% (${fmtInt(n / ops / 1000)}k)`;
  return [
    part("the scripts' Lua (our code in the VM, its garbage, redis.call's arguments and replies)", s.lua),
    part('the commands they ran', s.commands),
    part("redis.call's dispatch", s.dispatch),
    part('the script calls set up and returned', s.setup),
    part('the rest (requests, replies, commands outside scripts, the event loop)', s.rest),
  ].join(', ');
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
    if (op.split) out.push(`  of which ${splitText(op.split, op.instructions, op.ops)}`);
  };
  line('One-trip pairs (two arrivals, matched, both closed), Redis, 1 process', r.oneTrip, 'pair');
  line(`Held pairings (${HELD_SESSIONS} sessions sending next on every match), Redis, 1 process`, r.held, 'pairing');
  if (r.blocks) {
    const b = r.blocks;
    const k = (n: number | undefined): string => (n === undefined ? '?' : `${(n / 1000).toFixed(1)}k`);
    out.push(
      `What each costs, in instructions: a call of a function that does nothing, request and reply included, ${k(b.call)}; inside a function, ` +
        Object.entries(BLOCKS)
          .filter(([name]) => name !== 'empty')
          .map(([name, { what }]) => `${what} ${k(b[name])}`)
          .join('; '),
    );
  }
  return out;
}
