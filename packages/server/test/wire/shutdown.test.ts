// SIGTERM / SIGINT: the process stops accepting, closes every client with 1001,
// and exits 0 within 5 s.
import assert from 'node:assert/strict';
import net from 'node:net';
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

  it('SIGTERM exits 0 within 5 s while standard output is not being read (a full pipe never holds the process)', async () => {
    const server = await startServer({ LOG_LEVEL: 'debug' });
    servers.push(server);
    // The reader stops reading; the process keeps logging (a debug line per abandoned request) until its pipe is full.
    server.process.stdout?.pause();
    const { port } = new URL(server.matching);
    for (let i = 0; i < ABANDONED_REQUESTS; i++) await abandonedRequest(Number(port));
    const health = await request(`${server.matching}/healthz`);
    assert.equal(health.status, 200, 'the service still answers while its log cannot be written');

    server.signal('SIGTERM');
    const exit = await exitWithin(server, EXIT_WITHIN_MS);
    assert.deepEqual([exit.code, exit.signal], [0, null], 'exit status after SIGTERM with a full standard output');
  });
});

/** Enough debug lines (about 150 bytes each) to fill a 64 KiB pipe a few times over. */
const ABANDONED_REQUESTS = 1_500;

/** A POST whose body never completes: the server logs "request abandoned" at debug level. */
function abandonedRequest(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"a', () => {
        setTimeout(() => socket.destroy(), 1);
      });
    });
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
  });
}

