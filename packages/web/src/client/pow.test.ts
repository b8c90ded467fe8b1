import { describe, expect, it, vi } from 'vitest';
import { createChallenge, verifySolution } from 'altcha-lib';
import { EXPIRY_MARGIN_MS, ProofCache, deriveKey, solveProof, useByTime } from './pow.js';

const SECRET = 'pow-test-secret';

const challenge = (ttlSec = 600) =>
  createChallenge({
    algorithm: 'SHA-256',
    cost: 1,
    counter: 500,
    deriveKey,
    expiresAt: Math.floor(Date.now() / 1000) + ttlSec,
    hmacSignatureSecret: SECRET,
    hmacKeySignatureSecret: SECRET,
  });

/** A /pow that hands out each of `bodies` in turn, with the server's clock in Date. */
const serving = (bodies: unknown[], serverDate = () => new Date()) =>
  vi.fn(async () => new Response(JSON.stringify(bodies.shift()), { status: 200, headers: { Date: serverDate().toUTCString() } })) as unknown as typeof fetch;

/** The challenge signature inside an altcha payload: which challenge a proof solves. */
const signatureOf = (payload: string | undefined) => (JSON.parse(atob(payload!)) as { challenge: { signature: string } }).challenge.signature;

const answering = (body: unknown) => vi.fn(async () => new Response(JSON.stringify(body), { status: 200 })) as unknown as typeof fetch;

describe('proof of work', () => {
  it('solves a challenge into an altcha payload the server accepts', async () => {
    const c = await challenge();
    const fetchImpl = answering({ required: true, challenge: c });
    const proof = await solveProof('http://m', fetchImpl);
    expect(proof).toBeDefined();
    const payload = JSON.parse(atob(proof!.payload));
    const result = await verifySolution({ challenge: payload.challenge, solution: payload.solution, deriveKey, hmacSignatureSecret: SECRET, hmacKeySignatureSecret: SECRET });
    expect(result.verified).toBe(true);
    expect(fetchImpl).toHaveBeenCalledWith('http://m/pow', expect.anything());
  });

  it('solves nothing when none is required, and asks nothing when the mode is off', async () => {
    expect(await new ProofCache('http://m', 'always', answering({ required: false })).take()).toBeUndefined();
    const never = answering({});
    expect(await new ProofCache('http://m', 'off', never).take()).toBeUndefined();
    expect(never).not.toHaveBeenCalled();
  });

  it('a prefetched proof is handed over once, and the next one is solved afresh', async () => {
    const c1 = await challenge();
    const c2 = await challenge();
    const bodies = [{ required: true, challenge: c1 }, { required: true, challenge: c2 }];
    const fetchImpl = vi.fn(async () => new Response(JSON.stringify(bodies.shift()), { status: 200 })) as unknown as typeof fetch;
    const cache = new ProofCache('http://m', 'always', fetchImpl);
    cache.prefetch();
    const first = await cache.take();
    const second = await cache.take();
    expect(first).toBeDefined();
    expect(second).toBeDefined();
    expect(first).not.toBe(second);
  });

  it('a prefetched proof is dropped before its challenge ends, and the next start solves a new one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const c1 = await challenge(60);
      const c2 = await challenge(60);
      const fetchImpl = serving([{ required: true, challenge: c1 }, { required: true, challenge: c2 }]);
      const cache = new ProofCache('http://m', 'always', fetchImpl);
      cache.prefetch();
      await vi.waitFor(() => expect(vi.getTimerCount()).toBe(1));
      // Still in hand just before its use-by time; dropped at it.
      await vi.advanceTimersByTimeAsync(60_000 - EXPIRY_MARGIN_MS - 2_000);
      expect(vi.getTimerCount()).toBe(1);
      await vi.advanceTimersByTimeAsync(2_000);
      expect(vi.getTimerCount()).toBe(0);
      const proof = await cache.take();
      expect(signatureOf(proof)).toBe(c2.signature);
      expect(fetchImpl).toHaveBeenCalledTimes(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a proof past its use-by time is not sent, timer or no timer (a background tab runs timers late), by the server\'s clock', async () => {
    const c1 = await challenge(60);
    const c2 = await challenge(60);
    // Our clock is 61 s behind the server's: the first challenge has ended already.
    const fetchImpl = serving([{ required: true, challenge: c1 }], () => new Date(Date.now() + 61_000));
    const cache = new ProofCache('http://m', 'always', fetchImpl);
    cache.prefetch();
    (fetchImpl as unknown as ReturnType<typeof vi.fn>).mockImplementation(async () => new Response(JSON.stringify({ required: true, challenge: c2 }), { status: 200 }));
    const proof = await cache.take();
    expect(signatureOf(proof)).toBe(c2.signature);
  });

  it('use-by time: the margin, or half a short lifetime, before the end on our clock, whatever our clock says', () => {
    const server = 1_000_000_000_000;
    // Our clock right: 10 minutes less 30 s.
    expect(useByTime(server + 600_000, server, server)).toBe(server + 570_000);
    // Our clock 5 minutes behind the server's: the same 9.5 minutes from now, on our clock.
    expect(useByTime(server + 600_000, server - 300_000, server)).toBe(server - 300_000 + 570_000);
    // Our clock 20 minutes ahead: a live challenge is not taken for a dead one.
    expect(useByTime(server + 600_000, server + 1_200_000, server)).toBe(server + 1_200_000 + 570_000);
    // A 4 s challenge is used in its first 2 s.
    expect(useByTime(server + 4_000, server, server)).toBe(server + 2_000);
    // No Date header: our clock is taken as the server's.
    expect(useByTime(server + 600_000, server, undefined)).toBe(server + 570_000);
    expect(useByTime(Infinity, server, server)).toBe(Infinity);
  });
});
