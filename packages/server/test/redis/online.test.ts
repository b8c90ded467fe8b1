// GET /online on Redis counts the whole deployment: a session waiting on one
// matching process shows in the answer of another.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OnlineResponse } from '@dyad/protocol';
import { RedisServer } from './support/redis-server.js';
import { DyadProcess } from './support/dyad-process.js';
import { WireClient, eventually } from '../support/ws-client.js';

let redis: RedisServer;
let m1: DyadProcess;
let m2: DyadProcess;

async function online(proc: DyadProcess): Promise<OnlineResponse> {
  const res = await fetch(`${proc.http('matching')}/online`, { signal: AbortSignal.timeout(3_000) });
  assert.equal(res.status, 200);
  return OnlineResponse.parse(await res.json());
}

describe('GET /online with two matching processes on one Redis', { timeout: 60_000 }, () => {
  before(async () => {
    redis = await RedisServer.start();
    const env = { REDIS_URL: redis.url, ROLES: 'matching', ONLINE_CACHE_MS: '100' };
    [m1, m2] = await Promise.all([DyadProcess.start('m1', env), DyadProcess.start('m2', env)]);
  });

  after(async () => {
    await WireClient.closeAll();
    await Promise.all([m1, m2].filter(Boolean).map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  it('a session waiting on m1 is counted by m2, and gone from it when it leaves', async () => {
    assert.deepEqual(await online(m2), { online: 0, waiting: { video: 0, text: 0 } });
    const m = await WireClient.open(`${m1.ws('matching')}/ws?mode=text`, { channel: 'matching', label: 'm1/matching' });
    await m.expect('session');
    await m.expect('waiting');
    const seen = (want: string) => async () => (JSON.stringify(await online(m2)) === want ? true : undefined);
    await eventually(seen(JSON.stringify({ online: 1, waiting: { video: 0, text: 1 } })), 'm2 counts the session waiting on m1');
    m.send({ event: 'stop' });
    await m.expect('idle');
    await eventually(seen(JSON.stringify({ online: 1, waiting: { video: 0, text: 0 } })), 'stopped: online, not waiting');
    await m.close(1000);
    await eventually(seen(JSON.stringify({ online: 0, waiting: { video: 0, text: 0 } })), 'left: not online either');
  });
});
