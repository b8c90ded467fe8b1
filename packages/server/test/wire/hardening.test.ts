// Protections below the protocol, over real sockets: header and request
// timeouts against slow clients (slowloris), WebSocket heartbeats, no
// compression, the body size limit, TLS at the operator's proxy, and logs
// that never carry a secret, on both stores.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { HttpError } from '@dyad/protocol';
import {
  enter,
  expectMatched,
  expectUnauthorized,
  freshAddress,
  from,
  join,
  matchingUrl,
  oneTripUrl,
  openMatching,
  openSignalling,
  pairJoined,
  register,
  signallingUrl,
} from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import { rawExchange } from '../support/raw-http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import { WireClient, eventually, sleep } from '../support/ws-client.js';

const HTTP_TIMEOUT_MS = 1_000;
/** Node looks for timed-out connections at intervals (a quarter of HTTP_TIMEOUT_MS here), then the close crosses loopback. */
const TIMEOUT_SLACK_MS = 3_000;
const DRIP_EVERY_MS = 100;
const PING_INTERVAL_MS = 200;
/** A socket that answers no ping is found out at the second sweep after it went quiet. */
const DEAD_AFTER_MS = 2 * PING_INTERVAL_MS + 2_000;
const MAX_CONNECTIONS = 8;
const REQUEST_RATE = 2;
const REQUEST_BURST = 5;
/** How long a connection refused at once takes at most to be seen closed, and how long one let in is watched. */
const REFUSE_WITHIN_MS = 1_000;
/** How long a freed place may take to show: the server counts a connection until it has closed. */
const RELEASE_MS = 2_000;

let server: RunningServer; // short HTTP timeouts and heartbeat
let proxied: RunningServer; // behind a TLS proxy: PUBLIC_*_URL set
let capped: RunningServer; // few connections per address
let cappedBehindProxy: RunningServer; // the same, with TRUST_PROXY
let full: RunningServer; // few connections in all
let paced: RunningServer; // few requests per address

before(async () => {
  const fewConnections = { MAX_CONNECTIONS_PER_ADDR: String(MAX_CONNECTIONS), MAX_SOCKETS_PER_ADDR: String(MAX_CONNECTIONS / 2) };
  [server, proxied, capped, cappedBehindProxy, full, paced] = await Promise.all([
    startServer({ HTTP_TIMEOUT_MS: String(HTTP_TIMEOUT_MS), PING_INTERVAL_MS: String(PING_INTERVAL_MS), GRACE_MS: '5000' }),
    startServer({ PUBLIC_MATCHING_URL: 'https://chat.example/matching/', PUBLIC_SIGNALLING_URL: 'https://signal.chat.example' }),
    startServer(fewConnections),
    startServer({ ...fewConnections, TRUST_PROXY: 'true' }),
    startServer({ MAX_CONNECTIONS: String(MAX_CONNECTIONS) }),
    startServer({
      REQUEST_RATE_PER_ADDR_PER_SEC: String(REQUEST_RATE),
      REQUEST_BURST_PER_ADDR: String(REQUEST_BURST),
      WEB_REQUEST_RATE_PER_ADDR_PER_SEC: String(REQUEST_RATE),
      WEB_REQUEST_BURST_PER_ADDR: String(2 * REQUEST_BURST),
    }),
  ]);
});
after(async () => {
  await WireClient.closeAll();
  await Promise.all([server?.stop(), proxied?.stop(), capped?.stop(), cappedBehindProxy?.stop(), full?.stop(), paced?.stop()]);
  await stopPrivateRedis();
});
afterEach(() => WireClient.closeAll());

/**
 * Opens a connection, sends `first`, then one byte of `drip` every
 * DRIP_EVERY_MS; resolves once the server ends the connection, with what it
 * sent and when, or fails after `limitMs`.
 */
