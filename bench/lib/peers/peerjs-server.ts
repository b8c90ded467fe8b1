// The peer: the PeerJS signalling server (npm `peer`) with its defaults,
// on a free loopback port. Clients: ws://127.0.0.1:PORT/peerjs?key=peerjs&id=..&token=..
import type { AddressInfo } from 'node:net';
import { PeerServer } from 'peer';

PeerServer(
  {
    host: '127.0.0.1',
    port: 0,
    path: '/',
    // Its default of 5,000 clients would cap the comparison, not its relay speed.
    concurrent_limit: 1_000_000,
  },
  (server) => {
    process.stdout.write(`listening on ${(server.address() as AddressInfo).port}\n`);
  },
);
process.on('SIGTERM', () => process.exit(0));
