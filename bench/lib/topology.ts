// The server set-ups a run measures: one process on the embedded store, or
// one or two processes sharing a private Redis, or two on a private Redis
// Cluster of three primaries (relay only).
import { randomBytes } from 'node:crypto';
import { RedisCluster } from '../../packages/server/test/redis/support/redis-cluster.js';
import type { BenchContext } from './context.js';
import { cpuSeconds, rssBytes, runQueueSeconds, startDyad, startRedis, type DyadProcess, type RedisProcess } from './procs.js';
import { scrape, type Scrape } from './prom.js';

/** The set-ups `--stores` may name. */
export const TOPOLOGIES = ['memory', 'redis-1', 'redis-2'] as const;
export type TopologyName = (typeof TOPOLOGIES)[number] | 'cluster-2';

export const TOPOLOGY_LABEL: Record<TopologyName, string> = {
  memory: 'memory, 1 process',
  'redis-1': 'Redis, 1 process',
  'redis-2': 'Redis, 2 processes',
  'cluster-2': 'Redis Cluster of 3 primaries, 2 processes',
};

export interface Topology {
  name: TopologyName;
  procs: DyadProcess[];
  redis?: RedisProcess;
  matchingWs: string[];
  signallingWs: string[];
  /** Every process's metrics (each scraped once). */
  scrape(): Promise<Scrape[]>;
  /** CPU seconds used so far by the Dyad processes, and by Redis (every shard of a Cluster). */
  cpu(): { dyad: number; redis: number };
  /** CPU seconds used so far by each Redis node. */
  shards(): number[];
  /** Seconds the Dyad processes' main threads have waited, runnable, for a CPU so far (summed), and how many processes. */
  waited(): { seconds: number; procs: number };
  rss(): number;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Names the processes (and their CPU profiles): `<label>`, `<label>-p2`. */
  label?: string;
  inspect?: boolean;
  cpuProfDir?: string;
  env?: Record<string, string>;
}

export class Unavailable extends Error {
  override readonly name = 'Unavailable';
}

/**
 * Start a set-up for one section of a run, or note in `unavailable` why it
 * cannot run: a Redis set-up that failed to start once is not tried again in
 * the same run (`ctx.redisUnavailable`).
 */
export async function startForSection(
  ctx: BenchContext,
  section: string,
  name: TopologyName,
  unavailable: Partial<Record<TopologyName, string>>,
): Promise<Topology | undefined> {
  if (name !== 'memory' && ctx.redisUnavailable) {
    unavailable[name] = ctx.redisUnavailable;
    return undefined;
  }
  try {
    return await startTopology(name, { label: `${section}-${name}`, cpuProfDir: ctx.cpuProfDir });
  } catch (err) {
    if (!(err instanceof Unavailable)) throw err;
    unavailable[name] = err.message;
    if (name !== 'memory') ctx.redisUnavailable = err.message;
    ctx.progress.line(`${section}, ${TOPOLOGY_LABEL[name]}: redis mode unavailable (${err.message})`);
    return undefined;
  }
}

export async function startTopology(name: TopologyName, opts: StartOptions = {}): Promise<Topology> {
  let redis: RedisProcess | undefined;
  let cluster: RedisCluster | undefined;
  const procs: DyadProcess[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.stop()));
    await redis?.stop();
    await cluster?.stop();
  };
  try {
    if (name === 'memory') {
      procs.push(await startDyad({ label: opts.label ?? name, inspect: opts.inspect, cpuProfDir: opts.cpuProfDir, env: opts.env }));
    } else {
      let at: Record<string, string>;
      try {
        if (name === 'cluster-2') {
          cluster = await RedisCluster.start();
          // One lane per primary: the relayed signals spread over the three shards.
          at = { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_RELAY_LANES: '3' };
        } else {
          redis = await startRedis();
          at = { REDIS_URL: redis.url };
        }
      } catch (err) {
        throw new Unavailable(`redis-server: ${(err as Error).message}`);
      }
      // Processes that share a Redis must hash client addresses with the same key.
      const env = { ...at, ADDRESS_HASH_KEY: randomBytes(16).toString('hex'), ...opts.env };
      const n = name === 'redis-1' ? 1 : 2;
      for (let i = 0; i < n; i++) {
        try {
          procs.push(
            await startDyad({
              label: `${opts.label ?? name}-p${i + 1}`,
              roles: ['matching', 'signalling'],
              env,
              inspect: opts.inspect,
              cpuProfDir: opts.cpuProfDir,
            }),
          );
        } catch (err) {
          throw new Unavailable((err as Error).message);
        }
      }
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  const shards = (): number[] => (cluster ? cluster.nodes.map((n) => cpuSeconds(n.pid)) : redis ? [cpuSeconds(redis.pid)] : []);
  return {
    name,
    procs,
    redis,
    matchingWs: procs.map((p) => p.matchingWs ?? ''),
    signallingWs: procs.map((p) => p.signallingWs ?? ''),
    // Through the signalling listener: the matching one may be flooded by arrivals under test.
    scrape: () => Promise.all(procs.map((p) => scrape(`${p.signalling ?? p.matching}/metrics`))),
    cpu: () => ({ dyad: procs.reduce((n, p) => n + cpuSeconds(p.pid), 0), redis: shards().reduce((a, b) => a + b, 0) }),
    shards,
    waited: () => ({ seconds: procs.reduce((n, p) => n + runQueueSeconds(p.pid), 0), procs: procs.length }),
    rss: () => procs.reduce((n, p) => n + rssBytes(p.pid), 0),
    stop: stopAll,
  };
}