function dripUntilClosed(url: string, first: string, drip: string, limitMs: number): Promise<{ afterMs: number; received: string }> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let received = '';
    let at = 0;
    const socket = net.connect(Number(port), hostname, () => {
      if (first) socket.write(first);
    });
    const timer = setInterval(() => {
      if (drip && !socket.destroyed) socket.write(drip[at++ % drip.length] ?? 'x');
    }, DRIP_EVERY_MS);
    const limit = setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error(`${url}: the server still held a slow connection after ${limitMs} ms (got ${JSON.stringify(received.slice(0, 100))})`));
    }, limitMs);
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(limit);
      resolve({ afterMs: Date.now() - started, received });
    });
  });
}

/** A raw `ws` client that never answers pings (autoPong off), keeping what it receives. */
function openWithoutPongs(url: string): Promise<{ ws: WebSocket; messages: { event: string }[]; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { autoPong: false });
    const messages: { event: string }[] = [];
    ws.on('message', (data) => messages.push(JSON.parse(data.toString()) as { event: string }));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.once('open', () => resolve({ ws, messages, closed }));
    ws.once('error', reject);
  });
}

async function closedWithin<T>(closed: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([closed, new Promise<'open'>((r) => (timer = setTimeout(() => r('open'), ms)))]);
  clearTimeout(timer);
  assert.notEqual(result, 'open', `${what}: still open after ${ms} ms`);
  return result as T;
}

