// Match latency of a running Dyad server on this machine, next to the floor a
// bare Node http / ws server gives on the same box. Prints numbers, asserts
// nothing. Usage: npm run bench:match [-- --json]
//
//   1. one pair at a time (A already waiting): from B's first request until both
//      hold `matched`, for a one-trip start and for POST /register + GET /ws/{id}
//   2. bursts of 500 one-trip starts at once: time until all hold `matched`,
//      and any anomaly (double match, a room not of two, a lost match)
//   3. sustained pairings per second from concurrent client loops
import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import WebSocket, { WebSocketServer } from 'ws';
import { startServer, type RunningServer } from '../packages/server/test/support/server.js';
import { summarize, type Summary } from './lib/stats.js';

const SEQUENTIAL_PAIRS = 200;
const WARMUP_PAIRS = 20;
const BURST_USERS = 500;
const BURST_ROUNDS = 5;
const LOOPS = 20;
const THROUGHPUT_MS = 5_000;
const BASELINE_ROUNDS = 200;
const WAIT_MS = 20_000;

type Msg = { event: string; [k: string]: unknown };

/** A bare client: messages are parsed and handed to whoever waits for that event. */
class Client {
  readonly ws: WebSocket;
  readonly got: Msg[] = [];
  private waiters: { event: string; resolve: (m: Msg) => void }[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
    this.opened.catch(() => undefined); // failures surface through when() timing out
    this.ws.on('error', () => undefined); // e.g. closing one still connecting at the end of a window
    this.closed = new Promise((resolve) => this.ws.once('close', () => resolve()));
    this.ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as Msg;
      this.got.push(msg);
      const i = this.waiters.findIndex((w) => w.event === msg.event);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(msg);
    });
  }

  /** The first message of that event, whether it already came or not. */
  when(event: string, timeoutMs = WAIT_MS): Promise<Msg> {
    const seen = this.got.find((m) => m.event === event);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${event}" within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        event,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(1000);
    await this.closed;
  }
}

const median = (xs: number[]): number => summarize(xs).p50;
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

function postJson(agent: http.Agent, url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

// ------------------------------------------------------------------ baseline

/** The same two operations against trivial servers: the floor of this box. */
async function baseline(): Promise<{ httpPostP50: number; wsFirstMessageP50: number }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end('{"status":"queued"}');
    });
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on('connection', (ws) => ws.send('{"event":"waiting"}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const agent = new http.Agent({ keepAlive: true });
  const posts: number[] = [];
  const opens: number[] = [];
  for (let i = 0; i < BASELINE_ROUNDS + WARMUP_PAIRS; i++) {
    const t0 = performance.now();
    await postJson(agent, `http://127.0.0.1:${port}/register`, {});
    if (i >= WARMUP_PAIRS) posts.push(performance.now() - t0);
  }
  for (let i = 0; i < BASELINE_ROUNDS + WARMUP_PAIRS; i++) {
    const t0 = performance.now();
    const c = new Client(`ws://127.0.0.1:${port}/`);
    await c.when('waiting');
    if (i >= WARMUP_PAIRS) opens.push(performance.now() - t0);
    await c.close();
  }
  agent.destroy();
  wss.close();
  await new Promise((resolve) => server.close(resolve));
  return { httpPostP50: summarize(posts).p50, wsFirstMessageP50: summarize(opens).p50 };
}

// ------------------------------------------------------------- sequential

async function sequential(server: RunningServer, way: 'one-trip' | 'register'): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true });
  const samples: number[] = [];
  const start = async (): Promise<Client> => {
    if (way === 'one-trip') return new Client(`${server.matchingWs}/ws`);
    const { status, json } = await postJson(agent, `${server.matching}/register`, {});
    if (status !== 200) throw new Error(`POST /register: HTTP ${status}`);
    return new Client(`${server.matchingWs}/ws/${encodeURIComponent(String(json.id))}?token=${encodeURIComponent(String(json.token))}`);
  };
  for (let i = 0; i < SEQUENTIAL_PAIRS + WARMUP_PAIRS; i++) {
    const a = await start();
    await a.when('waiting');
    const t0 = performance.now();
    const b = await start();
    let aAt = 0;
    let bAt = 0;
    await Promise.all([a.when('matched').then(() => (aAt = performance.now())), b.when('matched').then(() => (bAt = performance.now()))]);
    if (i >= WARMUP_PAIRS) samples.push(Math.max(aAt, bAt) - t0);
    await Promise.all([a.close(), b.close()]);
  }
  agent.destroy();
  return samples;
}

// ------------------------------------------------------------------ burst

interface Burst {
  ms: number;
  anomalies: number;
  detail: string[];
}

