// What every call to Redis shares: the connection it goes on, how long it may
// take, and the error its caller hears when it fails.
import type { Cluster, Redis } from 'ioredis';

/**
 * A connection to one Redis or to a Redis Cluster. Every key the store uses
 * for sessions, rooms, pools and inboxes shares the `{dyad}` hash tag, so each
 * script's keys are in one slot and a Cluster client sends it to that slot's
 * node; what goes to another slot (a relay lane, a limiter's count) is a
 * single-key command.
 */
export type Connection = Redis | Cluster;

/** The store could not reach Redis in time; the caller answers with a clear error. */
export class StoreUnavailableError extends Error {
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`store unavailable: ${detail}`, options);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * The error to hand on, without what the client library attaches to it: its
 * copy of the command's arguments holds chat text, signal data and token
 * hashes, which must never reach a log.
 */
export function scrub(err: unknown, script: string): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Error && err.name === 'ReplyError') {
    const e = new Error(`${script} failed: ${message}`);
    e.name = 'StoreScriptError';
    return e;
  }
  return new StoreUnavailableError(message);
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/**
 * Run a script by its SHA-1, and send it whole when Redis does not have it
 * (NOSCRIPT: restarted, or its scripts flushed), which caches it again.
 * `within` bounds each attempt.
 */
export async function evalCached(
  conn: Connection,
  script: { sha: string; lua: string },
  numKeys: number,
  args: readonly string[],
  within: (p: Promise<unknown>) => Promise<unknown> = (p) => p,
): Promise<unknown> {
  try {
    return await within(conn.evalsha(script.sha, numKeys, ...args));
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return within(conn.eval(script.lua, numKeys, ...args));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
