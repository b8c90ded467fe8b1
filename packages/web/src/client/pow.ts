// Proof of work before a start (issue 13): when the matching service asks for
// one (GET /pow), the client solves its ALTCHA challenge here, in the page
// (altcha-lib's solver, bundled and served by Dyad: no third party is asked
// anything). The solution goes with the start as `altcha`. One is solved
// ahead (prefetch) so that Start does not wait for it.
//
// The server takes a solution once and only until its challenge expires
// (POW_CHALLENGE_TTL_MS), and a browser cannot read why a WebSocket upgrade
// was refused (428 or 403 arrive as a bare close). So a proof is handed out
// once and forgotten, a prefetched one is dropped before its challenge ends,
// and the session solves a new one when a start fails (Session.ts).
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
/**
 * A solution is not sent this close to its challenge's end (the start may
 * take a moment to arrive), nor in the last half of a shorter lifetime.
 */
export const EXPIRY_MARGIN_MS = 30_000;
/** setTimeout runs a longer delay at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Proof {
  /** The `altcha` value to send. */
  payload: string;
  /** Not sent after this time, ms on this page's clock: the challenge's end less a margin. */
  useBy: number;
}

/**
 * When a proof stops being worth sending, on this page's clock. `expiresAt`
 * is the server's clock; its `Date` header, read at `askedAt`, gives the
 * offset (to within its one-second resolution, which the margin covers), so a
 * visitor's clock that is minutes off neither keeps a dead proof nor drops
 * every live one.
 */
export function useByTime(expiresAtMs: number, askedAt: number, serverNow: number | undefined): number {
  if (!Number.isFinite(expiresAtMs)) return Infinity;
  const offset = serverNow !== undefined && Number.isFinite(serverNow) ? serverNow - askedAt : 0;
  const end = expiresAtMs - offset;
  const lifetime = Math.max(0, end - askedAt);
  return end - Math.min(EXPIRY_MARGIN_MS, lifetime / 2);
}

/** Ask whether a start needs a proof now and, if so, solve it; undefined when none is needed (or the server cannot be asked). */
export async function solveProof(matchingUrl: string, fetchImpl: typeof fetch = fetch): Promise<Proof | undefined> {
  let body: unknown;
  let serverNow: number | undefined;
  const askedAt = Date.now();
  try {
    const res = await fetchImpl(`${matchingUrl}/pow`, { cache: 'no-store', signal: AbortSignal.timeout(POW_FETCH_TIMEOUT_MS) });
    if (!res.ok) return undefined;
    const date = res.headers.get('date');
    if (date) serverNow = Date.parse(date);
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
  return { payload, useBy: useByTime((challenge.parameters.expiresAt ?? Infinity) * 1000, askedAt, serverNow) };
}

/**
 * Keeps one solved proof ready. take() hands it over (or solves one now) and
 * forgets it: a proof is sent once. A prefetched proof is dropped at its
 * useBy time, so one solved on the landing screen and left there is never sent.
 */
export class ProofCache {
  private pending: Promise<Proof | undefined> | null = null;
  private dropTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly matchingUrl: string,
    private readonly mode: PowMode,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** Whether a start may need a proof at all (POW_MODE is not off). */
  get enabled(): boolean {
    return this.mode !== 'off';
  }

  /** Start solving one ahead, if the server may ask for it. */
  prefetch(): void {
    if (this.mode === 'off' || this.pending) return;
    const pending: Promise<Proof | undefined> = solveProof(this.matchingUrl, this.fetchImpl).catch(() => undefined);
    this.pending = pending;
    void pending.then((proof) => {
      const wait = proof ? proof.useBy - Date.now() : 0;
      // Beyond what a timer can hold (about 24.8 days) take() alone checks it.
      if (this.pending !== pending || !proof || wait > MAX_TIMER_MS) return;
      this.clearDropTimer();
      // Dropped, not solved again: a page left open would otherwise solve one every few minutes for nothing.
      this.dropTimer = setTimeout(() => {
        this.dropTimer = null;
        if (this.pending === pending) this.pending = null;
      }, Math.max(0, wait));
    });
  }

  /** The proof for a start now (undefined when none is needed); never the same one twice. */
  async take(): Promise<string | undefined> {
    if (this.mode === 'off') return undefined;
    this.prefetch();
    const pending = this.pending;
    this.pending = null;
    this.clearDropTimer();
    let proof = await pending;
    // A timer may run late in a background tab: the time is checked again here.
    // Above the rate the server asks only of busy addresses: ask again at start, the answer may have changed.
    if (!proof || proof.useBy < Date.now()) proof = await solveProof(this.matchingUrl, this.fetchImpl).catch(() => undefined);
    return proof?.payload;
  }

  /** Forget the proof in hand and stop its timer (the session is gone). */
  clear(): void {
    this.pending = null;
    this.clearDropTimer();
  }

  private clearDropTimer(): void {
    if (this.dropTimer !== null) clearTimeout(this.dropTimer);
    this.dropTimer = null;
  }
}
