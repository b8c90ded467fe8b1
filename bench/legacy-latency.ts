// Match latency of each protocol a client can speak: Dyad's own (one-trip
// start), random-video-chat (matching socket and POST at once) and go-megle
// (socket, then find_match), from the second arrival's first request until
// both members hold their `matched` (or `match_found`). One pair at a time,
// on the embedded store (one process) and through Redis (two processes, the
// members on different ones). Loopback only; prints numbers, asserts nothing.
// Usage: node --import tsx bench/legacy-latency.ts [--pairs N] [--json]
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { RedisServer } from '../packages/server/test/redis/support/redis-server.js';
import WebSocket from 'ws';
import { closeSocket, eventSocket, type EventSocket, type Msg } from './lib/event-socket.js';
import { DyadProcess } from '../packages/server/test/redis/support/dyad-process.js';
import { summarize, type Summary } from './lib/stats.js';

const args = process.argv.slice(2);
const PAIRS = Number(args[args.indexOf('--pairs') + 1]) || 200;
const WARMUP_PAIRS = 20;
const WAIT_MS = 10_000;
const PROTOCOLS = ['dyad', 'random-video-chat', 'go-megle'] as const;
type Protocol = (typeof PROTOCOLS)[number];

const socket = (url: string): EventSocket => eventSocket(url, WAIT_MS);

interface Urls {
  matching: string;
  matchingWs: string;
  webWs: string;
}

const urlsOf = (p: DyadProcess): Urls => ({
  matching: p.http('matching'),
  matchingWs: p.ws('matching'),
  webWs: (p.urls.get('web') ?? '').replace(/^http/, 'ws'),
});

let seq = 0;

/**
 * One arrival: everything its client sends to be paired, at once; resolves
 * with its socket and the promise of its match.
 */
async function arrive(protocol: Protocol, u: Urls): Promise<{ ws: WebSocket; matched: Promise<Msg>; waiting: () => Promise<Msg> }> {
  if (protocol === 'dyad') {
    const s = socket(`${u.matchingWs}/ws`);
    return { ws: s.ws, matched: s.when('matched'), waiting: () => s.when('waiting') };
  }
  if (protocol === 'random-video-chat') {
    const name = `bench-${process.pid}-${++seq}`;
    const s = socket(`${u.matchingWs}/ws/${name}`);
    const posted = fetch(`${u.matching}/registerForMatching`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
    const matched = s.when('matched');
    await posted.then((r) => r.arrayBuffer());
    return { ws: s.ws, matched, waiting: () => s.when('waiting') };
  }
  const s = socket(`${u.webWs}/ws`);
  const matched = s.when('match_found');
  await s.opened;
  s.ws.send(JSON.stringify({ event: 'find_match', data: {} }));
  return { ws: s.ws, matched, waiting: () => s.when('waiting') };
}

/** From the second arrival's first request until both are matched; the first already waits on `a`. */
async function latencies(protocol: Protocol, a: Urls, b: Urls, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const first = await arrive(protocol, a);
    await first.waiting();
    const t0 = performance.now();
    const second = await arrive(protocol, b);
    await Promise.all([first.matched, second.matched]);
    out.push(performance.now() - t0);
    await Promise.all([closeSocket(first.ws), closeSocket(second.ws)]);
  }
  return out;
}

const fmt = (s: Summary): string => `p50 ${s.p50.toFixed(2)} ms  p95 ${s.p95.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms  (n=${s.n})`;

async function measure(label: string, a: Urls, b: Urls): Promise<Record<Protocol, Summary>> {
  const result = {} as Record<Protocol, Summary>;
  for (const protocol of PROTOCOLS) {
    await latencies(protocol, a, b, WARMUP_PAIRS);
    result[protocol] = summarize(await latencies(protocol, a, b, PAIRS));
    process.stdout.write(`${label.padEnd(22)} ${protocol.padEnd(18)} ${fmt(result[protocol])}\n`);
  }
  return result;
}

async function main(): Promise<void> {
  const env = { LEGACY_PROTOCOLS: 'random-video-chat,go-megle' };
  process.stdout.write(`match latency, second arrival -> both matched; ${PAIRS} pairs each after ${WARMUP_PAIRS} warm-up; ${os.cpus().length} CPUs, load ${os.loadavg()[0]?.toFixed(1)}\n`);
  const results: Record<string, Record<Protocol, Summary>> = {};
  const memory = await DyadProcess.start('memory', env);
  try {
    results.memory = await measure('memory, one process', urlsOf(memory), urlsOf(memory));
  } finally {
    await memory.stop();
  }
  const redis = await RedisServer.start();
  const procs = await Promise.all([DyadProcess.start('p1', { ...env, REDIS_URL: redis.url }), DyadProcess.start('p2', { ...env, REDIS_URL: redis.url })]);
  try {
    const [p1, p2] = procs as [DyadProcess, DyadProcess];
    results.redis = await measure('redis, two processes', urlsOf(p1), urlsOf(p2));
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await redis.stop();
  }
  if (args.includes('--json')) process.stdout.write(`${JSON.stringify(results)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
