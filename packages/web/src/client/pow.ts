// Proof of work before a start (issue 13): when the matching service asks for
// one (GET /pow), the client solves its ALTCHA challenge here, in the page
// (altcha-lib's solver, bundled and served by Dyad: no third party is asked
// anything). The solution goes with the start as `altcha`. One is solved
// ahead (prefetch) so that Start does not wait for it.
import { solveChallenge, type DeriveKeyFunction } from 'altcha-lib';
import { sha256 } from '@noble/hashes/sha2.js';
import { PowResponse } from '@dyad/protocol';

/**
 * ALTCHA's SHA-256 key (salt + password, `cost` rounds), computed in
 * JavaScript: a Web Crypto digest costs about 100 µs a call in its promise
 * round trip, which would make the solve ~50x slower than the hashing itself.
 */
export const deriveKey: DeriveKeyFunction = async (parameters, salt, password) => {
  let data = new Uint8Array(salt.length + password.length);
  data.set(salt);
  data.set(password, salt.length);
  for (let i = 0; i < Math.max(1, parameters.cost); i++) data = sha256(data);
  return { derivedKey: data.slice(0, parameters.keyLength ?? 32) };
};

export type PowMode = 'always' | 'above-rate' | 'off';

const POW_FETCH_TIMEOUT_MS = 5_000;
/** A solution is not used this close to its challenge's end (the start may take a moment to arrive). */
const EXPIRY_MARGIN_MS = 30_000;

export interface Proof {
  /** The `altcha` value to send. */
  payload: string;
  /** When the challenge expires, ms. */
  expiresAt: number;
}

/** Ask whether a start needs a proof now and, if so, solve it; undefined when none is needed (or the server cannot be asked). */
export async function solveProof(matchingUrl: string, fetchImpl: typeof fetch = fetch): Promise<Proof | undefined> {
  let body: unknown;
  try {
    const res = await fetchImpl(`${matchingUrl}/pow`, { cache: 'no-store', signal: AbortSignal.timeout(POW_FETCH_TIMEOUT_MS) });
    if (!res.ok) return undefined;
    body = await res.json();
  } catch {
    return undefined;
  }
  const parsed = PowResponse.safeParse(body);
  if (!parsed.success || !parsed.data.required || !parsed.data.challenge) return undefined;
  const challenge = parsed.data.challenge;
  const solution = await solveChallenge({ challenge, deriveKey });
  if (!solution) return undefined;
  const payload = btoa(JSON.stringify({ challenge, solution: { counter: solution.counter, derivedKey: solution.derivedKey } }));
  return { payload, expiresAt: (challenge.parameters.expiresAt ?? Infinity) * 1000 };
}

/** Keeps one solved proof ready; take() hands it over (or solves one now) and starts the next. */
export class ProofCache {
  private pending: Promise<Proof | undefined> | null = null;

  constructor(
    private readonly matchingUrl: string,
    private readonly mode: PowMode,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** Start solving one ahead, if the server may ask for it. */
  prefetch(): void {
    if (this.mode === 'off' || this.pending) return;
    this.pending = solveProof(this.matchingUrl, this.fetchImpl).catch(() => undefined);
  }

  /** The proof for a start now (undefined when none is needed). */
  async take(): Promise<string | undefined> {
    if (this.mode === 'off') return undefined;
    this.prefetch();
    let proof = await this.pending;
    this.pending = null;
    // Above the rate the server asks only of busy addresses: ask again at start, the answer may have changed.
    if (!proof || proof.expiresAt - EXPIRY_MARGIN_MS < Date.now()) proof = await solveProof(this.matchingUrl, this.fetchImpl).catch(() => undefined);
    return proof?.payload;
  }
}
