// Media through a real coturn on loopback: the server's TURN credentials must
// get both browsers a relay, a wrong shared secret must get them none, and a
// credential stops working once its TURN_TTL has passed (so a leaked one does
// not make an open relay). Runs inside the private network namespace of the
// test:e2e script.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { clickStart, closeUsers, expectVideoFlowing, launchBrowser, mediaStats, newUser, prepare, startPair, startServer, within } from './harness.js';
import type { Instrumented, RunningServer, User } from './harness.js';

const TURN_START_TIMEOUT_MS = 5_000;
/** How long a page with a bad TURN secret gets to prove it gathers nothing. */
const NO_RELAY_WINDOW_MS = 8_000;
/** After gathering ends, how long nothing may still arrive. */
const NO_MEDIA_HOLD_MS = 1_500;
const RELAY_MIN_PORT = 49152;
const RELAY_MAX_PORT = 49252;

/**
 * Runs after the harness's own wrapper: every peer connection may only use
 * relayed candidates (the client is unchanged), and the page counts the relay
 * candidates it gathers and the ICE server errors it sees.
 */
const FORCE_RELAY = `(() => {
  window.__relayCandidates = 0;
  window.__iceErrors = [];
  const Base = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Base {
    constructor(config) {
      super({ ...(config || {}), iceTransportPolicy: 'relay' });
      this.addEventListener('icecandidate', (e) => {
        if (e.candidate && e.candidate.type === 'relay') window.__relayCandidates++;
      });
      this.addEventListener('icecandidateerror', (e) => {
        window.__iceErrors.push({ url: e.url, errorCode: e.errorCode, errorText: e.errorText });
      });
    }
    setConfiguration(config) {
      return super.setConfiguration({ ...(config || {}), iceTransportPolicy: 'relay' });
    }
  };
})();`;