async function burst(server: RunningServer): Promise<Burst> {
  const t0 = performance.now();
  const clients = Array.from({ length: BURST_USERS }, () => new Client(`${server.matchingWs}/ws`));
  const detail: string[] = [];
  const results = await Promise.allSettled(clients.map((c) => c.when('matched')));
  const ms = performance.now() - t0;
  const lost = results.filter((r) => r.status === 'rejected').length;
  if (lost > 0) detail.push(`${lost} without matched`);
  await sleep(300); // a second matched would come now
  const ids = new Map<Client, string>();
  for (const c of clients) ids.set(c, String(c.got.find((m) => m.event === 'session')?.id));
  const rooms = new Map<string, Client[]>();
  let doubles = 0;
  for (const c of clients) {
    const matched = c.got.filter((m) => m.event === 'matched');
    if (matched.length > 1) doubles++;
    const room = matched[0]?.room_code;
    if (typeof room === 'string') rooms.set(room, [...(rooms.get(room) ?? []), c]);
  }
  if (doubles > 0) detail.push(`${doubles} matched twice`);
  let odd = 0;
  let mismatched = 0;
  for (const members of rooms.values()) {
    if (members.length !== 2) {
      odd++;
      continue;
    }
    const [x, y] = members as [Client, Client];
    const mx = x.got.find((m) => m.event === 'matched')!;
    const my = y.got.find((m) => m.event === 'matched')!;
    if (mx.peer !== ids.get(y) || my.peer !== ids.get(x) || mx.initiator === my.initiator) mismatched++;
  }
  if (odd > 0) detail.push(`${odd} rooms not of two`);
  if (mismatched > 0) detail.push(`${mismatched} rooms whose members disagree`);
  await Promise.all(clients.map((c) => c.close()));
  return { ms, anomalies: lost + doubles + odd + mismatched, detail };
}

// ------------------------------------------------------------- throughput

async function throughput(server: RunningServer): Promise<{ pairs: number; seconds: number; perSecond: number }> {
  let matchedCount = 0;
  const deadline = performance.now() + THROUGHPUT_MS;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const c = new Client(`${server.matchingWs}/ws`);
      const left = deadline - performance.now();
      try {
        await c.when('matched', Math.max(1, left));
        if (performance.now() <= deadline) matchedCount++;
      } catch {
        // The window closed while this one waited.
      }
      await c.close();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: LOOPS }, loop));
  const seconds = Math.min(performance.now() - t0, THROUGHPUT_MS) / 1000;
  const pairs = Math.floor(matchedCount / 2);
  return { pairs, seconds, perSecond: pairs / seconds };
}

// ------------------------------------------------------------------- main

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const floor = await baseline();
  const server = await startServer({ LOG_LEVEL: 'warn', REDIS_URL: undefined });
  try {
    const oneTrip = summarize(await sequential(server, 'one-trip'));
    const registered = summarize(await sequential(server, 'register'));
    const bursts: Burst[] = [];
    for (let i = 0; i < BURST_ROUNDS; i++) {
      bursts.push(await burst(server));
      await sleep(200);
    }
    const rate = await throughput(server);

    const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
    const line = (label: string, s: Summary) =>
      `  ${label.padEnd(34)} p50 ${ms(s.p50).padStart(7)}  p95 ${ms(s.p95).padStart(7)}  p99 ${ms(s.p99).padStart(7)} ms  (n=${s.n})`;
    console.log(`Dyad match latency - node ${process.version}, ${os.cpus().length} x ${cpu}, memory store, loopback`);
    console.log('baseline (bare Node on this box)');
    console.log(`  ${'http POST round trip'.padEnd(34)} p50 ${ms(floor.httpPostP50).padStart(7)} ms`);
    console.log(`  ${'ws open -> first message'.padEnd(34)} p50 ${ms(floor.wsFirstMessageP50).padStart(7)} ms`);
    console.log(`one pair at a time: B's first request -> both hold matched`);
    console.log(line('one-trip start (GET /ws?...)', oneTrip));
    console.log(line('POST /register + GET /ws/{id}', registered));
    console.log(`burst: ${BURST_USERS} one-trip starts at once -> all hold matched`);
    console.log(`  rounds ${bursts.map((b) => `${b.ms.toFixed(0)} ms`).join(', ')}; median ${median(bursts.map((b) => b.ms)).toFixed(0)} ms`);
    const anomalies = bursts.reduce((n, b) => n + b.anomalies, 0);
    console.log(`  anomalies ${anomalies}${anomalies ? ` (${bursts.flatMap((b) => b.detail).join('; ')})` : ''}`);
    console.log(`sustained: ${LOOPS} client loops (one-trip, matched, close 1000)`);
    console.log(`  ${rate.pairs} pairs in ${rate.seconds.toFixed(1)} s = ${rate.perSecond.toFixed(0)} pairs/s`);
    if (json) {
      console.log(
        JSON.stringify({
          node: process.version,
          cpus: os.cpus().length,
          baseline_ms: { http_post_p50: floor.httpPostP50, ws_first_message_p50: floor.wsFirstMessageP50 },
          sequential_ms: { one_trip: oneTrip, register_then_ws: registered },
          burst: { users: BURST_USERS, rounds_ms: bursts.map((b) => b.ms), median_ms: median(bursts.map((b) => b.ms)), anomalies },
          throughput: { loops: LOOPS, pairs: rate.pairs, seconds: rate.seconds, pairs_per_second: rate.perSecond },
        }),
      );
    }
  } finally {
    await server.stop();
  }
}

await main();
