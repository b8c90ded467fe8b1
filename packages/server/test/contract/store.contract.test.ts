// The Store contract, run unchanged on the memory store and on the Redis
// store (against a private redis-server started for this file).
import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import { MemoryStore } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis/index.js';
import { RedisServer } from '../redis/support/redis-server.js';
import { describeStore } from './store.contract.js';

describeStore('memory', async (opts) => new MemoryStore(opts));

let redis: RedisServer | undefined;
before(async () => {
  redis = await RedisServer.start();
});
after(async () => {
  await redis?.stop();
});

describeStore('redis', async (opts) => {
  if (!redis) throw new Error('redis-server did not start');
  // A fresh key prefix per store: every test starts from an empty Redis without a flush.
  const store = new RedisStore({ ...opts, url: redis.url, prefix: `t${randomBytes(4).toString('hex')}:`, reapIntervalMs: 0 });
  await store.start();
  return store;
});
