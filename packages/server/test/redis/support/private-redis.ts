// One private redis-server for a test file: started before its tests and
// stopped after them, with an admin connection to read keys and the Redis
// stores the tests make, each as one process would hold it. The stores are
// closed after every test, and a server paused by a test runs again.
import { after, afterEach, before } from 'node:test';
import { Redis } from 'ioredis';
import { RedisStore, type RedisStoreOptions } from '../../../src/store/redis/index.js';
import { DEFAULTS } from '../../contract/harness.js';
import { RedisServer } from './redis-server.js';

export interface PrivateRedis {
  /** The server (from the file's `before` on). */
  readonly server: RedisServer;
  /** A plain client of the server, for reading and writing keys behind the stores' backs. */
  readonly admin: Redis;
  /** A store on `prefix`, not started (to subscribe first); no reaper timer unless `opts` asks. Closed after the test. */
  makeStore(prefix: string, opts?: Partial<RedisStoreOptions>): RedisStore;
  /** makeStore, started. */
  startStore(prefix: string, opts?: Partial<RedisStoreOptions>): Promise<RedisStore>;
}

/** Registers the file's hooks; call at the top level of a test file. */
export function privateRedis(): PrivateRedis {
  let server: RedisServer | undefined;
  let admin: Redis | undefined;
  const stores: RedisStore[] = [];
  before(async () => {
    server = await RedisServer.start();
    admin = new Redis(server.url);
  });
  afterEach(async () => {
    server?.resume();
    for (const s of stores.splice(0)) await s.close();
  });
  after(async () => {
    admin?.disconnect();
    await server?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the private Redis is started in before(): use it inside tests and hooks');
    return value;
  };
  const makeStore = (prefix: string, opts: Partial<RedisStoreOptions> = {}): RedisStore => {
    const store = new RedisStore({ ...DEFAULTS, url: started(server).url, prefix, reapIntervalMs: 0, ...opts });
    stores.push(store);
    return store;
  };
  return {
    get server() {
      return started(server);
    },
    get admin() {
      return started(admin);
    },
    makeStore,
    async startStore(prefix, opts) {
      const store = makeStore(prefix, opts);
      await store.start();
      return store;
    },
  };
}
