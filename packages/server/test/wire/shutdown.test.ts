// SIGTERM / SIGINT: the process stops accepting, closes every client with 1001,
// and exits 0 within 5 s.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { enter, oneTrip, pairJoined } from '../support/dyad.js';
import { request } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient } from '../support/ws-client.js';

const EXIT_WITHIN_MS = 5_000;
const servers: RunningServer[] = [];

after(async () => {
  await WireClient.closeAll();
  await Promise.all(servers.map((s) => s.stop('SIGKILL')));
});

async function exitWithin(server: RunningServer, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    server.exited,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    }),
  ]);
  clearTimeout(timer);
  assert.ok(exit, `the process did not exit within ${ms} ms of the signal:\n${server.output().slice(-2000)}`);
  return { ...exit, ms: Date.now() - started };
}

describe('shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal}: every matching and signalling socket gets close 1001, the process exits 0 within 5 s`, async () => {
      const server = await startServer();
      servers.push(server);
      const p = await pairJoined(server);
      const waiting = await enter(server);
      const trip = await oneTrip(server);
      const clients = [p.a.m, p.b.m, p.a.s!, p.b.s!, waiting.m, trip.m];

      server.signal(signal);
      const closes = await Promise.all(clients.map((c) => c.expectClose(1001, EXIT_WITHIN_MS, 'close 1001 (going away) on shutdown')));
      assert.equal(closes.length, clients.length);
      const exit = await exitWithin(server, EXIT_WITHIN_MS);
      assert.deepEqual([exit.code, exit.signal], [0, null], `exit status after ${signal}:\n${server.output().slice(-2000)}`);

      await assert.rejects(request(`${server.matching}/healthz`), 'the port no longer accepts connections');
    });
  }
});
