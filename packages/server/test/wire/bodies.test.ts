// Request bodies (fifth review, findings H3 and M5): a body in chunks is
// refused before it is read, on every port, and a registration's body is
// read up to MAX_REQUEST_BODY_BYTES.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { describeResponse, request } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';

let server: RunningServer;

before(async () => {
  server = await startServer();
});
after(() => server?.stop());

/**
 * Sends a request head with `Transfer-Encoding: chunked` and then one-byte
 * chunks, never the last one, until the server closes the connection (at
 * most `limitMs`): what it answered, and whether it closed.
 */
function chunkedForever(url: string, limitMs = 3_000): Promise<{ answer: string; closed: boolean; chunksSent: number }> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve) => {
    let answer = '';
    let chunksSent = 0;
    let done = false;
    const socket = net.connect(Number(port), hostname, () => {
      socket.write(`POST ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const pump = (): void => {
        if (done || socket.destroyed) return;
        // 1,000 one-byte chunks a write, as the review's client sent them.
        socket.write('1\r\n{\r\n'.repeat(1_000), () => setImmediate(pump));
        chunksSent += 1_000;
      };
      pump();
    });
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer, closed, chunksSent });
    };
    const timer = setTimeout(() => finish(false), limitMs);
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
  });
}

describe('request bodies', () => {
  for (const port of ['matching', 'signalling', 'web'] as const) {
    it(`a body in chunks (Transfer-Encoding) gets 411 and its connection closed, before it is read: ${port} port`, async () => {
      const path = port === 'matching' ? '/register' : port === 'web' ? '/config.json' : '/healthz';
      const { answer, closed, chunksSent } = await chunkedForever(`${server[port]}${path}`);
      assert.match(answer, /^HTTP\/1\.1 411 /, `answered 411: ${JSON.stringify(answer.slice(0, 120))}`);
      assert.match(answer, /\r\nconnection: close\r\n/i);
      assert.ok(closed, `the server closed the connection (${chunksSent} chunks sent)`);
    });
  }

  it('the Transfer-Encoding line is refused as it comes, before the parser reads on: headers not yet complete, the line cut across two writes', async () => {
    const { hostname, port } = new URL(server.matching);
    const answer = await new Promise<string>((resolve, reject) => {
      let got = '';
      const socket = net.connect(Number(port), hostname, () => {
        socket.write(`POST /register HTTP/1.1\r\nHost: ${hostname}:${port}\r\nTransfer-Enc`);
        setTimeout(() => socket.write('oding: chunked\r\n'), 50);
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no answer while the headers are incomplete; got ${JSON.stringify(got)}`));
      }, 2_000);
      socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(got);
      });
      socket.on('error', () => undefined);
    });
    assert.match(answer, /^HTTP\/1\.1 411 /, 'answered 411 and closed, its headers never complete');
  });

  it('a registration body past MAX_REQUEST_BODY_BYTES (4096 by default) gets 413; one within is read', async () => {
    const big = await request(`${server.matching}/register`, { method: 'POST', body: { mode: 'text', interests: ['x'], pad: 'y'.repeat(5_000) } });
    assert.equal(big.status, 413, describeResponse(big));
    const ok = await request(`${server.matching}/register`, { method: 'POST', body: { mode: 'text', interests: ['a'.repeat(32), 'b'.repeat(32)] } });
    assert.equal(ok.status, 200, describeResponse(ok));
  });
});
