// Proof of work before a session is made (issue 13, "Bots and spam"): an
// ALTCHA challenge from GET /pow, solved by the client, checked here before
// POST /register or a one-trip start makes a session. A solution is good
// once: it is marked used in the store (shared by every process on Redis)
// until its challenge expires. It slows a scripted visitor down; it does
// not stop one that pays (docs/SECURITY.md).
import { createHmac, randomBytes } from 'node:crypto';
import { createChallenge, randomInt, verifySolution, type Challenge, type Payload } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { Limiter, LimiterFactory } from '../store/store.js';
import type { PowErrorCode } from '@dyad/protocol';
import type { Settings } from '../config.js';

/** The hash a solver repeats: one SHA-256 per try keeps a phone's cost predictable. */
const ALGORITHM = 'SHA-256';

/** A start that may go on (with the solution it carried, for the store to spend as it registers), or why not. */
export type PowCheck = { ok: true; proof?: { key: string; untilMs: number } } | { ok: false; code: PowErrorCode; message: string };

/** The HMAC key: POW_SECRET, else one derived from ADDRESS_HASH_KEY (shared already by processes on one Redis), else random. */
export function powKey(settings: Pick<Settings, 'powSecret'>, addressHashKey: string | undefined): string {
  if (settings.powSecret) return settings.powSecret;
  if (addressHashKey) return createHmac('sha256', addressHashKey).update('dyad proof of work').digest('base64url');
  return randomBytes(32).toString('base64url');
}

export class ProofOfWork {
  /** Starts per address in the last minute, for POW_MODE=above-rate. */
  private readonly starts: Limiter | undefined;

  constructor(
    private readonly settings: Pick<Settings, 'powMode' | 'powRatePerMin' | 'powDifficulty' | 'powChallengeTtlMs'>,
    private readonly key: string,
    limiter: LimiterFactory,
  ) {
    this.starts = settings.powMode === 'above-rate' ? limiter('pow-starts', Math.max(1, settings.powRatePerMin), 60) : undefined;
  }

  /** Would a start from `addr` need a solved challenge now? */
  async required(addr: string): Promise<boolean> {
    if (this.settings.powMode === 'off') return false;
    if (this.settings.powMode === 'always' || !this.starts) return true;
    if (this.settings.powRatePerMin === 0) return true;
    const res = await this.starts.get(addr);
    return (res?.consumedPoints ?? 0) >= this.settings.powRatePerMin;
  }

  /** A fresh challenge: the counter is hidden below POW_DIFFICULTY, the key prefix signed so that checking costs one HMAC. */
  async challenge(now: number): Promise<Challenge> {
    return createChallenge({
      algorithm: ALGORITHM,
      cost: 1,
      counter: randomInt(this.settings.powDifficulty),
      deriveKey,
      expiresAt: Math.floor((now + this.settings.powChallengeTtlMs) / 1000),
      hmacSignatureSecret: this.key,
      hmacKeySignatureSecret: this.key,
    });
  }

  /**
   * Check a start from `addr` carrying `payload` (base64 of the solved
   * challenge's JSON, or undefined). Counts the start for `above-rate`. A
   * good solution is not spent here: the registration spends it in the same
   * store call (store.ts Admission), which refuses a replay.
   */
  async check(addr: string, payload: string | undefined, now: number): Promise<PowCheck> {
    if (this.settings.powMode === 'off') return { ok: true };
    if (this.starts) {
      try {
        await this.starts.consume(addr);
        if (payload === undefined) return { ok: true };
      } catch (rej) {
        if (!(rej instanceof RateLimiterRes)) throw rej;
      }
    }
    if (payload === undefined) return { ok: false, code: 'pow-required', message: 'a solved proof of work is required: GET /pow, solve it, send it as altcha' };
    const parsed = decodePayload(payload);
    if (!parsed) return { ok: false, code: 'pow-invalid', message: 'altcha: not a proof-of-work payload' };
    let result;
    try {
      result = await verifySolution({
        challenge: parsed.challenge,
        solution: parsed.solution,
        deriveKey,
        hmacSignatureSecret: this.key,
        hmacKeySignatureSecret: this.key,
      });
    } catch {
      return { ok: false, code: 'pow-invalid', message: 'altcha: not a proof-of-work payload' };
    }
    if (result.expired) return { ok: false, code: 'pow-invalid', message: 'altcha: the challenge has expired, ask for a new one' };
    if (!result.verified || parsed.challenge.parameters.algorithm !== ALGORITHM) {
      return { ok: false, code: 'pow-invalid', message: 'altcha: the solution does not solve a challenge of this server' };
    }
    const expiresMs = (parsed.challenge.parameters.expiresAt ?? 0) * 1000;
    return { ok: true, proof: { key: parsed.challenge.signature ?? '', untilMs: Math.max(expiresMs, now + 1_000) } };
  }
}

/** What a start whose solution was used already is told. */
export const PROOF_SPENT = { code: 'pow-invalid', message: 'altcha: this solution was used already, solve a new challenge' } as const;

/** The client's payload: base64 (or base64url) of `{challenge, solution}` JSON; undefined when it is not one. */
function decodePayload(payload: string): Payload | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload, 'base64').toString('utf8'));
  } catch {
    return undefined;
  }
  const p = value as Partial<Payload> | null;
  const c = p?.challenge;
  const sol = p?.solution;
  if (!c || typeof c !== 'object' || typeof c.signature !== 'string' || !c.parameters || typeof c.parameters !== 'object') return undefined;
  if (!sol || typeof sol !== 'object' || typeof sol.counter !== 'number' || typeof sol.derivedKey !== 'string') return undefined;
  return { challenge: { parameters: c.parameters, signature: c.signature }, solution: { counter: sol.counter, derivedKey: sol.derivedKey } };
}
