// The shipped per-address limits against one client with a whole IPv6 /64,
// from real source addresses (no X-Forwarded-For: TRUST_PROXY is off, as by
// default). Inside this suite's private network namespace a documentation
// /48 is routed to loopback, so sockets can be opened from any address of it:
// what an attacker with one /64 (every home connection and every rented
// server has one) can do. Each /64 must count as one client, to the limits on
// registrations, open sockets and open connections alike.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { request } from '../packages/server/test/support/http.js';
import { WireClient } from '../packages/server/test/support/ws-client.js';
import { startServer } from './harness.js';
import type { RunningServer } from './harness.js';

/** RFC 3849 documentation space: never anyone's, and routed here only inside the namespace. */
const BLOCK = '2001:db8:d0';
/** The shipped REGISTER_RATE_PER_MIN and MAX_SOCKETS_PER_ADDR (README). */
const REGISTER_RATE_PER_MIN = 30;
const MAX_SOCKETS_PER_ADDR = 32;
/** The shipped MAX_CONNECTIONS_PER_ADDR: 8 × MAX_SOCKETS_PER_ADDR. */
const MAX_CONNECTIONS_PER_ADDR = 8 * MAX_SOCKETS_PER_ADDR;

/** The n-th address of the /64 numbered `net` in BLOCK. */
const address = (net: number, n: number): string => `${BLOCK}:${net.toString(16)}::${n.toString(16)}`;

before(() => {
  // Routing addresses to loopback and binding to them changes the network it runs in: only in a namespace of
  // its own, where loopback is all there is.
  const others = Object.keys(networkInterfaces()).filter((name) => name !== 'lo');
  if (others.length > 0) {
    throw new Error(`this test routes addresses to loopback: run it through npm run test:e2e, which gives it a private network namespace (here: ${others.join(', ')})`);
  }
  execFileSync('ip', ['-6', 'route', 'replace', 'local', `${BLOCK}::/48`, 'dev', 'lo']);
  writeFileSync('/proc/sys/net/ipv6/ip_nonlocal_bind', '1');
});
after(() => WireClient.closeAll());

describe('one IPv6 /64 is one client (IPV6_PREFIX_LENGTH, default 64), from real source addresses', () => {
  let server: RunningServer;
  let registrations: RunningServer;
  before(async () => {
    // Listening on IPv6 loopback, TRUST_PROXY off: the address is the TCP peer's.
    [registrations, server] = await Promise.all([
      startServer({ HOST: '::1', REGISTER_RATE_PER_MIN: '' }),
      startServer({ HOST: '::1', MAX_SOCKETS_PER_ADDR: '' }),
    ]);
  });
  after(() => Promise.all([server?.stop(), registrations?.stop()]));

  it(`${REGISTER_RATE_PER_MIN} registrations a minute from ${REGISTER_RATE_PER_MIN} addresses of one /64, then 429 for every other address of it; the next /64 registers`, async () => {
    const register = (from: string) => request(`${registrations.matching}/register`, { method: 'POST', body: {}, localAddress: from });
    for (let n = 1; n <= REGISTER_RATE_PER_MIN; n++) assert.equal((await register(address(0, n))).status, 200, `registration from ${address(0, n)}`);
    for (const from of [address(0, 0xbeef), `${BLOCK}:0:ffff:ffff:ffff:fffe`]) assert.equal((await register(from)).status, 429, `a new address of the same /64: ${from}`);
    assert.equal((await register(address(1, 1))).status, 200, 'the next /64');
  });

  it(`${MAX_SOCKETS_PER_ADDR} open sockets from ${MAX_SOCKETS_PER_ADDR} addresses of one /64, then 429 for the next address of it; the next /64 opens one`, async () => {
    const url = `${server.matching.replace(/^http/, 'ws')}/ws?mode=text`;
    const open = (from: string) => WireClient.connect(url, { channel: 'matching', label: `one-trip from ${from}`, localAddress: from });
    const held: WireClient[] = [];
    for (let n = 1; n <= MAX_SOCKETS_PER_ADDR; n++) {
      const attempt = await open(address(2, n));
      assert.equal(attempt.kind, 'open', `socket ${n} from ${address(2, n)}: ${attempt.kind === 'refused' ? `HTTP ${attempt.status}` : ''}`);
      if (attempt.kind === 'open') held.push(attempt.client);
    }
    const over = await open(address(2, 0xbeef));
    assert.equal(over.kind === 'refused' && over.status, 429, 'a new address of the /64 holding its sockets');
    const next = await open(address(3, 1));
    assert.equal(next.kind, 'open', 'the next /64');
    if (next.kind === 'open') await next.client.expect('session');
    await Promise.all(held.map((c) => c.close(1000)));
  });

  it(`${MAX_CONNECTIONS_PER_ADDR} idle connections from as many addresses of one /64, then the next from it is closed unread; the next /64 is served`, async () => {
    const { port } = new URL(server.web);
    const connect = (from: string) =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ port: Number(port), host: '::1', localAddress: from });
        socket.once('connect', () => resolve(socket));
        socket.once('error', reject);
      });
    const held: net.Socket[] = [];
    try {
      for (let n = 1; n <= MAX_CONNECTIONS_PER_ADDR; n++) held.push(await connect(address(4, n)));
      const over = await connect(address(4, 0xbeef));
      over.on('error', () => undefined);
      over.resume();
      const closed = await Promise.race([new Promise<boolean>((r) => over.once('close', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 2_000))]);
      assert.ok(closed, `connection ${MAX_CONNECTIONS_PER_ADDR + 1} from the /64 is closed at once`);
      assert.ok(held.every((s) => !s.destroyed && !s.readableEnded), 'the connections within the limit stay open');
      const res = await request(`${server.web}/healthz`, { localAddress: address(5, 1) });
      assert.equal(res.status, 200, 'the next /64 is served meanwhile');
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
