// A private redis-server for one test suite (or one benchmark): a free port on
// loopback, nothing saved to disk, killed with the process that started it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const READY_TIMEOUT_MS = 10_000;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A port nobody listens on right now (Redis cannot pick one itself: `--port 0` means no TCP at all). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export class RedisServer {
  private child: ChildProcess | undefined;
  private readonly dir: string;

  private constructor(
    readonly port: number,
    private readonly extraArgs: readonly string[] = [],
  ) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'dyad-redis-'));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The running redis-server's process id (0 while stopped). */
  get pid(): number {
    return this.child?.exitCode === null ? (this.child.pid ?? 0) : 0;
  }

  /** Started with `extraArgs` after the usual ones (e.g. cluster mode: RedisCluster). */
  static async start(extraArgs: readonly string[] = []): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), extraArgs);
    await server.run();
    return server;
  }

  /** (Re)start on the same port, resolving once Redis accepts connections. */
  async run(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--loglevel', 'notice', ...this.extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within ${READY_TIMEOUT_MS} ms:\n${output}`)), READY_TIMEOUT_MS);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run redis-server (apt-get install redis-server): ${err.message}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${output}`));
      });
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  /** The keys matching a glob pattern. */
  async keys(pattern: string): Promise<string[]> {
    const { stdout } = await run('redis-cli', ['-p', String(this.port), '--scan', '--pattern', pattern]);
    return stdout.split('\n').filter((k) => k !== '');
  }

  /** Calls of each command so far (INFO commandstats), lower-cased names: e.g. evalsha, xadd. */
  async commandCalls(): Promise<Record<string, number>> {
    const { stdout } = await run('redis-cli', ['-p', String(this.port), 'info', 'commandstats']);
    const calls: Record<string, number> = {};
    for (const m of stdout.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) calls[m[1] ?? ''] = Number(m[2]);
    return calls;
  }

  /** A stall: the process stops answering (SIGSTOP) until `resume`. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** A crash: SIGKILL, data gone. */
  async kill(): Promise<void> {
    await this.end('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.end('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}
