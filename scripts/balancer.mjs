#!/usr/bin/env node
// A small TCP round-robin balancer for running several Dyad processes on one
// machine without Docker (scripts/topology.sh): each listen port spreads new
// connections (HTTP and WebSocket alike) over its backends, skipping one that
// refuses. Not for production: a real proxy should pass the client address on.
//
// Usage: node scripts/balancer.mjs LISTEN=BACKEND[,BACKEND...] [...]
//   e.g. node scripts/balancer.mjs 127.0.0.1:8000=127.0.0.1:8100,127.0.0.1:8110
import net from 'node:net';

const parse = (hostPort) => {
  const i = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, i) || '127.0.0.1', port: Number(hostPort.slice(i + 1)) };
};

const routes = process.argv.slice(2).map((arg) => {
  const [listen, backends] = arg.split('=');
  if (!listen || !backends) throw new Error(`bad route ${JSON.stringify(arg)}: expected LISTEN=BACKEND[,BACKEND...]`);
  return { listen: parse(listen), backends: backends.split(',').map(parse) };
});
if (routes.length === 0) {
  process.stderr.write('usage: node scripts/balancer.mjs LISTEN=BACKEND[,BACKEND...] [...]\n');
  process.exit(2);
}

for (const { listen, backends } of routes) {
  let next = 0;
  // No Nagle on either side: a small frame (a chat line, a signal) is passed on at once, never held for an ACK.
  const server = net.createServer({ noDelay: true }, (client) => {
    client.pause();
    const start = next++ % backends.length;
    // Try each backend once, starting with the next in turn.
    const attempt = (k) => {
      if (k >= backends.length) return client.destroy();
      const b = backends[(start + k) % backends.length];
      const upstream = net.connect({ port: b.port, host: b.host, noDelay: true });
      const refused = () => attempt(k + 1);
      upstream.once('error', refused);
      upstream.once('connect', () => {
        upstream.off('error', refused);
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });
  server.listen(listen.port, listen.host, () => {
    process.stdout.write(`balancer ${listen.host}:${listen.port} -> ${backends.map((b) => `${b.host}:${b.port}`).join(', ')}\n`);
  });
}
