// The Store contract, run unchanged on the memory store, on the Redis store
// (against a private redis-server started for this file) and on the Redis
// store over a Redis Cluster of three primaries (started for this file too).
import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import { MemoryStore } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis/index.js';
import { RedisCluster } from '../redis/support/redis-cluster.js';
import { RedisServer } from '../redis/support/redis-server.js';
import { describeStore } from './store.contract.js';

describeStore('memory', async (opts) => new MemoryStore(opts));

let redis: RedisServer | undefined;
let cluster: RedisCluster | undefined;
before(async () => {
  [redis, cluster] = await Promise.all([RedisServer.start(), RedisCluster.start()]);
});
after(async () => {
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

// A fresh key prefix per store: every test starts from an empty Redis without a flush.
const prefix = (): string => `t${randomBytes(4).toString('hex')}:`;

describeStore('redis', async (opts) => {
  if (!redis) throw new Error('redis-server did not start');
  const store = new RedisStore({ ...opts, url: redis.url, prefix: prefix(), reapIntervalMs: 0 });
  await store.start();
  return store;
});

describeStore('redis-cluster', async (opts) => {
  if (!cluster) throw new Error('redis cluster did not start');
  const store = new RedisStore({ ...opts, cluster: cluster.addresses, prefix: prefix(), reapIntervalMs: 0 });
  await store.start();
  return store;
});