/** A port free for both TCP and UDP on 127.0.0.1 (coturn cannot bind port 0), outside the relay range. */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((ok, fail) => {
      const srv = createServer();
      srv.once('error', fail);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => ok(port));
      });
    });
    if (port >= RELAY_MIN_PORT && port <= RELAY_MAX_PORT) continue;
    const udpFree = await new Promise<boolean>((ok) => {
      const sock = createSocket('udp4');
      sock.once('error', () => ok(false));
      sock.bind(port, '127.0.0.1', () => sock.close(() => ok(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port for coturn');
}

/** Resolve once something answers a STUN Binding Request on the port with Binding Success (0x0101). */
function stunReady(port: number, timeoutMs: number): Promise<void> {
  const txid = randomBytes(12);
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0); // Binding Request
  request.writeUInt16BE(0, 2); // no attributes
  request.writeUInt32BE(0x2112a442, 4); // magic cookie
  txid.copy(request, 8);
  const sock = createSocket('udp4');
  let timer: ReturnType<typeof setInterval> | undefined;
  const answered = new Promise<void>((ok) => {
    sock.on('message', (msg) => {
      if (msg.length >= 20 && msg.readUInt16BE(0) === 0x0101 && msg.subarray(8, 20).equals(txid)) ok();
    });
    // Nobody listening yet means an ICMP error or silence: keep asking.
    sock.on('error', () => undefined);
    const send = () => sock.send(request, port, '127.0.0.1', () => undefined);
    send();
    timer = setInterval(send, 25);
  });
  return within(timeoutMs, `coturn answers STUN on 127.0.0.1:${port}`, answered).finally(() => {
    clearInterval(timer);
    sock.close();
  });
}

const STUN_MAGIC = 0x2112a442;
const ALLOCATE_REQUEST = 0x0003;
const ALLOCATE_SUCCESS = 0x0103;
const ATTR = { username: 0x0006, integrity: 0x0008, errorCode: 0x0009, realm: 0x0014, nonce: 0x0015, transport: 0x0019 } as const;
const TURN_ANSWER_TIMEOUT_MS = 3_000;

/** One STUN attribute, padded to 4 bytes (RFC 8489 section 14). */
function stunAttr(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
}

function stunMessage(type: number, txid: Buffer, attrs: Buffer[], integrityKey?: Buffer): Buffer {
  const body = Buffer.concat(attrs);
  const head = Buffer.alloc(20);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(body.length + (integrityKey ? 24 : 0), 2);
  head.writeUInt32BE(STUN_MAGIC, 4);
  txid.copy(head, 8);
  const message = Buffer.concat([head, body]);
  if (!integrityKey) return message;
  // MESSAGE-INTEGRITY: HMAC-SHA1 over the message up to it, its length counted in the header.
  return Buffer.concat([message, stunAttr(ATTR.integrity, createHmac('sha1', integrityKey).update(message).digest())]);
}

function stunAttrs(message: Buffer): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  for (let at = 20; at + 4 <= message.length; ) {
    const type = message.readUInt16BE(at);
    const length = message.readUInt16BE(at + 2);
    attrs.set(type, message.subarray(at + 4, at + 4 + length));
    at += 4 + length + ((4 - (length % 4)) % 4);
  }
  return attrs;
}

/**
 * A TURN Allocate with long-term credentials over UDP (RFC 8656 section 6.2):
 * the unauthenticated request draws the realm and nonce, the signed one is
 * answered with success or an error code. A fresh socket each time, since an
 * allocation belongs to its 5-tuple.
 */
async function allocate(port: number, username: string, credential: string): Promise<'success' | number> {
  const sock = createSocket('udp4');
  const answers: Buffer[] = [];
  let wake: (() => void) | undefined;
  sock.on('message', (m) => {
    answers.push(m);
    wake?.();
  });
  const exchange = async (message: Buffer): Promise<Buffer> => {
    answers.length = 0;
    const answered = new Promise<void>((ok) => (wake = ok));
    sock.send(message, port, '127.0.0.1');
    await within(TURN_ANSWER_TIMEOUT_MS, `coturn answers an Allocate on 127.0.0.1:${port}`, answered);
    return answers[0]!;
  };
  const transport = stunAttr(ATTR.transport, Buffer.from([17, 0, 0, 0])); // UDP
  try {
    const challenge = stunAttrs(await exchange(stunMessage(ALLOCATE_REQUEST, randomBytes(12), [transport])));
    const realm = challenge.get(ATTR.realm);
    const nonce = challenge.get(ATTR.nonce);
    assert.ok(realm && nonce, 'the unauthenticated Allocate is challenged with a realm and a nonce');
    const key = createHash('md5').update(`${username}:${realm.toString()}:${credential}`).digest();
    const signed = stunMessage(
      ALLOCATE_REQUEST,
      randomBytes(12),
      [stunAttr(ATTR.username, Buffer.from(username)), stunAttr(ATTR.realm, realm), stunAttr(ATTR.nonce, nonce), transport],
      key,
    );
    const answer = await exchange(signed);
    if (answer.readUInt16BE(0) === ALLOCATE_SUCCESS) return 'success';
    const code = stunAttrs(answer).get(ATTR.errorCode);
    return code ? (code[2]! & 0x07) * 100 + code[3]! : -1;
  } finally {
    sock.close();
  }
}

interface Turn {
  readonly port: number;
  readonly secret: string;
  log(): string;
  stop(): Promise<void>;
}

const turnProcesses = new Set<ChildProcess>();
const turnDirs = new Set<string>();
/** coturn runs in its own process group, so the whole group goes, children and all. */
function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}
// A failed or interrupted run must not leave a coturn behind.
process.once('exit', () => {
  for (const child of turnProcesses) killGroup(child);
  for (const dir of turnDirs) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.prependOnceListener(signal, () => {
    for (const child of turnProcesses) killGroup(child);
  });
}

async function startTurn(): Promise<Turn> {
  const port = await freePort();
  const secret = randomBytes(24).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'dyad-turn-'));
  turnDirs.add(dir);
  // stdbuf: coturn block-buffers a piped log and loses it when killed.
  const child = spawn(
    'stdbuf',
    [
      '-oL',
      '-eL',
      'turnserver',
      '-n',
      '-v',
      '--no-cli',
      '--log-file=stdout',
      '--simple-log',
      `--pidfile=${join(dir, 'turn.pid')}`,
      `--userdb=${join(dir, 'turndb')}`,
      '--listening-ip=127.0.0.1',
      '--relay-ip=127.0.0.1',
      `--listening-port=${port}`,
      `--min-port=${RELAY_MIN_PORT}`,
      `--max-port=${RELAY_MAX_PORT}`,
      '--use-auth-secret',
      `--static-auth-secret=${secret}`,
      '--realm=dyad',
      '--no-tls',
      '--no-dtls',
      '--fingerprint',
      // Both peers are on 127.0.0.1: without this coturn refuses the permission (403 Forbidden IP).
      '--allow-loopback-peers',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  turnProcesses.add(child);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  void exited.then(() => {
    turnProcesses.delete(child);
    rmSync(dir, { recursive: true, force: true });
    turnDirs.delete(dir);
  });

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        child.kill('SIGTERM');
      }
      const timer = setTimeout(() => killGroup(child), 2_000);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    await Promise.race([
      stunReady(port, TURN_START_TIMEOUT_MS),
      exited.then(() => {
        throw new Error(`turnserver exited early:\n${out}`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- coturn log ---\n${out}`);
  }
  return { port, secret, log: () => out, stop };
}

/** The ICE servers the page's newest peer connection got from `matched`. */
const iceServersOf = (page: Page) =>
  page.evaluate(() => (window as unknown as Instrumented).__pcs.at(-1)!.getConfiguration());

/** Local candidates of type relay in the stats of every peer connection of the page. */
const relayCandidatesInStats = (page: Page) =>
  page.evaluate(async () => {
    let n = 0;
    for (const pc of (window as unknown as Instrumented).__pcs) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s: Record<string, unknown>) => {
        if (s.type === 'local-candidate' && s.candidateType === 'relay') n++;
      });
    }
    return n;
  });

const pageCounters = (page: Page) =>
  page.evaluate(() => {
    const w = window as unknown as { __relayCandidates: number; __iceErrors: { errorCode: number }[] };
    return { relayCandidates: w.__relayCandidates, iceErrorCodes: w.__iceErrors.map((e) => e.errorCode) };
  });

async function relayUser(browser: Browser): Promise<User> {
  const user = await newUser(browser);
  await user.context.addInitScript({ content: FORCE_RELAY });
  return user;
}

describe('TURN relay through a real coturn', { timeout: 60_000 }, () => {
  let turn: Turn;
  let browser: Browser;
  const servers: RunningServer[] = [];

  before(async () => {
    [turn, browser] = await Promise.all([startTurn(), launchBrowser()]);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await Promise.all(servers.map((s) => s.stop()));
    await turn?.stop();
  });

  it('with the right secret both pages decode video over relay candidates', async (t) => {
    const turnUrl = `turn:127.0.0.1:${turn.port}?transport=udp`;
    const server = await startServer({ TURN_URLS: turnUrl, TURN_SECRET: turn.secret, TURN_TTL: '600' });
    servers.push(server);
    const a = await relayUser(browser);
    const b = await relayUser(browser);
    try {
      const [sa, sb] = await startPair(a, b, server.web, 'video', 15_000);

      for (const [name, user, stats] of [['A', a, sa], ['B', b, sb]] as const) {
        assert.ok(stats.framesDecoded > 0, `${name} decoded remote video`);
        // Relay-only on both ends: each side sends from its relay to the other's relay.
        assert.equal(stats.localCandidateType, 'relay', `${name}'s selected local candidate is relayed`);
        assert.equal(stats.remoteCandidateType, 'relay', `${name}'s selected remote candidate is relayed`);
        const config = await iceServersOf(user.page);
        assert.equal(config.iceTransportPolicy, 'relay');
        const server = config.iceServers?.find((s) => [s.urls].flat().includes(turnUrl));
        assert.ok(server, `${name} got the TURN server from \`matched\``);
        assert.match(String(server.username), /^\d+:\S+$/, 'use-auth-secret username is <expiry>:<id>');
        assert.ok((await pageCounters(user.page)).relayCandidates > 0, `${name} gathered relay candidates`);
      }
      t.diagnostic(`A ${JSON.stringify(sa)} B ${JSON.stringify(sb)}`);
      // Media keeps flowing through the relay, not just the first frame.
      await expectVideoFlowing(a.page);
      assert.match(turn.log(), /ALLOCATE processed, success/, 'coturn allocated relays');
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await closeUsers(a, b);
    }
  });

  it('with a wrong secret no relay is allocated and no media flows', async (t) => {
    const turnUrl = `turn:127.0.0.1:${turn.port}?transport=udp`;
    const logBefore = turn.log().length;
    const server = await startServer({ TURN_URLS: turnUrl, TURN_SECRET: `${turn.secret}-wrong` });
    servers.push(server);
    const a = await relayUser(browser);
    const b = await relayUser(browser);
    try {
      await Promise.all([prepare(a.page, server.web, 'video'), prepare(b.page, server.web, 'video')]);
      const started = Date.now();
      await Promise.all([clickStart(a.page), clickStart(b.page)]);
      // Signalling still pairs them: each gets a connection with the (bad) TURN credentials.
      const matched = (page: Page) =>
        page.waitForFunction(
          (url) =>
            (window as unknown as Instrumented).__pcs.some(
              (pc) => pc.remoteDescription !== null && pc.getConfiguration().iceServers?.some((s) => [s.urls].flat().includes(url)),
            ),
          turnUrl,
          { timeout: NO_RELAY_WINDOW_MS },
        );
      await Promise.all([matched(a.page), matched(b.page)]);
      // Give gathering the rest of the window (timeout 0 would mean none): with a bad credential it ends with nothing to show.
      const gathered = (page: Page) =>
        page
          .waitForFunction(
            () =>
              (window as unknown as Instrumented).__pcs
                .filter((pc) => pc.remoteDescription !== null)
                .every((pc) => pc.iceGatheringState === 'complete'),
            undefined,
            { timeout: Math.max(1, NO_RELAY_WINDOW_MS - (Date.now() - started)) },
          )
          .then(
            () => true,
            () => false,
          );
      await Promise.all([gathered(a.page), gathered(b.page)]);
      // Gathering is over, but watch a little longer: nothing may arrive late either.
      const holdUntil = Date.now() + NO_MEDIA_HOLD_MS;
      while (Date.now() < holdUntil) {
        for (const [name, user] of [['A', a], ['B', b]] as const) {
          assert.equal((await pageCounters(user.page)).relayCandidates, 0, `${name} gathered no relay candidate`);
          assert.equal((await mediaStats(user.page))?.framesDecoded ?? 0, 0, `${name} decoded nothing`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }

      for (const [name, user] of [['A', a], ['B', b]] as const) {
        const counters = await pageCounters(user.page);
        t.diagnostic(`${name} ${JSON.stringify(counters)} after ${Date.now() - started} ms`);
        assert.equal(counters.relayCandidates, 0, `${name} gathered no relay candidate`);
        assert.ok(counters.iceErrorCodes.includes(401), `${name}'s browser was told 401 by the TURN server`);
        assert.equal(await relayCandidatesInStats(user.page), 0, `${name}'s stats list no relay candidate`);
        const stats = await mediaStats(user.page);
        assert.equal(stats?.framesDecoded ?? 0, 0, `${name} decoded nothing`);
        assert.equal(stats?.localCandidateType ?? null, null, `${name} selected no candidate pair`);
      }
      // coturn saw the requests carrying the server's username and refused the credential
      // (a first 401 without a username is the normal challenge, so it proves nothing).
      const log = turn.log().slice(logBefore);
      assert.match(log, /user <\d+:[^>]+>: incoming packet \S+ processed, error 401/, `coturn refused the credential:\n${log}`);
      assert.doesNotMatch(log, /ALLOCATE processed, success/);
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await closeUsers(a, b);
    }
  });

  it('a credential the server handed out allocates a relay until TURN_TTL has passed, and gets 401 after', async () => {
    const ttlSec = 1;
    const server = await startServer({ TURN_URLS: `turn:127.0.0.1:${turn.port}?transport=udp`, TURN_SECRET: turn.secret, TURN_TTL: String(ttlSec) });
    servers.push(server);
    const registered = (await (await fetch(`${server.matching}/register`, { method: 'POST', body: '{ "mode": "text" }' })).json()) as { id: string; token: string };
    // Credentials go only to a session whose matching socket is open.
    const socket = new WebSocket(`${server.matching.replace(/^http/, 'ws')}/ws/${encodeURIComponent(registered.id)}?token=${encodeURIComponent(registered.token)}`);
    await within(
      5_000,
      'the matching socket to open',
      new Promise((resolve, reject) => {
        socket.once('message', resolve);
        socket.once('error', reject);
      }),
    );
    const ice = (await (await fetch(`${server.matching}/ice-servers`, { headers: { authorization: `Bearer ${registered.token}` } })).json()) as {
      ice_servers: { username?: string; credential?: string }[];
    };
    socket.close(1000);
    const entry = ice.ice_servers.find((s) => s.username);
    assert.ok(entry?.username && entry.credential, `a TURN entry with credentials: ${JSON.stringify(ice)}`);
    assert.equal(await allocate(turn.port, entry.username, entry.credential), 'success', 'a fresh credential allocates');
    // The username carries its expiry in Unix seconds; wait until it lies in the past.
    const expiresAtMs = Number(entry.username.split(':')[0]) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAtMs - Date.now()) + 1_100));
    assert.equal(await allocate(turn.port, entry.username, entry.credential), 401, 'an expired credential is refused');
  });
});
