// What the coordinator asks of a load-generator worker, and what it gets
// back. Shared by bench/lib/loadgen.ts (parent) and bench/lib/worker.ts (child).

/** Sessions arriving at `rate` per second (Poisson), each one-trip start -> matched -> clean close. */
export interface ArrivalsTask {
  kind: 'arrivals';
  /** ws://HOST:PORT of matching processes; arrivals go round-robin. */
  matchingWs: string[];
  rate: number;
  durationMs: number;
  /** After the last arrival, how long unmatched sessions may still wait. */
  settleMs: number;
  /** Cap on sessions open at once (protects the generator, counted as lag). */
  maxOpen: number;
  /** Wait for the coordinator's `go` before the first arrival (to start beside a load that is still setting up). */
  startOnGo?: boolean;
}

export interface SampleSet {
  values: number[];
  count: number;
}

export interface ArrivalsResult {
  launched: number;
  matched: number;
  unmatched: number;
  failed: Record<string, number>;
  /** `waiting` -> `matched` on the session's own socket (its time in the pool). */
  waitMs: SampleSet;
  /** Socket created -> `matched` (TCP, upgrade, registration, pool). */
  e2eMs: SampleSet;
  /** How late each arrival started against its schedule (generator overload). */
  lagMs: SampleSet;
  cpuSec: number;
  elapsedMs: number;
}

/** Held sessions that `next` as soon as they are matched: pairing throughput without connection set-up. */
export interface CycleTask {
  kind: 'cycle';
  matchingWs: string[];
  sessions: number;
  warmupMs: number;
  durationMs: number;
  /** Keep cycling this long after the window (room for a diagnosis). */
  tailMs: number;
  localAddresses: string[];
}

export interface CycleResult {
  sessions: number;
  /** `matched` events inside the measured window (two per pairing). */
  matchedInWindow: number;
  windowMs: number;
  waitMs: SampleSet;
  errors: Record<string, number>;
  cpuSec: number;
}

export type RelayKind = 'dyad' | 'echo' | 'peerjs';

/** Pairs relaying signal messages to each other through a server. */
export interface RelayTask {
  kind: 'relay';
  server: RelayKind;
  pairs: number;
  /** `window`: keep `window` messages in flight per direction (saturation); `rate`: open loop at `rate` msg/s for this worker. */
  load: { type: 'window'; window: number } | { type: 'rate'; rate: number };
  warmupMs: number;
  durationMs: number;
  /** Keep the load on this long after the window (room for a diagnosis). */
  tailMs: number;
  /**
   * What the members send each other (Dyad only): `signal` (default), ICE
   * candidates on the signalling sockets; `chat`, chat messages on the
   * matching sockets.
   */
  frames?: 'signal' | 'chat';
  /** Dyad: member A's and member B's matching and signalling endpoints (same process or two). */
  dyad?: { matchingA: string; matchingB: string; signallingA: string; signallingB: string };
  /** ws:// URL of the echo server or the PeerJS server root. */
  url?: string;
  /** Unique per run and worker, so pair ids never collide. */
  tag: string;
}

export interface RelayResult {
  delivered: number;
  windowMs: number;
  latencyMs: SampleSet;
  errors: Record<string, number>;
  cpuSec: number;
  setupMs: number;
}

/** Grow a set of idle sessions step by step (commands `grow` and `release`). */
export interface HoldTask {
  kind: 'hold';
  matchingWs: string;
  localAddresses: string[];
  /** New sessions per second this worker opens while growing. */
  rate: number;
  /** Handshakes in flight at once. */
  concurrency: number;
}

export interface HoldStatus {
  open: number;
  matched: number;
  failed: Record<string, number>;
  closedUnexpectedly: Record<string, number>;
  cpuSec: number;
}

/** Sessions that pair, chat and move on every few seconds, for minutes. */
export interface SoakTask {
  kind: 'soak';
  matchingWs: string[];
  sessions: number;
  durationMs: number;
  /** Seconds a conversation lasts before `next`: uniform in [min, max]. */
  dwellSec: [number, number];
  /** Chance a session leaves for good at the end of a conversation (a new one replaces it). */
  leaveChance: number;
}

export interface SoakCounters {
  sessionsStarted: number;
  pairs: number;
  chatsSent: number;
  chatsReceived: number;
  nexts: number;
  leaves: number;
  errors: Record<string, number>;
  unexpectedCloses: Record<string, number>;
  connectFailures: Record<string, number>;
  cpuSec: number;
}

/** How a visitor arrives: a one-trip start, POST /register then its socket, or a bare upgrade to the floor server. */
export type ArrivalWay = 'one-trip' | 'register' | 'floor';

/**
 * Visitors arriving one pair at a time (`pairs`: the first waits in the pool,
 * then the second arrives) or all at once (`burst`); each is matched, then
 * closes with 1000.
 */
export interface VisitorsTask {
  kind: 'visitors';
  way: ArrivalWay;
  /** http://HOST:PORT of the matching processes (or of the floor server); arrivals go round-robin. */
  servers: string[];
  shape: 'pairs' | 'burst';
  /** Pairs (`pairs`) or visitors (`burst`). */
  count: number;
  /** Longest wait for one visitor to be in the pool, or matched. */
  timeoutMs: number;
  /** The task stops starting pairs after this long, whatever is left. */
  deadlineMs: number;
  /** Unique per run: the floor's visitors name themselves with it. */
  tag: string;
}

/** What went wrong with the matches of a set of visitors. */
export interface MatchAnomalies {
  /** Visitors told `matched` more than once. */
  doubles: number;
  /** Rooms that are not two visitors who both got it, each named as the other's `peer`, one the initiator. */
  oddRooms: number;
  /** Visitors never matched (failed to arrive, or not matched within the timeout). */
  lost: number;
  /** Why visitors failed, by cause. */
  failed: Record<string, number>;
}

export interface VisitorsResult {
  /**
   * `pairs`: one sample per pair, from the second arrival's first request (TCP
   * connect or POST) until both hold `matched`; `burst`: one sample, from the
   * first arrival until every visitor holds `matched` (NaN if one never did).
   */
  latencyMs: number[];
  /** Wall time of the task: pairs per second = latencyMs.length / elapsedMs. */
  elapsedMs: number;
  /** Arrivals started. */
  sessions: number;
  anomalies: MatchAnomalies;
  cpuSec: number;
}

export type Task = ArrivalsTask | CycleTask | RelayTask | HoldTask | SoakTask | VisitorsTask;

export type ToWorker =
  | { op: 'run'; id: number; task: Task }
  | { op: 'grow'; total: number }
  /** Start the load of a task that waits for every worker to be set up (cycle). */
  | { op: 'go' }
  | { op: 'release' }
  | { op: 'exit' };

export type FromWorker =
  | { op: 'ready' }
  | { op: 'progress'; id: number; data: Record<string, number> }
  | { op: 'done'; id: number; result: unknown }
  | { op: 'status'; status: HoldStatus }
  | { op: 'error'; id?: number; message: string };
