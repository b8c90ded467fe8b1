// Child processes of a benchmark run: Dyad server processes, a private
// redis-server, the peer servers, and the load-generator workers. Every child
// is tracked and killed when the run ends, however it ends.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { freePort } from '../../packages/server/test/redis/support/redis-server.js';
import {
  assertBuilt as assertEntryBuilt,
  LOOPBACK_ENV,
  SERVER_ENTRY,
  ServerProcess,
  ServerStartError,
  serverEnv,
  track,
} from '../../packages/server/test/support/spawn.js';

export { REPO_ROOT, SERVER_ENTRY } from '../../packages/server/test/support/spawn.js';

/** Open-file limit asked for every child: 50,000 sockets per side need more than the usual 1,024 or 20,000. */
export const NOFILE = 200_000;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 6_000;
const CLK_TCK = 100; // Linux USER_HZ; /proc/PID/stat counts CPU time in these ticks.

const RAISE_NOFILE = `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"`;
let nofileCache: number | undefined;

/**
 * The open-file limit children actually get: NOFILE where the limit may be
 * raised (root with CAP_SYS_RESOURCE), else the hard limit. Sockets per
 * process cannot exceed it.
 */
export function effectiveNofile(): number {
  if (nofileCache === undefined) {
    try {
      nofileCache = Number(execFileSync('sh', ['-c', `${RAISE_NOFILE}; ulimit -n`], { encoding: 'utf8' }).trim()) || 1024;
    } catch {
      nofileCache = 1024;
    }
  }
  return nofileCache;
}

const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Spawn `cmd args` through `sh -c 'ulimit -n …; exec …'` so the child gets a
 * raised open-file limit (as root the hard limit is raised too; otherwise the
 * soft limit goes up to the hard one). `exec` keeps the pid, and fds such as
 * the IPC channel survive it.
 */
