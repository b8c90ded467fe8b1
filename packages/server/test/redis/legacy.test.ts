// The legacy protocols (docs/LEGACY.md) across two processes on one Redis:
// in every case of legacy.cases.ts the two clients are on different
// processes, and a random-video-chat client may POST to one process while
// its matching socket is on the other.
import { after, afterEach, before, describe } from 'node:test';
import { RedisServer } from './support/redis-server.js';
import { DyadProcess } from './support/dyad-process.js';
import type { Target } from '../support/legacy.js';
import { WireClient } from '../support/ws-client.js';
import { legacyCases } from '../wire/legacy.cases.js';

/** Several processes and a Redis share two cores. */
const WAIT_MS = 5_000;

const targetOf = (p: DyadProcess): Target => ({
  matching: p.http('matching'),
  matchingWs: p.ws('matching'),
  signallingWs: p.ws('signalling'),
  webWs: (p.urls.get('web') ?? '').replace(/^http/, 'ws'),
  label: p.name,
});

describe('legacy protocols across two processes on one Redis', { timeout: 180_000 }, () => {
  let redis: RedisServer;
  let p1: DyadProcess;
  let p2: DyadProcess;
  before(async () => {
    redis = await RedisServer.start();
    const env = {
      REDIS_URL: redis.url,
      LEGACY_PROTOCOLS: 'random-video-chat,go-megle',
      TRUST_PROXY: 'true',
      REPORT_BAN_THRESHOLD: '1',
      REPORT_MIN_ROOM_MS: '0',
    };
    [p1, p2] = await Promise.all([DyadProcess.start('p1', env), DyadProcess.start('p2', env)]);
  });
  afterEach(() => WireClient.closeAll());
  after(async () => {
    await WireClient.closeAll();
    await Promise.all([p1, p2].filter(Boolean).map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });
  legacyCases(() => [targetOf(p1), targetOf(p2)], { waitMs: WAIT_MS, bans: true });
});
