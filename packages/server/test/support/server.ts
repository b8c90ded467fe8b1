// Starts the built server as a child process, exactly as an operator would, and
// finds its ports from the `<role> listening on http://HOST:PORT` lines it prints.
// Tests talk to it only over real sockets.
import type { ChildProcess } from 'node:child_process';
import { LOOPBACK_ENV, ServerProcess, serverEnv, type Exit } from './spawn.js';

export { REPO_ROOT, SERVER_ENTRY, type Exit } from './spawn.js';

const STOP_TIMEOUT_MS = 5_000;

/** Settings every test server gets unless a test overrides them. */
export const TEST_DEFAULTS: Readonly<Record<string, string>> = Object.freeze({
  ...LOOPBACK_ENV,
  // ROLES stays unset: one process runs every role, the only way the embedded
  // store may run (a subset of roles needs REDIS_URL).
  // Every test connects from 127.0.0.1, so the per-address limit would otherwise
  // be shared by the whole suite.
  REGISTER_RATE_PER_MIN: '100000',
  MAX_SOCKETS_PER_ADDR: '100000',
  MAX_SESSIONS_PER_ADDR: '100000',
  REQUEST_RATE_PER_ADDR_PER_SEC: '100000',
  WEB_REQUEST_RATE_PER_ADDR_PER_SEC: '100000',
  WEB_REQUEST_BURST_PER_ADDR: '100000',
  REQUEST_BURST_PER_ADDR: '100000',
  MESSAGE_RATE_PER_ADDR_PER_SEC: '100000',
  MESSAGE_BURST_PER_ADDR: '100000',
  MESSAGE_BYTES_PER_ADDR_PER_SEC: '1000000000',
  MESSAGE_BYTES_BURST_PER_ADDR: '1000000000',
  CHAT_RATE_PER_MIN: '100000',
  CHAT_REPEAT_MAX: '100000',
  LOG_LEVEL: 'warn',
});

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

/** The environment of a child: only PATH from outside, so stray settings cannot leak in. */
export function childEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return serverEnv(TEST_DEFAULTS, overrides);
}

/** Starts a server and resolves once it printed the listening line of every role it was asked for. */
export async function startServer(overrides: Record<string, string | undefined> = {}): Promise<RunningServer> {
  // The spawner's start timeout: a loaded machine may take seconds to start a process.
  const server = await ServerProcess.start({ env: childEnv(overrides) });
  const child = server.child;
  let stopping = false;
  // A server that dies in the middle of a file fails every later test with
  // ECONNREFUSED; say why once, where the failing test shows it.
  void server.exited.then((e) => {
    if (!stopping) {
      process.stderr.write(`\n[wire] server pid ${child.pid} exited unexpectedly (code ${e.code}, signal ${e.signal}); its last output:\n${server.output().slice(-4000)}\n`);
    }
  });

  const matching = server.urls.get('matching') ?? '';
  const signalling = server.urls.get('signalling') ?? '';
  return {
    matching,
    signalling,
    web: server.urls.get('web') ?? '',
    matchingWs: matching.replace(/^http/, 'ws'),
    signallingWs: signalling.replace(/^http/, 'ws'),
    process: child,
    exited: server.exited,
    output: () => server.output(),
    mark: () => server.written(),
    outputSince: (mark) => server.outputSince(mark),
    signal: (signal: NodeJS.Signals) => {
      stopping = true;
      server.signal(signal);
    },
    stop: (signal: NodeJS.Signals = 'SIGTERM') => {
      stopping = true;
      return server.stop(signal, STOP_TIMEOUT_MS);
    },
  };
}

/** Runs the server with settings it should refuse, and reports how it ended. */
export async function runUntilExit(
  overrides: Record<string, string | undefined>,
  timeoutMs = 5_000,
): Promise<Exit & { output: string; timedOut: boolean }> {
  const server = ServerProcess.spawn({ env: childEnv(overrides) });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    server.signal('SIGKILL');
  }, timeoutMs);
  const exit = await server.exited;
  clearTimeout(timer);
  await server.outputRead();
  return { ...exit, output: server.output(), timedOut };
}
