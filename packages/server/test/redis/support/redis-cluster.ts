// A private Redis Cluster for one test suite: three primaries on free loopback
// ports (cluster mode, nothing saved to disk), joined with `redis-cli --cluster
// create`, ready once every node reports cluster_state:ok.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { RedisServer } from './redis-server.js';

const run = promisify(execFile);
const READY_TIMEOUT_MS = 20_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const CLUSTER_ARGS = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'];

export class RedisCluster {
  private constructor(readonly nodes: RedisServer[]) {}

  /** REDIS_CLUSTER_NODES for these nodes. */
  get seeds(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  }

  get addresses(): { host: string; port: number }[] {
    return this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  static async start(primaries = 3): Promise<RedisCluster> {
    const nodes = await Promise.all(Array.from({ length: primaries }, () => RedisServer.start(CLUSTER_ARGS)));
    const cluster = new RedisCluster(nodes);
    try {
      await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes']);
      await cluster.ready();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Resolves once every node says cluster_state:ok (a restarted node takes its slots back from nodes.conf). */
  async ready(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const states = await Promise.all(
        this.nodes.map(async (n) => {
          try {
            return (await run('redis-cli', ['-p', String(n.port), 'cluster', 'info'])).stdout;
          } catch {
            return '';
          }
        }),
      );
      if (states.every((s) => s.includes('cluster_state:ok'))) return;
      if (Date.now() > deadline) throw new Error(`redis cluster not ready within ${READY_TIMEOUT_MS} ms`);
      await sleep(100);
    }
  }

  /** The node that holds `key`'s slot. */
  async nodeOf(key: string): Promise<RedisServer> {
    const first = this.nodes[0];
    if (!first) throw new Error('no nodes');
    const slot = Number((await run('redis-cli', ['-p', String(first.port), 'cluster', 'keyslot', key])).stdout.trim());
    const { stdout } = await run('redis-cli', ['-p', String(first.port), 'cluster', 'shards']);
    // Plain output of CLUSTER SHARDS: "slots" then start/end pairs, then the nodes with their ports.
    const lines = stdout.split('\n').map((l) => l.trim());
    for (let i = 0; i < lines.length; i++) {
      if (lines[i] !== 'slots') continue;
      const ranges: number[] = [];
      let j = i + 1;
      while (j < lines.length && /^\d+$/.test(lines[j] ?? '')) ranges.push(Number(lines[j++]));
      const portAt = lines.indexOf('port', j);
      const port = Number(lines[portAt + 1]);
      for (let k = 0; k + 1 < ranges.length; k += 2) {
        if (slot >= (ranges[k] ?? 0) && slot <= (ranges[k + 1] ?? -1)) {
          const node = this.nodes.find((n) => n.port === port);
          if (node) return node;
        }
      }
    }
    throw new Error(`no node holds slot ${slot}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}
