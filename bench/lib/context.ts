// What every section of a run shares: the profile's sizes, the workers, the
// progress line, and where files go.
import { loadavg } from 'node:os';
import type { ChaosSettings } from './chaos.js';
import type { Workers } from './loadgen.js';
import type { TopologyName } from './topology.js';
import type { RelayTarget } from './relay.js';

export interface ProfileSettings {
  name: 'quick' | 'full';
  workers: number;
  pairing: {
    topologies: TopologyName[];
    /** Offered session arrivals per second, one step each. */
    rates: number[];
    durationMs: number;
    settleMs: number;
    /** The rate the latency targets are judged at. */
    targetRate: number;
    cycleSessions: number;
    cycleWarmupMs: number;
    cycleMs: number;
    /**
     * Rounds of held sessions: each round runs every set-up in turn, and the
     * ratios between set-ups are judged by their median over the rounds
     * (a shared machine's load moves between two runs, less within a round).
     */
    cycleRounds: number;
  };
  arrival: {
    /** Dyad set-ups measured beside the floor (memory: one-trip and POST /register; Redis: one-trip). */
    topologies: TopologyName[];
    /** Pairs measured one visitor at a time, after `warmupPairs` not measured. */
    pairs: number;
    warmupPairs: number;
    /** Visitors arriving at once; `burstRuns` runs of each size, the median reported. */
    bursts: number[];
    burstRuns: number;
    /**
     * The pairs and the burst runs are split over this many rounds, every
     * set-up (the floor included) in turn in each; the ratios to the floor are
     * the medians of the rounds' ratios.
     */
    rounds: number;
    /** Longest wait for one visitor to be in the pool or matched. */
    timeoutMs: number;
  };
  relay: {
    /** Servers compared, in this order. */
    targets: RelayTarget[];
    /** Chat lines timed one at a time on each Dyad set-up (bench/lib/chat.ts). */
    chatLines: number;
    pairs: number;
    /** Frames in flight per direction and pair while measuring the ceiling. */
    window: number;
    /** Offered frames per second while measuring latency (the same for every server). */
    rate: number;
    warmupMs: number;
    durationMs: number;
    /**
     * The ceiling is measured this many times, every server in turn in each
     * round; the ratios between servers are the medians of the rounds' ratios.
     * The fixed-rate latency and the chat are measured once, after the rounds.
     */
    rounds: number;
  };
  capacity: {
    steps: number[];
    holdMs: number;
    /** New sessions per second while growing (all workers together). */
    rate: number;
    /** Source addresses 127.0.0.2 … used by the clients (each has ~28k ephemeral ports). */
    addresses: number;
  };
  soak: { sessions: number; durationMs: number; sampleMs: number; dwellSec: [number, number]; leaveChance: number };
  frame: { timeoutMs: number; runs: number };
  model: ModelSettings;
  chaos: ChaosSettings;
}

/** The capacity model's measurements and the scaled-down mixed load that checks it (bench/lib/model.ts). */
export interface ModelSettings {
  /** Sessions held open (paired, idle) during the held-session measurement and the mixed load. */
  held: number;
  /** Pairings per second offered (each one two one-trip arrivals that close once matched). */
  pairingsPerSec: number;
  /** Signal frames per second relayed between members on different processes. */
  framesPerSec: number;
  /** Chat messages per second between members on different processes (measured alone, not in the mix). */
  chatsPerSec: number;
  /** Pairs that carry the frames and the chat. */
  relayPairs: number;
  /** Load running before each measured window. */
  warmupMs: number;
  /** Each measured window (nothing, held sessions, pairings, frames, chat, the mix). */
  windowMs: number;
  /** Busiest a process or a Redis shard may be in the topology the model proposes (cores, 1 = one core). */
  ceiling: number;
}

/** The chaos soak's settings that both profiles share (bench/lib/chaos.ts). */
const CHAOS_COMMON = {
  actors: 400,
  stepMs: [20, 150],
  steps: [2, 8],
  processes: 4,
  restartAt: 0.35,
  redisDownMs: 500,
  freezeAt: 0.65,
  graceMs: 2_000,
  windowMs: 4_000,
  seed: 20_261_205,
} as const satisfies Partial<ChaosSettings>;

