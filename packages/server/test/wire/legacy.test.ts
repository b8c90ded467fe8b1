// The legacy protocols (docs/LEGACY.md) on one server, on each store: the
// cases of legacy.cases.ts with both clients of a case on that server. Two
// processes on one Redis: redis/legacy.test.ts.
import { after, afterEach, before, describe } from 'node:test';
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
