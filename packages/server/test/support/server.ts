// Starts the built server as a child process, exactly as an operator would, and
// finds its ports from the `<role> listening on http://HOST:PORT` lines it prints.
// Tests talk to it only over real sockets.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const SERVER_ENTRY = path.join(REPO_ROOT, 'packages/server/dist/main.js');

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const OUTPUT_KEEP_CHARS = 20_000;

/** Settings every test server gets unless a test overrides them. */
export const TEST_DEFAULTS: Readonly<Record<string, string>> = Object.freeze({
  HOST: '127.0.0.1',
  MATCHING_PORT: '0',
  SIGNALLING_PORT: '0',
  WEB_PORT: '0',
  // ROLES stays unset: one process runs every role, the only way the embedded
  // store may run (a subset of roles needs REDIS_URL).
  // Every test connects from 127.0.0.1, so the per-address limit would otherwise
  // be shared by the whole suite.
  REGISTER_RATE_PER_MIN: '100000',
  MAX_SOCKETS_PER_ADDR: '100000',
  MESSAGE_RATE_PER_ADDR_PER_SEC: '100000',
  MESSAGE_BURST_PER_ADDR: '100000',
  LOG_LEVEL: 'warn',
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningServer {
  /** `http://127.0.0.1:PORT` of the matching role. */
  readonly matching: string;
  /** `http://127.0.0.1:PORT` of the signalling role. */
  readonly signalling: string;
  /** `http://127.0.0.1:PORT` of the web role. */
  readonly web: string;
  readonly matchingWs: string;
  readonly signallingWs: string;
  readonly process: ChildProcess;
  readonly exited: Promise<Exit>;
  /** The last lines the process wrote, for failure messages. */
  output(): string;
  /** A mark in the process's output, for outputSince(). */
  mark(): number;
  /** What the process wrote since `mark` (as far as output() still keeps it). */
  outputSince(mark: number): string;
  /** Sends a signal and returns at once (the exit is expected). */
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after 5 s; resolves with how it ended. */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

const live = new Set<ChildProcess>();
// A failed or interrupted test run must not leave servers behind.
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** The environment of a child: only PATH from outside, so stray settings cannot leak in. */
export function childEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...TEST_DEFAULTS };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

function assertBuilt(): void {
  if (!existsSync(SERVER_ENTRY)) {
    throw new Error(
      `${path.relative(REPO_ROOT, SERVER_ENTRY)} does not exist: build first with ` +
        '`npm run build -w @dyad/protocol -w @dyad/server`',
    );
  }
}

interface Spawned {
  child: ChildProcess;
  exited: Promise<Exit>;
  output: () => string;
  /** Characters written since the start. */
  written: () => number;
}

function spawnServer(env: NodeJS.ProcessEnv): Spawned {
  assertBuilt();
  const child = spawn(process.execPath, [SERVER_ENTRY], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  let written = 0;
  const keep = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    written += text.length;
    output = (output + text).slice(-OUTPUT_KEEP_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  return { child, exited, output: () => output, written: () => written };
}

/** Starts a server and resolves once it printed the listening line of every role it was asked for. */
export async function startServer(overrides: Record<string, string | undefined> = {}): Promise<RunningServer> {
  const env = childEnv(overrides);
  const roles = (env.ROLES ?? 'matching,signalling,web')
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r === 'matching' || r === 'signalling' || r === 'web');
  const { child, exited, output, written } = spawnServer(env);

  const urls = new Map<string, string>();
  const ready = new Promise<void>((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const m = /^(matching|signalling|web) listening on (http:\/\/\S+?)\/?\s*$/.exec(line.trim());
        if (m?.[1] && m[2]) urls.set(m[1], m[2]);
      }
      if (roles.every((r) => urls.has(r))) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    void exited.then((e) =>
      reject(new Error(`server exited during start (code ${e.code}, signal ${e.signal}):\n${output()}`)),
    );
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`server did not print its listening lines within ${START_TIMEOUT_MS} ms:\n${output()}`)),
      START_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([ready, timeout]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }

  let stopping = false;
  // A server that dies in the middle of a file fails every later test with
  // ECONNREFUSED; say why once, where the failing test shows it.
  void exited.then((e) => {
    if (!stopping) {
      process.stderr.write(`\n[wire] server pid ${child.pid} exited unexpectedly (code ${e.code}, signal ${e.signal}); its last output:\n${output().slice(-4000)}\n`);
    }
  });

  const matching = urls.get('matching') ?? '';
  const signalling = urls.get('signalling') ?? '';
  return {
    matching,
    signalling,
    web: urls.get('web') ?? '',
    matchingWs: matching.replace(/^http/, 'ws'),
    signallingWs: signalling.replace(/^http/, 'ws'),
    process: child,
    exited,
    output,
    mark: written,
    outputSince: (mark) => {
      const fresh = written() - mark;
      return fresh > 0 ? output().slice(-fresh) : '';
    },
    signal: (signal: NodeJS.Signals) => {
      stopping = true;
      child.kill(signal);
    },
    stop: (signal: NodeJS.Signals = 'SIGTERM') => {
      stopping = true;
      return stopChild(child, exited, signal);
    },
  };
}

async function stopChild(child: ChildProcess, exited: Promise<Exit>, signal: NodeJS.Signals): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the server with settings it should refuse, and reports how it ended. */
export async function runUntilExit(
  overrides: Record<string, string | undefined>,
  timeoutMs = 5_000,
): Promise<Exit & { output: string; timedOut: boolean }> {
  const { child, exited, output } = spawnServer(childEnv(overrides));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const exit = await exited;
  clearTimeout(timer);
  return { ...exit, output: output(), timedOut };
}