export function spawnRaised(cmd: string, args: readonly string[], opts: SpawnOptions): ChildProcess {
  const script = `${RAISE_NOFILE}; exec "$0" "$@"`;
  return track(spawn('sh', ['-c', script, cmd, ...args], opts));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resident set size of a process, bytes (0 once it is gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** User + system CPU seconds a process has used so far. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds a process has used so far, summed over its live threads from
 * /proc/PID/task/TID/schedstat (nanoseconds): for windows of a few hundred
 * milliseconds, where the 10 ms ticks of `cpuSeconds` are too coarse. Falls
 * back to `cpuSeconds` where schedstat cannot be read.
 */
export function threadCpuSeconds(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    if (Number.isFinite(ns)) return ns / 1e9;
  } catch {
    // Gone, or no schedstat here.
  }
  return cpuSeconds(pid);
}

/**
 * Seconds the process's main thread has waited so far, runnable, for a CPU
 * (the second field of /proc/PID/schedstat): time another process held the
 * cores while an event was ready. 0 where schedstat cannot be read.
 */
export function runQueueSeconds(pid: number): number {
  try {
    const ns = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
    return Number.isFinite(ns) ? ns / 1e9 : 0;
  } catch {
    return 0;
  }
}

/** Keeps the last `max` characters of a stream, for error messages. */
function tail(max = 8_000): { push(s: string): void; text(): string } {
  let buf = '';
  return {
    push(s) {
      buf = (buf + s).slice(-max);
    },
    text: () => buf,
  };
}

export interface DyadProcess {
  readonly pid: number;
  readonly label: string;
  /** http://127.0.0.1:PORT of each role this process runs. */
  readonly matching?: string;
  readonly signalling?: string;
  /** ws:// forms of the same. */
  readonly matchingWs?: string;
  readonly signallingWs?: string;
  /** The inspector's WebSocket URL when started with `inspect` (for a forced GC). */
  readonly inspector?: string;
  readonly exited: Promise<number | null>;
  output(): string;
  stop(): Promise<void>;
}

export interface DyadOptions {
  label: string;
  env?: Record<string, string>;
  roles?: string[];
  /** Start with the inspector on a loopback port, so memory can be read after a full GC. */
  inspect?: boolean;
  /** Write a V8 CPU profile into this folder when the process exits. */
  cpuProfDir?: string;
}

/** Settings for load: limits far above what the load generators produce, quiet logs. */
export const LOAD_ENV: Readonly<Record<string, string>> = Object.freeze({
  ...LOOPBACK_ENV,
  // Every client of a run comes from a handful of loopback addresses, so the
  // per-address limits that stop one abusive host would stop the benchmark.
  REGISTER_RATE_PER_MIN: '1000000000',
  MAX_SOCKETS_PER_ADDR: '1000000000',
  MAX_SESSIONS_PER_ADDR: '1000000000',
  REQUEST_RATE_PER_ADDR_PER_SEC: '1000000000',
  WEB_REQUEST_RATE_PER_ADDR_PER_SEC: '1000000000',
  WEB_REQUEST_BURST_PER_ADDR: '1000000000',
  REQUEST_BURST_PER_ADDR: '1000000000',
  // The capacity section holds sockets up to the open-file limit itself, to find where the machine stops it.
  MAX_CONNECTIONS: '1000000000',
  NEXT_RATE_PER_MIN: '1000000000',
  MESSAGE_RATE_PER_SEC: '1000000',
  MESSAGE_FLOOD_PER_SEC: '1000000',
  MESSAGE_BURST: '1000000',
  MESSAGE_RATE_PER_ADDR_PER_SEC: '1000000000',
  MESSAGE_BURST_PER_ADDR: '1000000000',
  MESSAGE_BYTES_PER_ADDR_PER_SEC: '1000000000000',
  MESSAGE_BYTES_BURST_PER_ADDR: '1000000000000',
  CHAT_RATE_PER_MIN: '1000000000',
  CHAT_REPEAT_MAX: '1000000000',
  LOG_LEVEL: 'warn',
});

let serverEntry = SERVER_ENTRY;

/** Run another build of the server (an A/B comparison of a change, say) instead of this checkout's. */
export function useServerEntry(file: string): void {
  serverEntry = path.resolve(file);
}

let extraEnv: Record<string, string> = {};

/** Add to every Dyad process's environment (an A/B comparison of a setting, say). */
export function addServerEnv(env: Readonly<Record<string, string>>): void {
  extraEnv = { ...extraEnv, ...env };
}

export function assertBuilt(): void {
  assertEntryBuilt(serverEntry);
}

/** Start one Dyad process and wait for its `<role> listening on` lines. */
export async function startDyad(opts: DyadOptions): Promise<DyadProcess> {
  const env = serverEnv({ ...LOAD_ENV, ...extraEnv }, opts.env);
  if (opts.roles) env.ROLES = opts.roles.join(',');
  const nodeArgs: string[] = [];
  if (opts.inspect) nodeArgs.push('--inspect=127.0.0.1:0');
  if (opts.cpuProfDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`, `--cpu-prof-name=${opts.label}.cpuprofile`);
  let inspector: string | undefined;
  const onLine = (line: string): void => {
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(line);
    if (m?.[1]) inspector = m[1];
  };
  let server: ServerProcess;
  try {
    server = await ServerProcess.start({
      label: opts.label,
      env,
      entry: serverEntry,
      nodeArgs,
      launch: spawnRaised,
      onLine,
      timeoutMs: START_TIMEOUT_MS,
      until: () => !opts.inspect || inspector !== undefined,
    });
  } catch (err) {
    // One line for the report: the last thing the process said.
    if (err instanceof ServerStartError) throw new Error(`${err.reason}: ${lastLine(err.output)}`);
    throw err;
  }
  const has = (role: 'matching' | 'signalling'): boolean => server.urls.has(role);
  return {
    pid: server.pid,
    label: opts.label,
    matching: has('matching') ? server.url('matching') : undefined,
    signalling: has('signalling') ? server.url('signalling') : undefined,
    matchingWs: has('matching') ? server.ws('matching') : undefined,
    signallingWs: has('signalling') ? server.ws('signalling') : undefined,
    inspector,
    exited: server.exited.then((e) => e.code),
    output: () => server.output(),
    stop: async () => {
      await server.stop('SIGTERM', STOP_TIMEOUT_MS);
    },
  };
}

function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('[') && !l.startsWith('Debugger') && !l.startsWith('For help'));
  return lines[lines.length - 1] ?? '(no output)';
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
  if (!done) {
    child.kill('SIGKILL');
    await exited;
  }
}

export interface RedisProcess {
  readonly pid: number;
  readonly url: string;
  stop(): Promise<void>;
}

export interface RedisStartOptions {
  /** A command that runs redis-server (its arguments first), e.g. valgrind's; its pid is then the wrapper's, which execs it in place. */
  wrap?: string[];
  /** Longest wait for "Ready to accept connections" (default 5 s). */
  startMs?: number;
}

/** A private, non-persistent redis-server on a free loopback port. */
export async function startRedis(opts: RedisStartOptions = {}): Promise<RedisProcess> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'dyad-bench-redis-'));
  tempDirs.add(dir);
  const args = ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const [cmd = 'redis-server', ...rest] = [...(opts.wrap ?? []), ...args];
  const startMs = opts.startMs ?? 5_000;
  const child = spawnRaised(cmd, rest, {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = tail();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.on('error', (err) => out.push(String(err)));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      out.push(chunk);
      if (out.text().includes('Ready to accept connections')) resolve();
    });
    child.stderr?.on('data', (chunk: Buffer) => out.push(chunk.toString()));
    void exited.then(() => reject(new Error(`redis-server exited: ${lastLine(out.text())}`)));
    setTimeout(() => reject(new Error(`redis-server did not start within ${startMs / 1000} s`)), startMs).unref();
  });
  return {
    pid: child.pid ?? 0,
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      await stopChild(child, exited);
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
  };
}

export interface MemoryReading {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

/**
 * Memory of a server process right after a full garbage collection, through
 * its inspector (loopback only): heap figures without the noise of garbage
 * that is merely not yet collected.
 */
export async function memoryAfterGc(inspectorUrl: string): Promise<MemoryReading> {
  const ws = new WebSocket(inspectorUrl, { perMessageDeflate: false });
  let id = 0;
  const pending = new Map<number, (v: unknown) => void>();
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  });
  const call = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve) => {
      const n = ++id;
      pending.set(n, resolve);
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  try {
    await call('HeapProfiler.collectGarbage');
    const r = (await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
      result: { value: string };
    };
    const m = JSON.parse(r.result.value) as { rss: number; heapUsed: number; heapTotal: number; external: number };
    return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external };
  } finally {
    ws.close();
  }
}
