import { describe, expect, it, vi } from 'vitest';
import { createChallenge, verifySolution } from 'altcha-lib';
import { ProofCache, deriveKey, solveProof } from './pow.js';

const SECRET = 'pow-test-secret';

const challenge = () =>
  createChallenge({
    algorithm: 'SHA-256',
    cost: 1,
    counter: 500,
    deriveKey,
    expiresAt: Math.floor(Date.now() / 1000) + 600,
    hmacSignatureSecret: SECRET,
    hmacKeySignatureSecret: SECRET,
  });

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
});
