// The per-address limits shared by every process (Limiter): a counter per key
// for its window, as rate-limiter-flexible's RateLimiterRedis keeps one, and
// per limit a sorted set of its keys by when their windows end, so that a
// limit holds at most LIMITER_KEYS_MAX keys in Redis: past it the window that
// ends first goes, as in the embedded store's WindowLimiter. While Redis does
// not answer within REDIS_CALL_TIMEOUT_MS, this process's own count stands in.
import { createHash } from 'node:crypto';
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { Limiter } from '../store.js';
import { WindowLimiter } from '../window-limiter.js';
import { evalCached, type Connection } from './calls.js';

/**
 * KEYS[1] the key's counter, KEYS[2] the limit's index (one hash tag: one
 * slot). ARGV: what to do (consume, reward or get), points, the window (ms),
 * now (ms; only orders the index, so the processes' clocks may differ a
 * little), the most keys held. Returns nil for a key without a window, else
 * {points counted, ms until the window ends, 1 when this point began it}.
 */
const LIMIT_LUA = String.raw`
local k, z = KEYS[1], KEYS[2]
local op, pts, dur, now, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if op == 'get' or op == 'reward' then
  local n = redis.call('GET', k)
  if not n then return nil end
  if op == 'reward' then n = redis.call('DECRBY', k, pts) end
  return {tonumber(n), redis.call('PTTL', k), 0}
end
if not redis.call('SET', k, 0, 'PX', dur, 'NX') then
  return {redis.call('INCRBY', k, pts), redis.call('PTTL', k), 0}
end
-- A new window: the ended ones leave the index (their counters expired on
-- their own), then, at the cap, those that end first go with their counters.
redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
local over = redis.call('ZCARD', z) - max + 1
if over > 0 then
  local gone = redis.call('ZPOPMIN', z, over)
  for i = 1, #gone, 2 do redis.call('DEL', gone[i]) end
end
redis.call('ZADD', z, now + dur, k)
redis.call('PEXPIRE', z, dur)
return {redis.call('INCRBY', k, pts), dur, 1}
`;
const LIMIT = { sha: createHash('sha1').update(LIMIT_LUA).digest('hex'), lua: LIMIT_LUA };

type Reply = [counted: number, msLeft: number, first: number] | null;

export class RedisWindowLimiter implements Limiter {
  /** This process's own count, answering while Redis does not. */
  private readonly standIn: WindowLimiter;
  private readonly durationMs: string;

  constructor(
    private readonly conn: Connection,
    /** The limit's keys begin with this (it carries the limit's hash tag). */
    private readonly keyPrefix: string,
    private readonly index: string,
    readonly points: number,
    durationSec: number,
    private readonly maxKeys: number,
  ) {
    this.durationMs = String(durationSec * 1_000);
    this.standIn = new WindowLimiter(points, durationSec, Date.now, maxKeys);
  }

  async consume(key: string | number, points = 1): Promise<RateLimiterRes> {
    const r = await this.run('consume', key, points);
    // (A consume always has a window to answer with.)
    if (!r) return this.standIn.consume(key, points);
    const res = this.answer(r);
    if (res.consumedPoints > this.points) throw res;
    return res;
  }

  async reward(key: string | number, points = 1): Promise<RateLimiterRes> {
    const r = await this.run('reward', key, points);
    if (r === undefined) return this.standIn.reward(key, points);
    return r === null ? new RateLimiterRes(this.points, 0, 0, false) : this.answer(r);
  }

  async get(key: string | number): Promise<RateLimiterRes | null> {
    const r = await this.run('get', key, 0);
    if (r === undefined) return this.standIn.get(key);
    return r === null ? null : this.answer(r);
  }

  /** The script's reply, or undefined when Redis did not give one (the stand-in answers then). */
  private async run(op: 'consume' | 'reward' | 'get', key: string | number, points: number): Promise<Reply | undefined> {
    const args = [`${this.keyPrefix}${key}`, this.index, op, String(points), this.durationMs, String(Date.now()), String(this.maxKeys)];
    try {
      return (await evalCached(this.conn, LIMIT, 2, args)) as Reply;
    } catch {
      // Not ready, timed out (the connection's commandTimeout) or failed.
      return undefined;
    }
  }

  private answer([counted, msLeft, first]: [number, number, number]): RateLimiterRes {
    return new RateLimiterRes(Math.max(0, this.points - counted), Math.max(0, msLeft), counted, first === 1);
  }
}
