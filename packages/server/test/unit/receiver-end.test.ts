// ws ends a socket's receiver twice on a clean close (on the client's end,
// then on the close); http/socket.ts endReceiverOnce keeps the second call
// from making Node build an error nobody sees. Real sockets on loopback.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { endReceiverOnce } from '../../src/http/socket.js';

/**
 * Open and cleanly close `n` sockets against a server that applies `prepare`
 * to each; count the receivers' `end()` calls made by Node's own
 * Writable.prototype.end after the receiver had already ended.
 */
async function endsAfterEnded(n: number, prepare: (ws: WebSocket) => void): Promise<number> {
  const http: Server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  const receivers = new WeakSet<object>();
  const closed: Array<Promise<unknown>> = [];
  http.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      receivers.add((ws as unknown as { _receiver: object })._receiver);
      prepare(ws);
      closed.push(once(ws, 'close'));
    });
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const port = (http.address() as AddressInfo).port;
  const end = Writable.prototype.end;
  let late = 0;
  Writable.prototype.end = function (this: Writable, ...args: unknown[]) {
    if (receivers.has(this) && this.writableEnded) late++;
    return (end as (...a: unknown[]) => Writable).apply(this, args);
  } as Writable['end'];
  try {
    for (let i = 0; i < n; i++) {
      const client = new WebSocket(`ws://127.0.0.1:${port}`);
      await once(client, 'open');
      client.close(1000);
      await once(client, 'close');
    }
    await Promise.all(closed);
  } finally {
    Writable.prototype.end = end;
    wss.close();
    http.close();
  }
  return late;
}

describe("ws's receiver on a clean close", () => {
  it('is ended twice by ws itself (the premise: if this fails, ws no longer does it and endReceiverOnce can go)', async () => {
    assert.ok((await endsAfterEnded(5, () => {})) >= 5);
  });

  it('with endReceiverOnce, the second end reaches Node no more', async () => {
    assert.equal(await endsAfterEnded(5, endReceiverOnce), 0);
  });
});
