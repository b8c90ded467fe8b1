// The legacy protocols (docs/LEGACY.md) on one server, on each store: the
// cases of legacy.cases.ts with both clients of a case on that server. Two
// processes on one Redis: redis/legacy.test.ts.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { request } from '../support/http.js';
import { runUntilExit, startServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import type { Target } from '../support/legacy.js';
import { WireClient } from '../support/ws-client.js';
import type { RunningServer } from '../support/server.js';
import { legacyCases } from './legacy.cases.js';

/** The settings the cases expect: both protocols, client addresses from X-Forwarded-For, a ban from one report. */
export const LEGACY_ENV = {
  LEGACY_PROTOCOLS: 'random-video-chat,go-megle',
  TRUST_PROXY: 'true',
  REPORT_BAN_THRESHOLD: '1',
  REPORT_MIN_ROOM_MS: '0',
} as const;

const targetOf = (s: RunningServer, label: string): Target => ({
  matching: s.matching,
  matchingWs: s.matchingWs,
  signallingWs: s.signallingWs,
  webWs: s.web.replace(/^http/, 'ws'),
  label,
});

after(() => stopPrivateRedis());
afterEach(() => WireClient.closeAll());

describe('LEGACY_PROTOCOLS', () => {
  it('is off by default: no random-video-chat route or socket, no go-megle socket', async () => {
    const server = await startServer();
    try {
      const posted = await request(`${server.matching}/registerForMatching`, { method: 'POST', body: { name: 'alice' } });
      assert.equal(posted.status, 404);
      // Dyad's own POST /register is untouched: a token for the session, which the socket needs.
      const registered = await request(`${server.matching}/register`, { method: 'POST', body: { name: 'alice' } });
      assert.equal(registered.status, 200);
      for (const url of [`${server.matchingWs}/ws/alice`, `${server.signallingWs}/ws/alice`, `${server.web.replace(/^http/, 'ws')}/ws`]) {
        const attempt = await WireClient.connect(url, { channel: 'matching' });
        assert.equal(attempt.kind, 'refused', url);
      }
    } finally {
      await server.stop();
    }
  });

  it('names only protocols it knows', async () => {
    const run = await runUntilExit({ LEGACY_PROTOCOLS: 'random-video-chat,omegle' });
    assert.equal(run.code, 2);
    assert.match(run.output, /LEGACY_PROTOCOLS: unknown protocol "omegle"/);
  });
});

for (const store of STORES) {
  describe(`legacy protocols on the ${store} store`, () => {
    let server: RunningServer;
    before(async () => {
      server = await startServerOn(store, LEGACY_ENV);
    });
    after(() => server?.stop());
    legacyCases(() => [targetOf(server, store), targetOf(server, store)], { waitMs: 2_000, bans: true });
  });
}
