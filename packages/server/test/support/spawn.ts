// The built server as a child process, run exactly as an operator runs it
// (`node packages/server/dist/main.js` with an environment), for every harness
// that needs one: the wire tests, the multi-process tests on Redis, the browser
// tests and the benchmarks. It keeps the recent output, finds the ports in the
// `<role> listening on http://HOST:PORT` lines, stops with SIGTERM and then
// SIGKILL, and kills whatever is left when this process ends. Harnesses reach
// the server only through this process and its sockets, never by importing it.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const SERVER_ENTRY = path.join(REPO_ROOT, 'packages/server/dist/main.js');

export const ROLES = ['matching', 'signalling', 'web'] as const;
export type Role = (typeof ROLES)[number];

/** How long a server may take to print its listening lines, unless the caller says otherwise. */
export const START_TIMEOUT_MS = 15_000;
/** How long a stopped server may take to exit before it gets SIGKILL, unless the caller says otherwise. */
export const STOP_TIMEOUT_MS = 5_000;
/** How much of the output is kept, unless the caller says otherwise. */
const OUTPUT_KEEP_CHARS = 20_000;
/** How long to wait, after an exit, for the rest of what the process wrote. */
const OUTPUT_DRAIN_MS = 500;
/** How much of the output a start failure shows. */
const OUTPUT_SHOWN_CHARS = 4_000;

/** Loopback only, every port picked by the system: the ports are read from the listening lines. */
export const LOOPBACK_ENV: Readonly<Record<string, string>> = Object.freeze({
  HOST: '127.0.0.1',
  MATCHING_PORT: '0',
  SIGNALLING_PORT: '0',
  WEB_PORT: '0',
  // Proof of work is asked only where a test or benchmark is about it (POW_MODE defaults to always).
  POW_MODE: 'off',
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const live = new Set<ChildProcess>();
const killAll = (): void => {
  for (const child of live) child.kill('SIGKILL');
};
// A failed or interrupted run must not leave a child behind. A signal's
// default action would end this process without its exit handlers: end it
// ourselves, so they run.
process.once('exit', killAll);
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(code);
  });
}

