// Pooled random ids: the right length, never the same bytes twice, across refills of the pool.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newConnId, newRoomCode, newSessionId, newToken, randomId } from '../../src/core/ids.js';

describe('random ids', () => {
  it('encode the asked number of bytes in base64url', () => {
    for (const [make, bytes] of [[newSessionId, 9], [newRoomCode, 18], [newToken, 24], [newConnId, 12]] as const) {
      const id = make();
      assert.match(id, /^[A-Za-z0-9_-]+$/);
      assert.equal(Buffer.from(id, 'base64url').length, bytes);
    }
  });

  it('are all distinct over many refills of the pool, whatever the sizes asked', () => {
    const seen = new Set<string>();
    // 20,000 ids of 9 to 24 bytes: about 80 pool refills, with requests that straddle the pool's end.
    for (let i = 0; i < 20_000; i++) seen.add(randomId(9 + (i % 16)));
    assert.equal(seen.size, 20_000);
  });
});
