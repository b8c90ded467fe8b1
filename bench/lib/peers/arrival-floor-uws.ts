// The arrival floor on uWebSockets.js: the same server as arrival-floor.ts
// (accept every upgrade, pair the two latest arrivals, send each one message)
// on uWebSockets.js's native HTTP and WebSocket stack instead of node:http and
// `ws`. It answers what the arrival path would cost on the fastest WebSocket
// server Node has, below `ws`. Optional: the product does not use it, and it is
// not among the repo's dependencies (its only npm package is an unofficial
// republish of the native build). `npm run bench:uws-floor` installs it under
// artifacts/uws-floor; the arrival section runs this row when it is there.
// Only the native build is loaded: the package's pure-JS fallback (on `ws`)
// would measure the other floor again.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { UWS_BINARY } from '../uws-floor.js';

/** The few calls of uWebSockets.js used here (the package ships no types for its binaries). */
interface UwsSocket {
  send(text: string): number;
  getUserData(): { name: string; open: boolean };
}
interface UwsReq {
  getQuery(): string | undefined;
  getHeader(name: string): string;
}
interface UwsRes {
  upgrade(data: unknown, key: string, protocol: string, extensions: string, context: unknown): void;
  writeStatus(status: string): UwsRes;
  end(): void;
}
interface Uws {
  App(): {
    ws(pattern: string, behaviour: Record<string, unknown>): unknown;
    any(pattern: string, handler: (res: UwsRes) => void): unknown;
    listen(host: string, port: number, cb: (token: unknown) => void): unknown;
  };
  us_socket_local_port(token: unknown): number;
  DISABLED: number;
}

if (!existsSync(UWS_BINARY)) {
  process.stderr.write(`no native uWebSockets.js build at ${UWS_BINARY} (npm run bench:uws-floor installs it)\n`);
  process.exit(3);
}
const uws = createRequire(import.meta.url)(UWS_BINARY) as Uws;

let waiting: UwsSocket | undefined;
let rooms = 0;
const app = uws.App();
// The same frame limit and compression setting as Dyad's edges; no idle timeout (ws has none).
app.ws('/*', {
  compression: uws.DISABLED,
  maxPayloadLength: 16_384,
  idleTimeout: 0,
  upgrade: (res: UwsRes, req: UwsReq, context: unknown) => {
    const name = new URLSearchParams(req.getQuery() ?? '').get('name') ?? '';
    res.upgrade({ name, open: false }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws: UwsSocket) => {
    const me = ws.getUserData();
    me.open = true;
    const other = waiting;
    if (other?.getUserData().open) {
      waiting = undefined;
      const room = String(++rooms);
      other.send(JSON.stringify({ event: 'matched', room_code: room, peer: me.name, initiator: true }));
      ws.send(JSON.stringify({ event: 'matched', room_code: room, peer: other.getUserData().name, initiator: false }));
    } else {
      waiting = ws;
    }
  },
  close: (ws: UwsSocket) => {
    ws.getUserData().open = false;
    if (waiting === ws) waiting = undefined;
  },
});
app.any('/*', (res) => res.writeStatus('404 Not Found').end());
app.listen('127.0.0.1', 0, (token) => {
  if (!token) {
    process.stderr.write('could not listen\n');
    process.exit(1);
  }
  process.stdout.write(`listening on ${uws.us_socket_local_port(token)}\n`);
});
process.on('SIGTERM', () => process.exit(0));