describe('slow clients (HTTP_TIMEOUT_MS)', () => {
  it('a connection that sends nothing, headers a byte at a time, or a body a byte at a time is cut off after HTTP_TIMEOUT_MS, on every port', async () => {
    const limit = HTTP_TIMEOUT_MS + TIMEOUT_SLACK_MS;
    const cases: [string, string, string, string][] = [];
    for (const url of [server.matching, server.signalling, server.web]) {
      cases.push([`${url}: nothing at all`, url, '', '']);
      cases.push([`${url}: headers that never end`, url, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ', 'abcdefgh']);
      cases.push([`${url}: an upgrade whose headers never end`, url, 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nX-Slow: ', 'abcdefgh']);
    }
    cases.push([`${server.matching}: a body that never ends`, server.matching, 'POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"name":"', 'aaaaaaaa']);
    const results = await Promise.all(cases.map(([, url, first, drip]) => dripUntilClosed(url, first, drip, limit)));
    for (const [i, r] of results.entries()) {
      const what = cases[i]![0];
      assert.ok(r.afterMs >= HTTP_TIMEOUT_MS - 100, `${what}: closed after ${r.afterMs} ms, before HTTP_TIMEOUT_MS`);
      assert.ok(r.received === '' || r.received.startsWith('HTTP/1.1 408 '), `${what}: answered ${JSON.stringify(r.received.slice(0, 100))}`);
    }
    // Meanwhile everyone else was served.
    await register(server);
  });
});

describe('slow readers of HTTP responses (HTTP_TIMEOUT_MS)', () => {
  it('a client that stops reading a large file of the web role is cut off after HTTP_TIMEOUT_MS: its connection (and the file) are not held for good', async () => {
    // A web root with a file far larger than the sockets' buffers, and two connections per address.
    const root = await mkdtemp(path.join(tmpdir(), 'dyad-web-'));
    await writeFile(path.join(root, 'index.html'), '<!doctype html><title>t</title>');
    await writeFile(path.join(root, 'big.bin'), Buffer.alloc(64 * 1024 * 1024, 1));
    const web = await startServer({ HTTP_TIMEOUT_MS: String(HTTP_TIMEOUT_MS), WEB_ROOT: root, MAX_CONNECTIONS_PER_ADDR: '2', MAX_SOCKETS_PER_ADDR: '1' });
    try {
      const stalled: net.Socket[] = [];
      for (let i = 0; i < 2; i++) {
        const held = await connectIdle(web.web, '127.0.0.5');
        held.socket.write('GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        // Reads nothing more: what the server sends fills the sockets' buffers, then it waits.
        held.socket.pause();
        stalled.push(held.socket);
      }
      await sleep(200);
      const third = await connectIdle(web.web, '127.0.0.5');
      assert.equal(await third.closedWithin(REFUSE_WITHIN_MS), true, 'the two stalled downloads hold the address\'s places');
      await sleep(HTTP_TIMEOUT_MS);
      // Once they are cut off, the address has its places back.
      const again = await letInAgain(web.web, '127.0.0.5', 'the stalled downloads');
      again.socket.destroy();
      for (const s of stalled) s.destroy();
      const ok = await request(`${web.web}/index.html`, { localAddress: '127.0.0.6' });
      assert.equal(ok.status, 200);
    } finally {
      await web.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});

interface Held {
  socket: net.Socket;
  /** Resolves true if the server closed the connection within `ms`, having sent nothing. */
  closedWithin(ms: number): Promise<boolean>;
}

/** A TCP connection from `localAddress` that sends nothing (what fills a server's descriptors). */
function connectIdle(url: string, localAddress: string): Promise<Held> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let received = '';
    const socket = net.connect({ port: Number(port), host: hostname, localAddress });
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('connect', () =>
      resolve({
        socket,
        async closedWithin(ms) {
          const shut = await Promise.race([closed.then(() => true), sleep(ms).then(() => false)]);
          assert.equal(received, '', `${url}: the server wrote ${JSON.stringify(received.slice(0, 100))} on a connection it refused`);
          return shut;
        },
      }),
    );
    socket.once('error', reject);
  });
}

/** The operator is told, in the log: the line crosses the child's pipe after the refusal it tells of, so it is waited for. */
async function inLog(server: RunningServer, line: RegExp): Promise<void> {
  await eventually(async () => (line.test(server.output()) ? true : undefined), `${line} in the log`, 2_000, 20);
}

/** Once a held connection has closed: tries, bounded by RELEASE_MS, until a new one from `from` is let in. */
async function letInAgain(url: string, from: string, closed: string): Promise<Held> {
  const deadline = Date.now() + RELEASE_MS;
  for (;;) {
    const again = await connectIdle(url, from);
    if (!(await again.closedWithin(REFUSE_WITHIN_MS / 4))) return again;
    assert.ok(Date.now() < deadline, `no place freed ${RELEASE_MS} ms after ${closed} closed`);
  }
}

describe('open connections (MAX_CONNECTIONS_PER_ADDR, MAX_CONNECTIONS)', () => {
  it(`an address holding ${MAX_CONNECTIONS} connections over the three ports gets its next one closed unread, on any port; another address is served; a closed one frees a place`, async () => {
    const ports = [capped.matching, capped.signalling, capped.web];
    const held: Held[] = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) held.push(await connectIdle(ports[i % ports.length]!, '127.0.0.2'));
    for (const h of held) assert.equal(await h.closedWithin(10), false, 'a connection within the limit stays open');
    for (const url of ports) {
      const over = await connectIdle(url, '127.0.0.2');
      assert.equal(await over.closedWithin(REFUSE_WITHIN_MS), true, `${url}: connection ${MAX_CONNECTIONS + 1} from one address is closed at once`);
    }
    await inLog(capped, /connections refused: an address holds MAX_CONNECTIONS_PER_ADDR/);
    const warnings = capped.output().match(/connections refused: an address holds MAX_CONNECTIONS_PER_ADDR/g) ?? [];
    assert.equal(warnings.length, 1, `one warning in the log for the three refusals (at most one a minute):\n${capped.output().slice(-1500)}`);
    assert.ok(!capped.output().includes('127.0.0.2'), 'the log does not name the address');
    const other = await request(`${capped.matching}/healthz`, { localAddress: '127.0.0.3' });
    assert.equal(other.status, 200, `another address meanwhile: ${describeResponse(other)}`);
    held.pop()!.socket.destroy();
    (await letInAgain(capped.web, '127.0.0.2', "one of the address's connections")).socket.destroy();
    for (const h of held) h.socket.destroy();
  });

  it(`a process holding MAX_CONNECTIONS (${MAX_CONNECTIONS}) from as many addresses closes the next one unread, from any address; a closed one frees a place`, async () => {
    const held: Held[] = [];
    for (let i = 1; i <= MAX_CONNECTIONS; i++) held.push(await connectIdle(i % 2 === 0 ? full.matching : full.web, `127.0.1.${i}`));
    for (const h of held) assert.equal(await h.closedWithin(10), false, 'a connection within the limit stays open');
    for (const from of ['127.0.1.1', '127.0.2.1']) {
      const over = await connectIdle(full.signalling, from);
      assert.equal(await over.closedWithin(REFUSE_WITHIN_MS), true, `connection ${MAX_CONNECTIONS + 1} of the process, from ${from}, is closed at once`);
    }
    await inLog(full, /new connections refused: the process holds MAX_CONNECTIONS/);
    held.pop()!.socket.destroy();
    (await letInAgain(full.signalling, '127.0.2.1', "one of the process's connections")).socket.destroy();
    for (const h of held) h.socket.destroy();
  });

  it('with TRUST_PROXY every connection is the proxy\'s, and none is refused for their number', async () => {
    const held: Held[] = [];
    for (let i = 0; i < 2 * MAX_CONNECTIONS; i++) held.push(await connectIdle(cappedBehindProxy.matching, '127.0.0.2'));
    for (const h of held) assert.equal(await h.closedWithin(10), false, 'the proxy\'s connections stay open');
    assert.equal((await request(`${cappedBehindProxy.matching}/healthz`, { localAddress: '127.0.0.2' })).status, 200);
    for (const h of held) h.socket.destroy();
  });
});

describe('requests per address (REQUEST_RATE_PER_ADDR_PER_SEC, REQUEST_BURST_PER_ADDR)', () => {
  it(`past a burst of ${REQUEST_BURST} on the services' ports an address gets 429 (its connection closed), its upgrades 429, its new connections closed unread; the web port and other addresses are served; ${REQUEST_RATE}/s refill it`, async () => {
    const from = '127.0.0.7';
    // A connection opened while the address still has requests, kept for an upgrade once it has none.
    const early = net.connect({ port: Number(new URL(paced.signalling).port), host: '127.0.0.1', localAddress: from });
    await new Promise<void>((resolve, reject) => early.once('connect', resolve).once('error', reject));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const pow = () => request(`${paced.matching}/pow`, { agent, localAddress: from });
    try {
      for (let i = 1; i <= REQUEST_BURST; i++) assert.equal((await pow()).status, 200, `request ${i} of the burst`);
      const over = await pow();
      assert.equal(over.status, 429, `request ${REQUEST_BURST + 1}: ${describeResponse(over)}`);
      assert.equal(over.headers.connection, 'close');
      const body = HttpError.parse(over.json());
      assert.ok(body.status === 'error' && Number.isInteger(body.retry_after) && (body.retry_after ?? 0) >= 1, `the contract's error with retry_after: ${over.text}`);

      let answer = '';
      early.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      const closed = new Promise<void>((resolve) => early.once('close', () => resolve()));
      early.write('GET /ws/someone?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      await closed;
      assert.match(answer, /^HTTP\/1\.1 429 Too Many Requests\r\n/, 'an upgrade past the burst');

      const fresh = await connectIdle(paced.matching, from);
      assert.equal(await fresh.closedWithin(REFUSE_WITHIN_MS), true, 'a new connection to a service port from the address is closed at once');
      assert.equal((await request(`${paced.web}/healthz`, { localAddress: from })).status, 200, 'the web port serves the address');
      assert.equal((await request(`${paced.matching}/pow`, { localAddress: '127.0.0.8' })).status, 200, 'another address is served');
      await sleep(1_000 / REQUEST_RATE + 200);
      assert.equal((await request(`${paced.matching}/pow`, { localAddress: from })).status, 200, 'the address again, once its bucket refilled a token');
      await inLog(paced, /requests refused: an address is past REQUEST_RATE_PER_ADDR_PER_SEC/);
    } finally {
      early.destroy();
      agent.destroy();
    }
  });

  it(`the web port has a bucket of its own (WEB_REQUEST_RATE_PER_ADDR_PER_SEC, WEB_REQUEST_BURST_PER_ADDR): past its burst (${2 * REQUEST_BURST}) an address gets 429 there, while the services' ports serve it (fifth review, M4)`, async () => {
    const from = '127.0.0.9';
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 1; i <= 2 * REQUEST_BURST; i++) assert.equal((await request(`${paced.web}/config.json`, { agent, localAddress: from })).status, 200, `request ${i} of the burst`);
      const over = await request(`${paced.web}/config.json`, { agent, localAddress: from });
      assert.equal(over.status, 429, describeResponse(over));
      assert.equal((await request(`${paced.matching}/pow`, { localAddress: from })).status, 200, "a service's port serves the address");
      assert.equal((await request(`${paced.web}/config.json`, { localAddress: '127.0.0.10' })).status, 200, 'another address is served');
      await inLog(paced, /web requests refused: an address is past WEB_REQUEST_RATE_PER_ADDR_PER_SEC/);
    } finally {
      agent.destroy();
    }
  });
});

describe('heartbeats (PING_INTERVAL_MS)', () => {
  it('a matching socket that answers no ping is dropped; its session keeps its place for GRACE_MS and the token resumes it', async () => {
    const a = await register(server);
    const silent = await openWithoutPongs(matchingUrl(server, a.id, a.token));
    const code = await closedWithin(silent.closed, DEAD_AFTER_MS, 'a matching socket that answers no ping');
    assert.equal(code, 1006, 'the server drops it without a close handshake');
    assert.deepEqual(silent.messages.map((m) => m.event), ['waiting']);
    const b = await enter(server);
    const back = await openMatching(server, a.id, a.token);
    assert.equal((await expectMatched(back)).peer, b.id, 'the resumed session is paired with the newcomer');
    await b.m.expect('matched');
  });

  it('a joined signalling socket that answers no ping is dropped; the partner is told nothing and the member rejoins', async () => {
    const p = await pairJoined(server);
    const silent = await openWithoutPongs(signallingUrl(server, p.initiator.id, p.initiator.token));
    await p.initiator.s!.expectClose(4002);
    silent.ws.send(JSON.stringify({ event: 'join', room_code: p.room }));
    await closedWithin(silent.closed, DEAD_AFTER_MS, 'a signalling socket that answers no ping');
    assert.deepEqual(silent.messages.map((m) => m.event), ['verified']);
    await p.responder.s!.expectSilence(0, { why: 'the partner is told nothing during a grace period' });
    await join(server, p.initiator, p.room, { role: 'initiator', peer: p.responder.id, peerJoined: true });
  });

  it('sockets whose client answers pings stay open through many intervals', async () => {
    const p = await pairJoined(server);
    await sleep(PING_INTERVAL_MS * 5);
    for (const c of [p.a.m, p.b.m, p.a.s!, p.b.s!]) await c.expectSilence(0, { why: 'pings are answered by the client library' });
  });
});

describe('frames and bodies', () => {
  it('WebSocket compression is off: an offer of permessage-deflate is declined on both ports', async () => {
    const { id, token } = await register(server);
    for (const [url, channel] of [
      [matchingUrl(server, id, token), 'matching'],
      [signallingUrl(server, id, token), 'signalling'],
      [oneTripUrl(server), 'matching'],
    ] as const) {
      const c = await WireClient.open(url, { channel, label: `${channel} offering permessage-deflate` });
      // The `ws` client offers permessage-deflate unless told not to.
      assert.equal(c.ws.extensions, '', `${c.label}: negotiated extensions`);
    }
  });

  it('a client that sends a burst of pings is dropped once 60 pongs wait to be written; one that pings now and then gets every pong', async () => {
    const open = async (): Promise<WebSocket> => {
      const { id, token } = await register(server);
      const ws = new WebSocket(matchingUrl(server, id, token), { perMessageDeflate: false });
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      return ws;
    };
    const calm = await open();
    let pongs = 0;
    calm.on('pong', () => pongs++);
    for (let i = 0; i < 100; i++) {
      calm.ping(Buffer.alloc(125, i));
      await new Promise((resolve) => calm.once('pong', resolve));
    }
    assert.equal(pongs, 100, 'each ping answered');
    assert.equal(calm.readyState, WebSocket.OPEN);
    calm.close();
    await new Promise((resolve) => calm.once('close', resolve));
    // ws answers pings itself, and drops a socket with 60 answers not yet written (its maxPendingAutoPongs): a burst in one read is past it.
    const flood = await open();
    const closed = new Promise<number>((resolve) => flood.once('close', resolve));
    flood.on('error', () => undefined);
    for (let i = 0; i < 1_000 && flood.readyState === WebSocket.OPEN; i++) flood.ping(Buffer.alloc(125, i));
    assert.equal(await closedWithin(closed, 5_000, 'a socket flooding pings'), 1006, 'dropped without a close handshake');
    assert.equal((await request(`${server.matching}/healthz`)).status, 200, 'the process is up');
  });

  it("a POST /register body larger than MAX_REQUEST_BODY_BYTES (4096 by default) gets 413 with the contract's JSON error", async () => {
    const res = await request(`${server.matching}/register`, { method: 'POST', body: { name: 'x'.repeat(4_096) } });
    assert.equal(res.status, 413, describeResponse(res));
    assert.equal(HttpError.parse(res.json()).status, 'error');
  });
});

describe('what the web role sends a browser', () => {
  it("every response carries the Content-Security-Policy (this origin, the two services, WebAssembly; no eval, no inline script or style) and may not be framed, however the path is spelt (/%61dmin is /admin)", async () => {
    const services = [new URL(server.matching), new URL(server.signalling)];
    for (const p of ['/', '/index.html', '/admin', '/admin.html', '/%61dmin', '//admin', '/%61dmin.html', '/no/such/route', '/config.json', '/healthz', '/missing.js']) {
      const res = await request(`${server.web}${p}`);
      const csp = String(res.headers['content-security-policy']);
      assert.match(csp, /(^|; )frame-ancestors 'none'(;|$)/, `${p}: ${csp}`);
      assert.equal(res.headers['x-frame-options'], 'DENY', p);
      assert.match(csp, /(^|; )script-src 'self' 'wasm-unsafe-eval'(;|$)/, p);
      assert.match(csp, /(^|; )default-src 'none'(;|$)/, p);
      assert.doesNotMatch(csp, /'unsafe-inline'|'unsafe-eval'/, p);
      const connect = /(?:^|; )connect-src ([^;]*)/.exec(csp)?.[1]?.split(' ') ?? [];
      for (const u of services) assert.ok(connect.includes(u.origin) && connect.includes(`ws://${u.host}`), `${p}: connect-src ${connect.join(' ')}`);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', p);
    }
  });

  it('a Host header too long for a host name counts as none: it is not copied into the policy and /config.json (fifth review, M4)', async () => {
    const long = `${'a'.repeat(7_000)}.example`;
    const res = await request(`${server.web}/config.json`, { headers: { host: long } });
    assert.equal(res.status, 200, describeResponse(res));
    const csp = String(res.headers['content-security-policy']);
    assert.ok(!csp.includes('aaaa') && csp.length < 1_000, `the policy names no such host (${csp.length} characters)`);
    assert.ok(!res.text.includes('aaaa') && res.text.length < 1_000, `nor does /config.json (${res.text.length} characters)`);
  });
});

describe('TLS at the proxy', () => {
  it('/config.json hands out the https PUBLIC_*_URL addresses (the web client speaks wss to them)', async () => {
    const res = await request(`${proxied.web}/config.json`);
    assert.equal(res.status, 200, describeResponse(res));
    // The addresses (and the proof-of-work mode): /config.json carries other fields too (it is extended by adding).
    const { matching_url, signalling_url, pow } = res.json() as Record<string, unknown>;
    assert.deepEqual({ matching_url, signalling_url, pow }, { matching_url: 'https://chat.example/matching', signalling_url: 'https://signal.chat.example', pow: 'off' });
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  it('without PUBLIC_*_URL, X-Forwarded-Proto: https from the proxy gives https URLs on the host the browser asked for', async () => {
    const res = await request(`${server.web}/config.json`, { headers: { host: 'chat.example', 'x-forwarded-proto': 'https' } });
    const body = res.json() as { matching_url: string; signalling_url: string };
    assert.equal(body.matching_url, `https://chat.example:${new URL(server.matching).port}`);
    assert.equal(body.signalling_url, `https://chat.example:${new URL(server.signalling).port}`);
  });
});

for (const store of STORES) {
  describe(`logs on the ${store} store`, () => {
    it('at LOG_LEVEL=trace the logs carry no token, chat text, signal data, report reason, secret or client address', async () => {
      const secrets = { ADMIN_TOKEN: 'log-test-admin-token-0123', TURN_SECRET: 'log-test-turn-secret', ADDRESS_HASH_KEY: 'log-test-address-key' };
      const logged = await startServerOn(store, { LOG_LEVEL: 'trace', TRUST_PROXY: 'true', REPORT_BAN_THRESHOLD: '1', REPORT_MIN_ROOM_MS: '0', TURN_URLS: 'turn:127.0.0.1:3478', GRACE_MS: '300', ...secrets });
      let out = logged.output();
      logged.process.stdout?.on('data', (d: Buffer) => (out += d.toString('utf8')));
      logged.process.stderr?.on('data', (d: Buffer) => (out += d.toString('utf8')));
      const addresses = [freshAddress(), freshAddress()] as const;
      const words = { chat: 'chat-text-that-must-not-be-logged', sdp: 'v=0 sdp-that-must-not-be-logged', reason: 'reason-that-must-not-be-logged', body: 'body-that-must-not-be-logged' };
      const tokens: string[] = [];
      try {
        const p = await pairJoined(logged, [from(addresses[0]), from(addresses[1])]);
        tokens.push(p.a.token, p.b.token);
        p.initiator.s!.send({ event: 'signal', room_code: p.room, type: 'offer', data: { sdp: words.sdp } });
        await p.responder.s!.expect('signal');
        p.a.m.send({ event: 'chat', message: words.chat });
        await p.b.m.expect('chat');
        for (const s of [p.a, p.b]) {
          const ice = await request(`${logged.matching}/ice-servers`, { headers: { authorization: `Bearer ${s.token}` } });
          assert.equal(ice.status, 200, describeResponse(ice));
        }
        await expectUnauthorized(matchingUrl(logged, p.a.id, p.b.token), 'matching', "a's id with b's token");
        await request(`${logged.matching}/admin/bans`, { headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}` } });
        await request(`${logged.matching}/admin/bans`, { headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}x` } });
        await p.a.m.drop();
        await p.b.s!.drop();
        p.b.m.send({ event: 'report', reason: words.reason });
        await p.b.m.expect('peer-disconnected');
        const banned = await request(`${logged.matching}/register`, { method: 'POST', body: {}, headers: from(addresses[0]).headers ?? {} });
        assert.equal(banned.status, 403, describeResponse(banned));
        await openSignalling(logged, p.b.id, p.b.token);
        // A body abandoned half way is logged at debug: what it carried must not be.
        const partial = `{"name":"${words.body}`;
        await rawExchange(logged.matching, Buffer.from(`POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${partial}`), { endAfterWrite: true });
        await register(logged);
      } finally {
        await WireClient.closeAll();
        await logged.stop();
      }
      assert.match(out, /"level":20,.*"msg":"request abandoned"/, 'debug lines were written: the checks below saw them');
      const forbidden: [string, string][] = [
        ...Object.entries(secrets),
        ...Object.entries(words),
        ...addresses.map((a): [string, string] => ['a client address', a]),
        ...tokens.map((t): [string, string] => ['a session token', t]),
      ];
      for (const [what, value] of forbidden) assert.ok(!out.includes(value), `the log carries ${what}: ${value}`);
    });
  });
}
