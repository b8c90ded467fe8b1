// The baseline: a `ws` server that forwards every text frame from one member
// of a pair to the other, untouched (no parsing, no checks). Whatever it
// reaches is the ceiling of Node + ws on this machine for this traffic.
//   clients: ws://127.0.0.1:PORT/?pair=<id>&side=a|b ; both get {"event":"ready"}
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

const pairs = new Map<string, { a?: WebSocket; b?: WebSocket }>();
const server = createServer((_req, res) => res.writeHead(404).end());
// The same frame limit and compression setting as Dyad's edges.
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 16_384 });

wss.on('connection', (ws, req) => {
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  const id = q.get('pair') ?? '';
  const side = q.get('side') === 'b' ? 'b' : 'a';
  let p = pairs.get(id);
  if (!p) pairs.set(id, (p = {}));
  p[side] = ws;
  const pair = p;
  if (pair.a && pair.b) {
    pair.a.send('{"event":"ready"}');
    pair.b.send('{"event":"ready"}');
  }
  ws.on('message', (data, isBinary) => {
    const other = side === 'a' ? pair.b : pair.a;
    other?.send(data, { binary: isBinary });
  });
  ws.on('close', () => {
    if (pair[side] === ws) delete pair[side];
    if (!pair.a && !pair.b) pairs.delete(id);
  });
  ws.on('error', () => undefined);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
