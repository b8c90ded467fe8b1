// The arrival floor: a `ws` server that accepts every upgrade and pairs the
// two most recent arrivals with no rules (no registration, no token, no pool,
// no store): when a second visitor arrives it sends each of the two one
// message, the analogue of `matched`. Whatever time and CPU an arrival costs
// here is the floor of Node + ws on this machine for the arrival path.
//   clients: ws://127.0.0.1:PORT/?name=<id> ; on pairing both get
//   {"event":"matched","room_code":"<n>","peer":"<the other's name>","initiator":true|false}
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

let waiting: { ws: WebSocket; name: string } | undefined;
let rooms = 0;
const server = createServer((_req, res) => res.writeHead(404).end());
// The same frame limit and compression setting as Dyad's edges.
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 16_384 });

wss.on('connection', (ws, req) => {
  const name = new URL(req.url ?? '/', 'http://x').searchParams.get('name') ?? '';
  const other = waiting;
  if (other && other.ws.readyState === ws.OPEN) {
    waiting = undefined;
    const room = String(++rooms);
    other.ws.send(JSON.stringify({ event: 'matched', room_code: room, peer: name, initiator: true }));
    ws.send(JSON.stringify({ event: 'matched', room_code: room, peer: other.name, initiator: false }));
  } else {
    waiting = { ws, name };
  }
  ws.on('close', () => {
    if (waiting?.ws === ws) waiting = undefined;
  });
  ws.on('error', () => undefined);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
