// Where Redis spends its time under load: every command is logged with its
// duration for a short window (SLOWLOG with a 0 µs threshold), then grouped
// by script. Run outside the measured windows (the log itself costs a little).
import { Redis } from 'ioredis';

type Resp = string | number | null | Resp[];

/** The servers' REDIS_PREFIX when none is set. */
const DEFAULT_PREFIX = 'dyad:';

/**
 * sha1 -> script name, as the servers on this Redis wrote them in
 * `<prefix>scripts` when they loaded their scripts (every build that ran
 * adds its own). The bench knows the server only as processes and Redis.
 */
async function scriptNames(redis: Redis, prefix: string): Promise<Map<string, string>> {
  try {
    return new Map(Object.entries(await redis.hgetall(`${prefix}scripts`)));
  } catch {
    // Names are a convenience: unknown scripts are shown by their sha.
    return new Map();
  }
}

export interface RedisCommandCost {
  /** Command, or `script:<name>` for EVALSHA. */
  name: string;
  calls: number;
  usec: number;
  usecPerCall: number;
  /** Per operation of the load (a pairing, a relayed frame). */
  callsPerOp: number;
  usecPerOp: number;
  /** For a script: the commands it runs per call, by name. */
  inside?: Record<string, number>;
}

export interface RedisProfile {
  seconds: number;
  ops: number;
  /** Redis time inside top-level commands per operation, µs (its CPU also has networking). */
  usecPerOp: number;
  /** Top-level commands and scripts (a script's time includes what it calls). */
  commands: RedisCommandCost[];
}

/** Entries of the command log kept for splitting script time by script (a sample when busier). */
const SLOWLOG_SAMPLE = 20_000;
/** The diagnosis's own commands (commandstats names subcommands `config|set`). */
const DIAG_COMMANDS: ReadonlySet<string> = new Set(['config', 'slowlog', 'info']);

/** Calls and time of every command so far, by name (INFO commandstats). */
export async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const text = await redis.call('INFO', 'commandstats');
  const out = new Map<string, { calls: number; usec: number }>();
  for (const line of typeof text === 'string' ? text.split('\r\n') : []) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m?.[1]) out.set(m[1].toLowerCase(), { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}

/**
 * Account for Redis's time over `ms` while the load runs: totals per command
 * from INFO commandstats, and script time split by script from a log of
 * every command (SLOWLOG with a 0 µs threshold). `ops()` reads the count of
 * operations done so far (e.g. pairings from the server metrics).
 */
export async function profileRedis(url: string, ms: number, ops: () => Promise<number>, prefix = DEFAULT_PREFIX): Promise<RedisProfile> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await measure(redis, await scriptNames(redis, prefix), ms, ops);
  } finally {
    redis.disconnect();
  }
}

async function measure(redis: Redis, names: Map<string, string>, ms: number, ops: () => Promise<number>): Promise<RedisProfile> {
  const call = (...args: string[]): Promise<unknown> => redis.call(args[0] as string, ...args.slice(1));
  await call('CONFIG', 'SET', 'slowlog-max-len', String(SLOWLOG_SAMPLE));
  await call('SLOWLOG', 'RESET');
  const s0 = await commandStats(redis);
  const o0 = await ops();
  await call('CONFIG', 'SET', 'slowlog-log-slower-than', '0');
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  await call('CONFIG', 'SET', 'slowlog-log-slower-than', '10000');
  const seconds = (performance.now() - t0) / 1000;
  const o1 = await ops();
  const s1 = await commandStats(redis);
  const log = await call('SLOWLOG', 'GET', String(SLOWLOG_SAMPLE));
  await call('SLOWLOG', 'RESET');
  await call('CONFIG', 'SET', 'slowlog-max-len', '128');

  // The log has every command, those run inside scripts too (their client is
  // "?:0", and they come just before the script that ran them). Scale the
  // sample to the whole period by commandstats, which counts the same things.
  const entries = (Array.isArray(log) ? log : [])
    .filter((e): e is Resp[] => Array.isArray(e) && Array.isArray(e[3]))
    .sort((a, b) => Number(a[0]) - Number(b[0]));
  const top = new Map<string, { calls: number; usec: number }>();
  const inside = new Map<string, Map<string, number>>();
  let pending: string[] = [];
  let sampled = 0;
  for (const e of entries) {
    const args = e[3] as Resp[];
    const cmd = String(args[0] ?? '').toLowerCase();
    if (DIAG_COMMANDS.has(cmd)) continue;
    sampled++;
    if (e[4] === '?:0') {
      pending.push(cmd);
      continue;
    }
    const name = cmd === 'evalsha' || cmd === 'fcall' ? `script:${names.get(String(args[1])) ?? String(args[1]).slice(0, 8)}` : cmd;
    const t = top.get(name) ?? { calls: 0, usec: 0 };
    t.calls++;
    t.usec += Number(e[2]);
    top.set(name, t);
    if (cmd === 'evalsha' || cmd === 'fcall') {
      const m = inside.get(name) ?? new Map<string, number>();
      for (const c of pending) m.set(c, (m.get(c) ?? 0) + 1);
      inside.set(name, m);
    }
    pending = [];
  }
  let counted = 0;
  for (const [cmd, after] of s1) {
    if (DIAG_COMMANDS.has(cmd.split('|')[0] ?? cmd)) continue;
    counted += after.calls - (s0.get(cmd)?.calls ?? 0);
  }
  const scale = sampled > 0 ? Math.max(1, counted / sampled) : 1;
  const n = Math.max(1, o1 - o0);
  const commands: RedisCommandCost[] = [...top.entries()]
    .map(([name, e]) => ({
      name,
      calls: e.calls * scale,
      usec: e.usec * scale,
      usecPerCall: e.usec / e.calls,
      callsPerOp: (e.calls * scale) / n,
      usecPerOp: (e.usec * scale) / n,
      inside: Object.fromEntries(
        [...(inside.get(name) ?? new Map<string, number>()).entries()].sort((a, b) => b[1] - a[1]).map(([c, k]) => [c, +(k / e.calls).toFixed(2)]),
      ),
    }))
    .sort((a, b) => b.usec - a.usec);
  return { seconds, ops: o1 - o0, usecPerOp: commands.reduce((acc, c) => acc + c.usecPerOp, 0), commands };
}

export function formatRedisProfile(p: RedisProfile, op: string): string {
  const lines = [
    `Redis, ${Math.round(p.ops).toLocaleString('en-US')} ${op}s in ${p.seconds.toFixed(1)} s: ${p.usecPerOp.toFixed(1)} µs inside commands per ${op}`,
  ];
  for (const c of p.commands.slice(0, 6)) {
    lines.push(
      `  ${c.name.padEnd(26)} ${c.callsPerOp.toFixed(2).padStart(6)} calls/${op}  ${c.usecPerCall.toFixed(1).padStart(6)} µs/call  ${c.usecPerOp.toFixed(1).padStart(6)} µs/${op}`,
    );
    const inner = Object.entries(c.inside ?? {}).slice(0, 8);
    if (inner.length) lines.push(`  ${''.padEnd(26)} each call runs ${inner.map(([k, v]) => `${v} ${k}`).join(', ')}`);
  }
  return lines.join('\n');
}