/** Kill `child` with SIGKILL if it still runs when this process ends. */
export function track<C extends ChildProcess>(child: C): C {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/**
 * A child environment: PATH from outside and nothing else, so stray settings
 * (a REDIS_URL in the shell, say) cannot leak in; then `defaults`, then
 * `overrides`, where `undefined` removes a setting.
 */
export function serverEnv(
  defaults: Readonly<Record<string, string>>,
  overrides: Readonly<Record<string, string | undefined>> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...defaults };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** The roles a process with this environment runs (ROLES unset: all of them). */
export function rolesOf(env: NodeJS.ProcessEnv): Role[] {
  const asked = (env.ROLES ?? ROLES.join(',')).split(',').map((r) => r.trim());
  return ROLES.filter((role) => asked.includes(role));
}

export function assertBuilt(entry = SERVER_ENTRY): void {
  if (existsSync(entry)) return;
  throw new Error(
    entry === SERVER_ENTRY
      ? `${path.relative(REPO_ROOT, SERVER_ENTRY)} does not exist: build first with \`npm run build -w @dyad/protocol -w @dyad/server\``
      : `${entry} does not exist`,
  );
}

export type Stream = 'stdout' | 'stderr';

export interface SpawnServerOptions {
  /** The child's whole environment (see serverEnv). */
  env: NodeJS.ProcessEnv;
  /** Names the process in failure messages. */
  label?: string;
  /** Another build's main.js (default: this checkout's). */
  entry?: string;
  /** Node options before the entry, e.g. --inspect. */
  nodeArgs?: readonly string[];
  /** How the child is started (default child_process.spawn), e.g. through a shell that raises a limit first. */
  launch?: (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;
  /** Told every whole line the process writes, from its start. */
  onLine?: (line: string, stream: Stream) => void;
  /** How much of the output output() keeps, in characters (default OUTPUT_KEEP_CHARS). */
  keepChars?: number;
}

export interface ListeningOptions {
  /** The roles whose listening lines to wait for (default: those the environment asks for). */
  roles?: readonly Role[];
  timeoutMs?: number;
  /** Something else to wait for, checked after every line (e.g. the inspector's URL). */
  until?: () => boolean;
}

/** A start that failed: `reason` in one line, and what the process wrote. */
export class ServerStartError extends Error {
  override readonly name = 'ServerStartError';
  constructor(
    readonly reason: string,
    readonly output: string,
  ) {
    super(`${reason}; its last output:\n${output.slice(-OUTPUT_SHOWN_CHARS) || '(none)'}`);
  }
}

const LISTENING = /^(matching|signalling|web) listening on (http:\/\/\S+?)\/?$/;

export class ServerProcess {
  /** `http://HOST:PORT` of each role that printed its listening line. */
  readonly urls = new Map<Role, string>();
  readonly exited: Promise<Exit>;
  /** Resolves once the process exited and its output is read to the end. */
  readonly closed: Promise<Exit>;
  private kept = '';
  private count = 0;
  private readonly changed = new Set<() => void>();

  private constructor(
    readonly child: ChildProcess,
    readonly label: string,
    readonly env: NodeJS.ProcessEnv,
    onLine: SpawnServerOptions['onLine'],
    private readonly keepChars: number,
  ) {
    track(child);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      // A process that could not be started at all never exits: say why, and count it as ended.
      child.on('error', (err) => {
        this.kept += `\n[${label}] ${err.message}\n`;
        if (child.pid === undefined) resolve({ code: null, signal: null });
      });
    });
    this.closed = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    for (const stream of ['stdout', 'stderr'] as const) {
      const decoder = new StringDecoder('utf8');
      let partial = '';
      child[stream]?.on('data', (chunk: Buffer) => {
        const text = decoder.write(chunk);
        this.count += text.length;
        // Cut back to what is kept only once it is twice that: a large keep costs no copy per chunk.
        this.kept += text;
        if (this.kept.length > 2 * keepChars) this.kept = this.kept.slice(-keepChars);
        const lines = (partial + text).split('\n');
        partial = (lines.pop() ?? '').slice(-keepChars);
        for (const line of lines) {
          const m = LISTENING.exec(line.trim());
          if (m?.[1] && m[2]) this.urls.set(m[1] as Role, m[2]);
          onLine?.(line, stream);
        }
        for (const wake of this.changed) wake();
      });
    }
  }

  /** Starts the process and returns at once; see listening(). */
  static spawn(opts: SpawnServerOptions): ServerProcess {
    const entry = opts.entry ?? SERVER_ENTRY;
    assertBuilt(entry);
    const launch = opts.launch ?? spawn;
    const child = launch(process.execPath, [...(opts.nodeArgs ?? []), entry], {
      cwd: REPO_ROOT,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ServerProcess(child, opts.label ?? 'server', opts.env, opts.onLine, opts.keepChars ?? OUTPUT_KEEP_CHARS);
  }

  /** Starts the process and waits for its listening lines; a process that fails to start is killed. */
  static async start(opts: SpawnServerOptions & ListeningOptions): Promise<ServerProcess> {
    const p = ServerProcess.spawn(opts);
    try {
      await p.listening(opts);
    } catch (err) {
      p.child.kill('SIGKILL');
      throw err;
    }
    return p;
  }

  /** Resolves once every role asked for printed its listening line; fails (with the output) on exit or timeout. */
  listening(opts: ListeningOptions = {}): Promise<void> {
    const roles = opts.roles ?? rolesOf(this.env);
    const timeoutMs = opts.timeoutMs ?? START_TIMEOUT_MS;
    const done = (): boolean => roles.every((r) => this.urls.has(r)) && (opts.until?.() ?? true);
    if (done()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.changed.delete(check);
        if (err) reject(err);
        else resolve();
      };
      const check = (): void => {
        if (done()) finish();
      };
      const timer = setTimeout(
        () => finish(new ServerStartError(`${this.label} did not print its listening lines (${roles.join(', ')}) within ${timeoutMs} ms`, this.output())),
        timeoutMs,
      );
      this.changed.add(check);
      void this.exited.then(async (e) => {
        // The last words (why it would not start) may still be in the pipe.
        await this.outputRead();
        finish(new ServerStartError(`${this.label} exited during start (code ${e.code}, signal ${e.signal})`, this.output()));
      });
    });
  }

  /** Once exited: waits (a bounded while) until what it wrote is read, as a child of its own may hold the pipe. */
  async outputRead(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise((resolve) => (timer = setTimeout(resolve, OUTPUT_DRAIN_MS)))]);
    clearTimeout(timer);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** `http://HOST:PORT` of a role this process runs. */
  url(role: Role): string {
    const url = this.urls.get(role);
    if (!url) throw new Error(`${this.label} does not run ${role}`);
    return url;
  }

  /** The same as a `ws://` URL. */
  ws(role: Role): string {
    return this.url(role).replace(/^http/, 'ws');
  }

  /** The last lines the process wrote (stdout and stderr), for failure messages. */
  output(): string {
    return this.kept.slice(-this.keepChars);
  }

  /** Characters written since the start: a mark for outputSince(). */
  written(): number {
    return this.count;
  }

  /** What the process wrote since `mark` (as far as output() still keeps it). */
  outputSince(mark: number): string {
    const fresh = this.count - mark;
    return fresh > 0 ? this.output().slice(-fresh) : '';
  }

  /** Sends a signal and returns at once. */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Sends `signal`, then SIGKILL if the process still runs after `timeoutMs`; resolves with how it ended. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = STOP_TIMEOUT_MS): Promise<Exit> {
    if (!this.alive) return this.exited;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
