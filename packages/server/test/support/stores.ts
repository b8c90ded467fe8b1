// Wire tests that must hold on both stores: the embedded memory store, and the
// Redis store (REDIS_URL) on a private redis-server that this module starts on
// first use, on a free loopback port (never the machine's own 6379).
import { randomBytes } from 'node:crypto';
import { RedisServer } from '../redis/support/redis-server.js';
import { startServer, type RunningServer } from './server.js';

export const STORES = ['memory', 'redis'] as const;
export type StoreKind = (typeof STORES)[number];

let redis: Promise<RedisServer> | undefined;

/** The redis-server of this test file, started on first use. */
export function privateRedis(): Promise<RedisServer> {
  redis ??= RedisServer.start();
  return redis;
}

/** Stops the redis-server of this test file, if it started one; call after the servers using it stopped. */
export async function stopPrivateRedis(): Promise<void> {
  const started = redis;
  redis = undefined;
  await (await started)?.stop();
}

/** A REDIS_PREFIX of its own: servers on one Redis share nothing unless given the same prefix. */
export const uniquePrefix = (): string => `wire-${randomBytes(6).toString('hex')}:`;

/** The settings that put a server on `store`: none for memory; REDIS_URL and a prefix for Redis. */
export async function storeEnv(store: StoreKind, prefix = uniquePrefix()): Promise<Record<string, string>> {
  if (store === 'memory') return {};
  return { REDIS_URL: (await privateRedis()).url, REDIS_PREFIX: prefix };
}

/** startServer() on the given store (with Redis: a prefix of its own on this file's redis-server). */
export async function startServerOn(store: StoreKind, overrides: Record<string, string | undefined> = {}): Promise<RunningServer> {
  return startServer({ ...(await storeEnv(store)), ...overrides });
}
