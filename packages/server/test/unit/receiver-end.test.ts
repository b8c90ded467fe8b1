// On a clean close ws ends a socket's receiver twice (on the client's end,
// then on the close) and its TCP connection twice (on the close handshake,
// then on the client's end); http/socket.ts endOnceEach keeps each second
// call from making Node build an error nobody sees. Real sockets on loopback.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Duplex, Writable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { endOnceEach } from '../../src/http/socket.js';

interface LateEnds {
  receiver: number;
  transport: number;
}

/**
 * Open and cleanly close `n` sockets against a server that applies `prepare`
 * to each; count the `end()` calls that reached Node's own Writable.end on a
 * receiver or a server-side connection that had already ended.
 */
async function endsAfterEnded(n: number, prepare: (ws: WebSocket, transport: Duplex) => void): Promise<LateEnds> {
  const http: Server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  const receivers = new WeakSet<object>();
  const transports = new WeakSet<object>();
  const closed: Array<Promise<unknown>> = [];
  http.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      receivers.add((ws as unknown as { _receiver: object })._receiver);
      transports.add(socket);
      prepare(ws, socket);
      closed.push(once(ws, 'close'));
    });
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const port = (http.address() as AddressInfo).port;
  // Node's Writable.end, which a receiver runs as its own and a TCP connection
  // through Duplex's copy of it (net.Socket's end calls Duplex.prototype.end).
  const end = Writable.prototype.end;
  const duplexEnd = Duplex.prototype.end;
  const late: LateEnds = { receiver: 0, transport: 0 };
  const spy = function (this: Writable, ...args: unknown[]) {
    if (this.writableEnded && receivers.has(this)) late.receiver++;
    if (this.writableEnded && transports.has(this)) late.transport++;
    return (end as (...a: unknown[]) => Writable).apply(this, args);
  };
  Writable.prototype.end = spy as Writable['end'];
  Duplex.prototype.end = spy as Duplex['end'];
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
    Duplex.prototype.end = duplexEnd;
    wss.close();
    http.close();
  }
  return late;
}

describe('a clean close', () => {
  it('ends the receiver and the connection twice each in ws itself (the premise: if this fails, ws no longer does it and endOnceEach can go)', async () => {
    const late = await endsAfterEnded(5, () => {});
    assert.ok(late.receiver >= 5, `receiver: ${late.receiver}`);
    assert.ok(late.transport >= 5, `transport: ${late.transport}`);
  });

  it('with endOnceEach, no second end reaches Node', async () => {
    assert.deepEqual(await endsAfterEnded(5, endOnceEach), { receiver: 0, transport: 0 });
  });
});
