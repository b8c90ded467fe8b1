// Where several Dyad processes keep their shared state in the multi-process
// and chaos tests: one private redis-server, or a private Redis Cluster of
// three primaries. A stall or restart of "Redis" is, on the Cluster, that of
// the shard holding the store's state (the `{dyad}` slot).
import { RedisCluster } from './redis-cluster.js';
import { RedisServer } from './redis-server.js';

/** Where the processes keep their state: one Redis, or a Cluster (its shard holding the state stalls and restarts). */
export interface Backend {
  env: Record<string, string>;
  /** The Redis holding the store's state (on a Cluster, the node of the `{dyad}` slot). */
  stateUrl: string;
  commandCalls(): Promise<Record<string, number>>;
  /** Each node's command counts (one entry for one Redis). */
  nodeCalls(): Promise<Record<string, number>[]>;
  /** Each node's keys matching a glob pattern. */
  nodeKeys(pattern: string): Promise<string[][]>;
  pause(): void;
  resume(): void;
  /** A Cluster only: stall (and go on with) every shard but the one holding the store's state. */
  pauseOthers?(): void;
  resumeOthers?(): void;
  kill(): Promise<void>;
  run(): Promise<void>;
  stop(): Promise<void>;
}

export const BACKENDS: { name: string; start(): Promise<Backend> }[] = [
  {
    name: 'one Redis',
    async start() {
      const r = await RedisServer.start();
      return Object.assign(r, { env: { REDIS_URL: r.url }, stateUrl: r.url, nodeCalls: async () => [await r.commandCalls()], nodeKeys: async (p: string) => [await r.keys(p)] });
    },
  },
  {
    name: 'a Redis Cluster of three primaries',
    async start() {
      const cluster = await RedisCluster.start();
      const state = await cluster.nodeOf('dyad:{dyad}:sess');
      return {
        env: { REDIS_CLUSTER_NODES: cluster.seeds },
        stateUrl: state.url,
        async commandCalls() {
          const all: Record<string, number> = {};
          for (const n of cluster.nodes) for (const [cmd, calls] of Object.entries(await n.commandCalls())) all[cmd] = (all[cmd] ?? 0) + calls;
          return all;
        },
        nodeCalls: () => Promise.all(cluster.nodes.map((n) => n.commandCalls())),
        nodeKeys: (pattern: string) => Promise.all(cluster.nodes.map((n) => n.keys(pattern))),
        pause: () => state.pause(),
        resume: () => state.resume(),
        pauseOthers: () => cluster.nodes.filter((n) => n !== state).forEach((n) => n.pause()),
        resumeOthers: () => cluster.nodes.filter((n) => n !== state).forEach((n) => n.resume()),
        kill: () => state.kill(),
        async run() {
          await state.run();
          await cluster.ready();
        },
        stop: () => cluster.stop(),
      };
    },
  },
];

