// Dyad processes as an operator runs them (node packages/server/dist/main.js),
// each found by the `<role> listening on http://HOST:PORT` lines it prints.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../..');
const ENTRY = path.join(REPO_ROOT, 'packages/server/dist/main.js');
const START_TIMEOUT_MS = 15_000;
const KEEP_OUTPUT_CHARS = 20_000;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Settings for every process of a multi-process test; loopback only, limits out of the way of many clients from 127.0.0.1. */
export const BASE_ENV: Readonly<Record<string, string>> = Object.freeze({
  HOST: '127.0.0.1',
  MATCHING_PORT: '0',
  SIGNALLING_PORT: '0',
  WEB_PORT: '0',
  LOG_LEVEL: 'warn',
  // Processes on one Redis must hash client addresses alike (bans and reports).
  ADDRESS_HASH_KEY: 'multi-process-test-key',
  REGISTER_RATE_PER_MIN: '1000000',
  MAX_SOCKETS_PER_ADDR: '1000000',
  NEXT_RATE_PER_MIN: '1000000',
  MESSAGE_RATE_PER_SEC: '100000',
  MESSAGE_FLOOD_PER_SEC: '100000',
  MESSAGE_BURST: '100000',
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class DyadProcess {
  readonly urls = new Map<string, string>();
  private output = '';
  readonly exited: Promise<Exit>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    live.add(child);
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-KEEP_OUTPUT_CHARS);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      }),
    );
  }

  /** Start one process and wait for the listening line of each of its roles. */
  static async start(name: string, env: Record<string, string>): Promise<DyadProcess> {
    if (!existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: run npm run build -w @dyad/protocol -w @dyad/server first`);
    const full: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...BASE_ENV, ...env };
    const child = spawn(process.execPath, [ENTRY], { cwd: REPO_ROOT, env: full, stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new DyadProcess(name, child);
    const roles = (full.ROLES ?? 'matching,signalling,web').split(',').map((r) => r.trim()).filter(Boolean);
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error(`${name} did not start within ${START_TIMEOUT_MS} ms:\n${p.output}`)), START_TIMEOUT_MS);
      child.stdout?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          const m = /^(matching|signalling|web) listening on (http:\/\/\S+?)\/?$/.exec(line);
          if (m?.[1] && m[2]) p.urls.set(m[1], m[2]);
        }
        if (roles.every((r) => p.urls.has(r))) {
          clearTimeout(timer);
          resolve();
        }
      });
      void p.exited.then((e) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited during start (${e.code ?? e.signal}):\n${p.output}`));
      });
    });
    return p;
  }

  /** http://host:port of a role of this process. */
  http(role: 'matching' | 'signalling'): string {
    const u = this.urls.get(role);
    if (!u) throw new Error(`${this.name} does not run ${role}`);
    return u;
  }

  ws(role: 'matching' | 'signalling'): string {
    return this.http(role).replace(/^http/, 'ws');
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    return this.output;
  }

  /** SIGTERM (a graceful stop) or SIGKILL (a crash); SIGKILL after 6 s regardless. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    if (!this.alive) return this.exited;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 6_000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
