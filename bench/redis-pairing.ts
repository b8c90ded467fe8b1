// Pairing through Redis with two processes, next to the embedded store with
// one process: match latency p50/p99 (one pair at a time, the two members on
// different processes) and sustained pairings per second (concurrent client
// loops spread over the processes). Loopback only, bounded; prints numbers,
// asserts nothing. Usage: node --import tsx bench/redis-pairing.ts [--json]
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { RedisServer } from '../packages/server/test/redis/support/redis-server.js';
import { closeSocket, eventSocket, type EventSocket } from './lib/event-socket.js';
import { DyadProcess } from '../packages/server/test/redis/support/dyad-process.js';

const SEQUENTIAL_PAIRS = 300;
const WARMUP_PAIRS = 30;
const LOOPS = 64;
const THROUGHPUT_MS = 6_000;
const WAIT_MS = 10_000;

const start = (url: string): EventSocket => eventSocket(url, WAIT_MS);

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** From B's socket request until both hold `matched`; A (on the other process) already waits. */
async function latency(urls: [string, string], n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = start(`${urls[0]}/ws`);
    await a.when('waiting');
    const t0 = performance.now();
    const b = start(`${urls[1]}/ws`);
    await Promise.all([a.when('matched'), b.when('matched')]);
    out.push(performance.now() - t0);
    await Promise.all([closeSocket(a.ws), closeSocket(b.ws)]);
  }
  return out;
}

/** LOOPS clients, each: start on the next process, wait for `matched`, leave; pairings in THROUGHPUT_MS. */
async function throughput(urls: string[]): Promise<number> {
  let matched = 0;
  let running = true;
  const loop = async (k: number): Promise<void> => {
    for (let i = k; running; i++) {
      const c = start(`${urls[i % urls.length]}/ws`);
      try {
        await c.when('matched');
        if (running) matched++;
      } catch {
        // A loop left alone at the end of the window.
      }
      await closeSocket(c.ws);
    }
  };
  const t0 = performance.now();
  const loops = Array.from({ length: LOOPS }, (_, k) => loop(k));
  await new Promise((r) => setTimeout(r, THROUGHPUT_MS));
  running = false;
  const elapsed = performance.now() - t0;
  await Promise.allSettled(loops);
  return matched / 2 / (elapsed / 1000);
}

interface Result {
  store: string;
  processes: number;
  p50: number;
  p99: number;
  pairsPerSec: number;
}

async function measure(store: string, procs: DyadProcess[]): Promise<Result> {
  const urls = procs.map((p) => p.ws('matching'));
  const pair: [string, string] = [urls[0] ?? '', urls[1] ?? urls[0] ?? ''];
  await latency(pair, WARMUP_PAIRS);
  const lat = (await latency(pair, SEQUENTIAL_PAIRS)).sort((x, y) => x - y);
  const pairsPerSec = await throughput(urls);
  return { store, processes: procs.length, p50: pct(lat, 50), p99: pct(lat, 99), pairsPerSec };
}

const COMMON = {
  LOG_LEVEL: 'error',
  INTEREST_TIMEOUT_MS: '5000',
};

async function main(): Promise<void> {
  const results: Result[] = [];

  const memory = await DyadProcess.start('memory', { ...COMMON, ROLES: 'matching,signalling,web' });
  try {
    results.push(await measure('memory', [memory]));
  } finally {
    await memory.stop();
  }

  const redis = await RedisServer.start();
  try {
    const env = { ...COMMON, REDIS_URL: redis.url, ROLES: 'matching' };
    const procs = await Promise.all([DyadProcess.start('r1', env), DyadProcess.start('r2', env)]);
    try {
      results.push(await measure('redis', procs));
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
  } finally {
    await redis.stop();
  }

  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ cpus: os.cpus().length, results }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`pairing benchmark, ${os.cpus().length} CPUs, loopback; latency: ${SEQUENTIAL_PAIRS} pairs one at a time, members on different processes; throughput: ${LOOPS} client loops for ${THROUGHPUT_MS / 1000} s\n\n`);
  process.stdout.write('store    processes  latency p50  latency p99  pairings/s\n');
  for (const r of results) {
    process.stdout.write(
      `${r.store.padEnd(8)} ${String(r.processes).padStart(9)}  ${r.p50.toFixed(2).padStart(8)} ms  ${r.p99.toFixed(2).padStart(8)} ms  ${r.pairsPerSec.toFixed(0).padStart(10)}\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
