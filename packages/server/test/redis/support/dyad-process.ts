// Dyad processes as an operator runs them (node packages/server/dist/main.js),
// each found by the `<role> listening on http://HOST:PORT` lines it prints: a
// named process of a multi-process test, over the shared spawner.
import type { ChildProcess } from 'node:child_process';
import { LOOPBACK_ENV, ServerProcess, serverEnv, type Exit } from '../../support/spawn.js';

export { REPO_ROOT, type Exit } from '../../support/spawn.js';

/** Four processes starting at once on two busy cores can take a while. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 6_000;

/** Settings for every process of a multi-process test; loopback only, limits out of the way of many clients from 127.0.0.1. */
export const BASE_ENV: Readonly<Record<string, string>> = Object.freeze({
  ...LOOPBACK_ENV,
  LOG_LEVEL: 'warn',
  // Processes on one Redis must hash client addresses alike (bans and reports).
  ADDRESS_HASH_KEY: 'multi-process-test-key',
  REGISTER_RATE_PER_MIN: '1000000',
  MAX_SOCKETS_PER_ADDR: '1000000',
  MAX_SESSIONS_PER_ADDR: '1000000',
  REQUEST_RATE_PER_ADDR_PER_SEC: '1000000',
  WEB_REQUEST_RATE_PER_ADDR_PER_SEC: '1000000',
  WEB_REQUEST_BURST_PER_ADDR: '1000000',
  REQUEST_BURST_PER_ADDR: '1000000',
  NEXT_RATE_PER_MIN: '1000000',
  MESSAGE_RATE_PER_SEC: '100000',
  MESSAGE_FLOOD_PER_SEC: '100000',
  MESSAGE_BURST: '100000',
  MESSAGE_BYTES_PER_ADDR_PER_SEC: '1000000000',
  MESSAGE_BYTES_BURST_PER_ADDR: '1000000000',
  CHAT_RATE_PER_MIN: '1000000',
  CHAT_REPEAT_MAX: '1000000',
});

export class DyadProcess {
  private constructor(
    readonly name: string,
    private readonly server: ServerProcess,
  ) {}

  /** Start one process and wait for the listening line of each of its roles. */
  /** keepChars: how much of its output log() keeps (the spawn helper's default if not given). */
  static async start(name: string, env: Record<string, string>, keepChars?: number): Promise<DyadProcess> {
    const server = await ServerProcess.start({ label: name, env: serverEnv(BASE_ENV, env), timeoutMs: START_TIMEOUT_MS, ...(keepChars ? { keepChars } : {}) });
    return new DyadProcess(name, server);
  }

  /** http://host:port of each role of this process. */
  get urls(): ReadonlyMap<string, string> {
    return this.server.urls;
  }

  get child(): ChildProcess {
    return this.server.child;
  }

  get exited(): Promise<Exit> {
    return this.server.exited;
  }

  /** http://host:port of a role of this process. */
  http(role: 'matching' | 'signalling'): string {
    return this.server.url(role);
  }

  ws(role: 'matching' | 'signalling'): string {
    return this.server.ws(role);
  }

  get alive(): boolean {
    return this.server.alive;
  }

  log(): string {
    return this.server.output();
  }

  /** SIGTERM (a graceful stop) or SIGKILL (a crash); SIGKILL after 6 s regardless. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    return this.server.stop(signal, STOP_TIMEOUT_MS);
  }
}