export const PROFILES: Record<'quick' | 'full', ProfileSettings> = {
  quick: {
    name: 'quick',
    workers: 2,
    pairing: {
      topologies: ['memory'],
      rates: [500, 2_000],
      durationMs: 2_000,
      settleMs: 1_000,
      targetRate: 2_000,
      cycleSessions: 400,
      cycleWarmupMs: 700,
      cycleMs: 1_200,
      cycleRounds: 3,
    },
    arrival: { topologies: ['memory', 'redis-1'], pairs: 100, warmupPairs: 20, bursts: [100], burstRuns: 3, rounds: 3, timeoutMs: 5_000 },
    relay: { targets: ['echo', 'peerjs', 'dyad-memory', 'dyad-redis-same', 'dyad-redis-cross', 'dyad-cluster-cross'], chatLines: 100, pairs: 20, window: 8, rate: 5_000, warmupMs: 300, durationMs: 1_000, rounds: 3 },
    capacity: { steps: [1_000, 2_500, 5_000], holdMs: 500, rate: 5_000, addresses: 4 },
    soak: { sessions: 200, durationMs: 6_000, sampleMs: 1_500, dwellSec: [1, 3], leaveChance: 0.1 },
    frame: { timeoutMs: 60_000, runs: 2 },
    model: { held: 1_000, pairingsPerSec: 30, framesPerSec: 1_000, chatsPerSec: 200, relayPairs: 20, warmupMs: 1_000, windowMs: 3_000, ceiling: 0.7 },
    chaos: { ...CHAOS_COMMON, sessions: 5_000, lingerChance: 0.02, killEveryMs: 8_000, freezeMs: 6_000, runLimitMs: 150_000, settleMs: 20_000 },
  },
  full: {
    name: 'full',
    workers: 2,
    pairing: {
      topologies: ['memory', 'redis-1', 'redis-2'],
      rates: [500, 1_000, 2_000, 5_000],
      durationMs: 6_000,
      settleMs: 5_000,
      targetRate: 2_000,
      cycleSessions: 2_000,
      cycleWarmupMs: 2_000,
      cycleMs: 6_000,
      cycleRounds: 3,
    },
    arrival: { topologies: ['memory', 'redis-1'], pairs: 300, warmupPairs: 50, bursts: [100, 500], burstRuns: 6, rounds: 3, timeoutMs: 10_000 },
    relay: {
      targets: ['echo', 'peerjs', 'dyad-memory', 'dyad-redis-same', 'dyad-redis-cross', 'dyad-cluster-cross'],
      chatLines: 300,
      pairs: 50,
      window: 8,
      rate: 5_000,
      warmupMs: 1_500,
      durationMs: 6_000,
      rounds: 3,
    },
    capacity: { steps: [2_000, 5_000, 10_000, 20_000, 30_000, 40_000, 50_000], holdMs: 10_000, rate: 4_000, addresses: 8 },
    soak: { sessions: 1_000, durationMs: 180_000, sampleMs: 5_000, dwellSec: [2, 6], leaveChance: 0.1 },
    frame: { timeoutMs: 180_000, runs: 20 },
    // A twentieth of the scale the model is built for (bench/lib/model.ts, FULL_SCALE).
    model: { held: 5_000, pairingsPerSec: 100, framesPerSec: 2_500, chatsPerSec: 500, relayPairs: 50, warmupMs: 2_000, windowMs: 6_000, ceiling: 0.7 },
    chaos: { ...CHAOS_COMMON, sessions: 100_000, lingerChance: 0.003, killEveryMs: 60_000, freezeMs: 8_000, runLimitMs: 15 * 60_000, settleMs: 30_000 },
  },
};

export interface BenchContext {
  profile: ProfileSettings;
  workers: Workers;
  progress: Progress;
  outDir: string;
  /** Folder for server CPU profiles when --cpu-prof is given. */
  cpuProfDir?: string;
  /** Reasons the Redis set-ups could not start (filled in by the first attempt). */
  redisUnavailable?: string;
  /** Log Redis commands for a moment after each Redis measurement, to say where its time goes. */
  diagnoseRedis: boolean;
}

/** One line that rewrites itself on a terminal; periodic plain lines otherwise. */
export class Progress {
  private last = '';
  private lastPrinted = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly tty = process.stderr.isTTY === true;
  private readonly started = Date.now();

  /** Show `status()` every half second until the next watch or line. */
  watch(status: () => string): void {
    this.unwatch();
    const show = (): void => this.status(status());
    show();
    this.timer = setInterval(show, 500);
    this.timer.unref();
  }

  unwatch(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  status(text: string): void {
    const t = `[${((Date.now() - this.started) / 1000).toFixed(0).padStart(4)} s] ${text}`;
    if (this.tty) {
      const cols = process.stderr.columns || 120;
      process.stderr.write(`\r\x1b[K${t.slice(0, cols - 1)}`);
      this.last = t;
    } else if (Date.now() - this.lastPrinted >= 5_000) {
      process.stderr.write(`${t}\n`);
      this.lastPrinted = Date.now();
    }
  }

  /** A permanent line above the progress line. */
  line(text: string): void {
    if (this.tty && this.last) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${text}\n`);
    this.last = '';
  }

  done(): void {
    this.unwatch();
    if (this.tty && this.last) process.stderr.write('\r\x1b[K');
    this.last = '';
  }
}

export const load1 = (): number => +(loadavg()[0] ?? 0).toFixed(2);

/** Split `total` into `n` near-equal whole parts. */
export function split(total: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

export const fmtMs = (v: number): string => (Number.isFinite(v) ? (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) : '–');
export const fmtInt = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–');
export const fmtKiB = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : '–');
export const fmtMiB = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : '–');
