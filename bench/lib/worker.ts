// A load-generator process. The coordinator forks several (one core cannot
// drive a server that has the other one), sends each a task over IPC, and
// merges what they report. Clients speak the raw wire protocol over `ws`.
import http from 'node:http';
import WebSocket from 'ws';
import { Samples } from './stats.js';
import type {
  ArrivalsResult,
  ArrivalsTask,
  CycleResult,
  CycleTask,
  FromWorker,
  HoldStatus,
  HoldTask,
  MatchAnomalies,
  RelayResult,
  RelayTask,
  SoakCounters,
  SoakTask,
  ToWorker,
  VisitorsResult,
  VisitorsTask,
} from './tasks.js';

const WS_OPTS = {
  perMessageDeflate: false,
  handshakeTimeout: 15_000,
  // An all-zero mask is valid (RFC 6455 §5.3) and lets ws skip masking: the
  // generator spends its CPU on sending, not on XOR, for every server alike.
  generateMask: (): void => undefined,
} as const;
const PROGRESS_EVERY_MS = 1_000;
/** Handshakes one generator keeps in flight while opening held sessions. */
const CONNECT_CONCURRENCY = 200;
const T_KEY = Buffer.from('"t":');
/** A realistic ICE candidate (srflx, ~200 bytes): the bulk of real signalling traffic. */
const CANDIDATE =
  '"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 10.0.0.5 rport 54400 generation 0 ufrag 7sQz network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"7sQz"';

const send = (m: FromWorker): void => {
  process.send?.(m);
};
/** The task the coordinator asked for last; progress is tagged with the task it belongs to. */
let currentTask = 0;
/** A progress reporter for the task starting now: a late report of an earlier task is then told apart. */
const progressOf = (): ((data: Record<string, number>) => void) => {
  const id = currentTask;
  return (data) => send({ op: 'progress', id, data });
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const bump = (rec: Record<string, number>, key: string): void => {
  rec[key] = (rec[key] ?? 0) + 1;
};
/** A short, stable name for a client-side failure ("ECONNRESET", "http 429", ...). */
const errKey = (err: Error): string => {
  const code = (err as NodeJS.ErrnoException).code;
  if (code) return code;
  const m = /Unexpected server response: (\d+)/.exec(err.message);
  if (m) return `http ${m[1]}`;
  return err.message.slice(0, 60);
};
/** An `error` event as a count key: its code, and the start of its message (one code has several causes). */
const errorEventKey = (m: Msg): string => `error ${m.code ?? '?'}${m.message ? ` (${m.message.slice(0, 48)})` : ''}`;
const sampleSet = (s: Samples) => ({ values: s.values, count: s.count });
const uniform = ([lo, hi]: [number, number]): number => lo + Math.random() * (hi - lo);

interface Msg {
  event?: string;
  type?: string;
  code?: string;
  message?: string;
  id?: string;
  token?: string;
  peer?: string;
  initiator?: boolean;
  room_code?: string;
  data?: { t?: number };
  payload?: { t?: number };
}

/** Messages of one socket, awaited by event name during set-up. */
class Inbox {
  private readonly seen: Msg[] = [];
  private readonly waiters: { event: string; resolve: (m: Msg) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | undefined;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.push(JSON.parse(String(data)) as Msg));
    ws.on('error', (err) => this.fail(err));
    ws.on('close', (code) => this.fail(new Error(`closed ${code} during set-up`)));
  }
  private push(m: Msg): void {
    const key = m.event ?? m.type ?? '';
    const i = this.waiters.findIndex((w) => w.event === key);
    if (i >= 0) this.waiters.splice(i, 1)[0]?.resolve(m);
    else this.seen.push(m);
  }
  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
  wait(event: string, timeoutMs = 20_000): Promise<Msg> {
    const i = this.seen.findIndex((m) => (m.event ?? m.type) === event);
    if (i >= 0) return Promise.resolve(this.seen.splice(i, 1)[0] as Msg);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const w = { event, resolve, reject };
      this.waiters.push(w);
      setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs).unref();
    });
  }
  /**
   * Hand the socket over to the load phase; `onMessage` gets what arrived
   * after the awaited message first (a `matched` can come in the same read
   * as `session`), then every later message.
   */
  detach(onMessage?: (m: Msg) => void): WebSocket {
    this.ws.removeAllListeners('message');
    this.ws.removeAllListeners('close');
    this.ws.removeAllListeners('error');
    this.ws.on('error', () => undefined);
    if (onMessage) {
      this.ws.on('message', (data) => onMessage(JSON.parse(String(data)) as Msg));
      for (const m of this.seen.splice(0)) onMessage(m);
    }
    return this.ws;
  }
}

function open(url: string, localAddress?: string): Inbox {
  return new Inbox(new WebSocket(url, localAddress ? { ...WS_OPTS, localAddress } : WS_OPTS));
}

/** Run `fn` over 0..n-1 with at most `limit` in flight. */
async function pool<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, lane));
  return out;
}

// ------------------------------------------------------------------ arrivals

async function arrivals(t: ArrivalsTask): Promise<ArrivalsResult> {
  const tell = progressOf();
  const wait = new Samples();
  const e2e = new Samples();
  const lag = new Samples();
  const failed: Record<string, number> = {};
  const live = new Map<WebSocket, { done: boolean }>();
  let launched = 0;
  let matched = 0;
  const cpu0 = cpuNow();
  const progress = setInterval(() => tell({ launched, matched, open: live.size }), PROGRESS_EVERY_MS);

  const launch = (scheduled: number): void => {
    const start = performance.now();
    lag.add(start - scheduled);
    const url = `${t.matchingWs[launched % t.matchingWs.length]}/ws?mode=text`;
    launched++;
    const ws = new WebSocket(url, WS_OPTS);
    const st = { done: false };
    live.set(ws, st);
    let waitingAt = Number.NaN;
    ws.on('message', (data) => {
      const now = performance.now();
      const msg = JSON.parse(String(data)) as Msg;
      if (msg.event === 'waiting') waitingAt = now;
      else if (msg.event === 'matched' && !st.done) {
        st.done = true;
        matched++;
        if (!Number.isNaN(waitingAt)) wait.add(now - waitingAt);
        e2e.add(now - start);
        // A clean close ends the session: the run leaves nothing behind.
        ws.close(1000);
      } else if (msg.event === 'error') bump(failed, errorEventKey(msg));
    });
    ws.on('error', (err) => {
      if (!st.done) bump(failed, errKey(err));
    });
    ws.on('close', () => live.delete(ws));
  };

  if (t.startOnGo) await new Promise<void>((resolve) => goWaiters.push(resolve));
  const perMs = t.rate / 1000;
  const t0 = performance.now();
  const end = t0 + t.durationMs;
  let next = t0;
  while (next < end) {
    const now = performance.now();
    while (next <= now && next < end && live.size < t.maxOpen) {
      launch(next);
      next += -Math.log(1 - Math.random()) / perMs; // Poisson arrivals
    }
    if (next > now) await sleep(Math.max(1, Math.min(5, next - now)));
    else await tick();
  }
  const elapsedMs = performance.now() - t0;
  const settleEnd = performance.now() + t.settleMs;
  while ([...live.values()].some((s) => !s.done) && performance.now() < settleEnd) await sleep(20);
  let unmatched = 0;
  for (const [ws, s] of live) {
    if (!s.done) unmatched++;
    ws.terminate();
  }
  clearInterval(progress);
  return {
    launched,
    matched,
    unmatched,
    failed,
    waitMs: sampleSet(wait),
    e2eMs: sampleSet(e2e),
    lagMs: sampleSet(lag),
    cpuSec: cpuNow() - cpu0,
    elapsedMs,
  };
}

// ------------------------------------------------------------------ cycle

async function cycle(t: CycleTask): Promise<CycleResult> {
  const tell = progressOf();
  const wait = new Samples();
  const errors: Record<string, number> = {};
  let measuring = false;
  let stopping = false;
  // Until every session is connected, matched ones wait: cycling sessions
  // would otherwise starve the handshakes of those still connecting.
  let cycling = false;
  const parked: WebSocket[] = [];
  let matchedInWindow = 0;
  let matchedTotal = 0;
  let connected = 0;
  let loading = 0;
  const report = (): void => tell({ connected, matched: matchedTotal, loading });
  const progress = setInterval(report, PROGRESS_EVERY_MS);
  const opened = await pool(t.sessions, CONNECT_CONCURRENCY, async (i): Promise<WebSocket | undefined> => {
    const url = `${t.matchingWs[i % t.matchingWs.length]}/ws?mode=text`;
    const inbox = open(url, t.localAddresses[i % t.localAddresses.length]);
    try {
      await inbox.wait('session');
    } catch (err) {
      // A session that could not start is counted; the others cycle on.
      bump(errors, `connect: ${err instanceof Error ? errKey(err) : String(err)}`);
      inbox.ws.terminate();
      return undefined;
    }
    const ws = inbox.ws;
    connected++;
    let waitingAt = Number.NaN;
    inbox.detach((msg) => {
      if (msg.event === 'waiting') waitingAt = performance.now();
      else if (msg.event === 'matched') {
        matchedTotal++;
        if (measuring) {
          matchedInWindow++;
          if (!Number.isNaN(waitingAt)) wait.add(performance.now() - waitingAt);
        }
        // Exactly one `next` per room: it ends the room for both, and whoever
        // is told `peer-disconnected` has already sent its own.
        if (cycling) ws.send('{"event":"next"}');
        else parked.push(ws);
      } else if (msg.event === 'error') bump(errors, errorEventKey(msg));
    });
    ws.on('close', (code) => {
      if (!stopping) bump(errors, `close ${code}`);
    });
    return ws;
  });
  const sockets = opened.filter((ws): ws is WebSocket => ws !== undefined);
  // Connected: say so at once, and start cycling when every worker is.
  loading = 1;
  report();
  await new Promise<void>((resolve) => goWaiters.push(resolve));
  cycling = true;
  for (const ws of parked.splice(0)) if (ws.readyState === WebSocket.OPEN) ws.send('{"event":"next"}');
  const cpu0 = cpuNow();
  await sleep(t.warmupMs);
  measuring = true;
  const w0 = performance.now();
  await sleep(t.durationMs);
  measuring = false;
  const windowMs = performance.now() - w0;
  const cpuSec = cpuNow() - cpu0;
  // Keep cycling a little longer so the coordinator's server-side window ends inside ours.
  await sleep(t.tailMs);
  stopping = true;
  clearInterval(progress);
  for (const ws of sockets) ws.close(1000);
  await sleep(300);
  return { sessions: connected, matchedInWindow, windowMs, waitMs: sampleSet(wait), errors, cpuSec };
}

// ------------------------------------------------------------------ relay

interface Direction {
  from: WebSocket;
  /** The frame to send, with the send time stamped in. */
  frame: (t: number) => string;
  inFlight: number;
}

interface RelayPair {
  ab: Direction;
  ba: Direction;
  sockets: WebSocket[];
}

async function dyadPair(t: RelayTask, i: number): Promise<RelayPair> {
  const d = t.dyad;
  if (!d) throw new Error('relay task without dyad endpoints');
  // A unique interest makes exactly these two a pair (for INTEREST_TIMEOUT_MS).
  const interest = `${t.tag}p${i}`;
  const ia = open(`${d.matchingA}/ws?mode=video&interests=${interest}`);
  const sa = await ia.wait('session');
  const ib = open(`${d.matchingB}/ws?mode=video&interests=${interest}`);
  const sb = await ib.wait('session');
  const [ma, mb] = await Promise.all([ia.wait('matched'), ib.wait('matched')]);
  if (ma.peer !== sb.id || mb.peer !== sa.id || !ma.room_code) throw new Error('relay pair matched with a stranger');
  const room = ma.room_code;
  const join = async (base: string, s: Msg): Promise<WebSocket> => {
    const inbox = open(`${base}/ws/${encodeURIComponent(s.id ?? '')}?token=${encodeURIComponent(s.token ?? '')}`);
    await new Promise<void>((resolve, reject) => {
      inbox.ws.once('open', () => resolve());
      inbox.ws.once('error', reject);
    });
    inbox.ws.send(JSON.stringify({ event: 'join', room_code: room }));
    await inbox.wait('verified');
    return inbox.detach();
  };
  const wa = await join(d.signallingA, sa);
  const wb = await join(d.signallingB, sb);
  const matchA = ia.detach();
  const matchB = ib.detach();
  if (t.frames === 'chat') {
    // A chat line of ordinary length carrying its send time (the receiver reads it back).
    const chat = (now: number): string => `{"event":"chat","message":"sent at ${now} ms, how is it going over there?"}`;
    return { ab: { from: matchA, frame: chat, inFlight: 0 }, ba: { from: matchB, frame: chat, inFlight: 0 }, sockets: [wa, wb, matchA, matchB] };
  }
  const prefix = `{"event":"signal","room_code":"${room}","type":"candidate","data":{${CANDIDATE},"t":`;
  const frame = (now: number): string => `${prefix}${now}}}`;
  return {
    ab: { from: wa, frame, inFlight: 0 },
    ba: { from: wb, frame, inFlight: 0 },
    sockets: [wa, wb, matchA, matchB],
  };
}

/** The send time a relayed chat line carries (see dyadPair), or undefined. */
const CHAT_SENT = /^sent at ([0-9.]+) ms/;

async function echoPair(t: RelayTask, i: number): Promise<RelayPair> {
  const id = `${t.tag}p${i}`;
  const a = open(`${t.url}/?pair=${id}&side=a`);
  const b = open(`${t.url}/?pair=${id}&side=b`);
  await Promise.all([a.wait('ready'), b.wait('ready')]);
  // The same bytes a Dyad client sends; the echo server forwards them untouched.
  const prefix = `{"event":"signal","room_code":"${id}","type":"candidate","data":{${CANDIDATE},"t":`;
  const frame = (now: number): string => `${prefix}${now}}}`;
  return { ab: { from: a.detach(), frame, inFlight: 0 }, ba: { from: b.detach(), frame, inFlight: 0 }, sockets: [a.ws, b.ws] };
}

async function peerjsPair(t: RelayTask, i: number): Promise<RelayPair> {
  const ida = `${t.tag}p${i}a`;
  const idb = `${t.tag}p${i}b`;
  const a = open(`${t.url}/peerjs?key=peerjs&id=${ida}&token=ta${i}`);
  const b = open(`${t.url}/peerjs?key=peerjs&id=${idb}&token=tb${i}`);
  await Promise.all([a.wait('OPEN'), b.wait('OPEN')]);
  const to = (dst: string) => {
    const prefix = `{"type":"CANDIDATE","dst":"${dst}","payload":{${CANDIDATE},"t":`;
    return (now: number): string => `${prefix}${now}}}`;
  };
  return {
    ab: { from: a.detach(), frame: to(idb), inFlight: 0 },
    ba: { from: b.detach(), frame: to(ida), inFlight: 0 },
    sockets: [a.ws, b.ws],
  };
}

async function relay(t: RelayTask): Promise<RelayResult> {
  const tell = progressOf();
  const latency = new Samples();
  const errors: Record<string, number> = {};
  const setup0 = performance.now();
  const make = t.server === 'dyad' ? dyadPair : t.server === 'echo' ? echoPair : peerjsPair;
  const pairs = await pool(t.pairs, 16, (i) => make(t, i));
  const setupMs = performance.now() - setup0;

  let running = true;
  let measuring = false;
  let delivered = 0;
  let total = 0;
  let loading = 0;
  const report = (): void => tell({ delivered: total, loading });
  const progress = setInterval(report, PROGRESS_EVERY_MS);
  const windowed = t.load.type === 'window';
  const receiver = (dir: Direction, to: WebSocket): void => {
    to.on('message', (data: Buffer) => {
      // After the load, closing sockets tell partners `peer-disconnected`: not an error.
      if (!running) return;
      const now = performance.now();
      // Every relayed frame ends with `"t":<send time>}}`: read it without
      // parsing the whole frame, so the generator stays cheaper than the server.
      const at = data.lastIndexOf(T_KEY);
      let sent = at > 0 ? Number(data.toString('latin1', at + T_KEY.length, data.length - 2)) : undefined;
      if (sent === undefined || Number.isNaN(sent)) {
        const msg = JSON.parse(String(data)) as Msg;
        const line = msg.event === 'chat' ? CHAT_SENT.exec(msg.message ?? '') : null;
        if (line?.[1]) sent = Number(line[1]);
        else {
          // `peer-joined` can trail the set-up; anything else is a real error.
          if (msg.event !== 'peer-joined') bump(errors, msg.code ?? msg.event ?? msg.type ?? 'unknown');
          return;
        }
      }
      total++;
      dir.inFlight--;
      if (measuring) {
        delivered++;
        latency.add(now - sent);
      }
      if (windowed && running) {
        dir.inFlight++;
        dir.from.send(dir.frame(performance.now()));
      }
    });
    to.on('close', (code) => {
      if (running) bump(errors, `close ${code}`);
    });
  };
  for (const p of pairs) {
    receiver(p.ab, p.ba.from);
    receiver(p.ba, p.ab.from);
  }
  const dirs = pairs.flatMap((p) => [p.ab, p.ba]);
  // Tell the coordinator at once: its measuring window is timed from here.
  loading = 1;
  report();
  const cpu0 = cpuNow();
  const t0 = performance.now();
  let w0 = t0;
  let w1 = t0;
  const load = t.load;
  if (load.type === 'window') {
    for (const d of dirs) {
      for (let k = 0; k < load.window; k++) {
        d.inFlight++;
        d.from.send(d.frame(performance.now()));
      }
    }
    await sleep(t.warmupMs);
    measuring = true;
    w0 = performance.now();
    await sleep(t.durationMs);
    measuring = false;
    w1 = performance.now();
    await sleep(t.tailMs);
  } else {
    // Open loop: frames go out on schedule whether or not earlier ones have arrived.
    const perMs = load.rate / 1000;
    let sent = 0;
    let rr = 0;
    const end = t0 + t.warmupMs + t.durationMs;
    while (performance.now() < end) {
      const now = performance.now();
      if (!measuring && now >= t0 + t.warmupMs) {
        measuring = true;
        w0 = now;
      }
      const due = Math.floor((now - t0) * perMs) - sent;
      for (let k = 0; k < due; k++) {
        const d = dirs[rr++ % dirs.length] as Direction;
        d.inFlight++;
        d.from.send(d.frame(performance.now()));
        sent++;
      }
      await sleep(1);
    }
    measuring = false;
    w1 = performance.now();
  }
  const cpuSec = cpuNow() - cpu0;
  running = false;
  clearInterval(progress);
  await sleep(300);
  for (const p of pairs) for (const ws of p.sockets) ws.close(1000);
  await sleep(200);
  return { delivered, windowMs: w1 - w0, latencyMs: sampleSet(latency), errors, cpuSec, setupMs };
}

// ------------------------------------------------------------------ hold (capacity)

class Holder {
  private readonly sockets = new Set<WebSocket>();
  private target = 0;
  private launched = 0;
  private inFlight = 0;
  private open = 0;
  private matched = 0;
  private releasing = false;
  private readonly failed: Record<string, number> = {};
  private readonly closedUnexpectedly: Record<string, number> = {};
  private readonly cpu0 = cpuNow();
  private growStart = 0;
  private launchedAtGrowStart = 0;
  private timer: NodeJS.Timeout | undefined;

  private readonly ticker: NodeJS.Timeout;

  constructor(private readonly t: HoldTask) {
    const tell = progressOf();
    this.ticker = setInterval(() => tell({ open: this.open, matched: this.matched }), PROGRESS_EVERY_MS);
  }

  status(): HoldStatus {
    return {
      open: this.open,
      matched: this.matched,
      failed: { ...this.failed },
      closedUnexpectedly: { ...this.closedUnexpectedly },
      cpuSec: cpuNow() - this.cpu0,
    };
  }

  grow(total: number): void {
    this.target = total;
    this.growStart = performance.now();
    this.launchedAtGrowStart = this.launched;
    this.pump();
  }

  private pump(): void {
    if (this.timer) return;
    // Open at the set rate and never more than `concurrency` handshakes at once.
    const allowed = Math.floor(((performance.now() - this.growStart) * this.t.rate) / 1000) - (this.launched - this.launchedAtGrowStart);
    let budget = Math.max(0, allowed);
    while (this.launched < this.target && this.inFlight < this.t.concurrency && budget > 0) {
      this.launchOne();
      budget--;
    }
    if (this.launched < this.target) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, 5);
    } else if (this.inFlight === 0) send({ op: 'status', status: this.status() });
  }

  private launchOne(): void {
    const i = this.launched++;
    this.inFlight++;
    const addr = this.t.localAddresses[i % this.t.localAddresses.length];
    const ws = new WebSocket(`${this.t.matchingWs}/ws?mode=text`, addr ? { ...WS_OPTS, localAddress: addr } : WS_OPTS);
    let established = false;
    const settle = (): void => {
      this.inFlight--;
      if (this.launched >= this.target && this.inFlight === 0) send({ op: 'status', status: this.status() });
      else this.pump();
    };
    ws.on('message', (data) => {
      const text = String(data);
      if (!established && text.includes('"session"')) {
        established = true;
        this.open++;
        this.sockets.add(ws);
        settle();
      } else if (text.includes('"matched"')) this.matched++;
    });
    ws.on('error', (err) => {
      if (!established) {
        bump(this.failed, errKey(err));
        established = true; // counted once
        settle();
      }
    });
    ws.on('close', (code) => {
      if (this.sockets.delete(ws)) {
        this.open--;
        if (!this.releasing) bump(this.closedUnexpectedly, String(code));
      }
    });
  }

  async release(): Promise<void> {
    this.releasing = true;
    this.target = this.launched;
    let k = 0;
    for (const ws of [...this.sockets]) {
      ws.close(1000);
      if (++k % 1_000 === 0) await tick();
    }
    const end = performance.now() + 15_000;
    while (this.sockets.size > 0 && performance.now() < end) await sleep(50);
    for (const ws of this.sockets) ws.terminate();
    clearInterval(this.ticker);
    send({ op: 'status', status: this.status() });
  }
}

// ------------------------------------------------------------------ soak

async function soak(t: SoakTask): Promise<SoakCounters> {
  const tell = progressOf();
  const c: SoakCounters = {
    sessionsStarted: 0,
    pairs: 0,
    chatsSent: 0,
    chatsReceived: 0,
    nexts: 0,
    leaves: 0,
    errors: {},
    unexpectedCloses: {},
    connectFailures: {},
    cpuSec: 0,
  };
  const cpu0 = cpuNow();
  let running = true;
  const live = new Set<WebSocket>();
  const progress = setInterval(
    () => tell({ open: live.size, pairs: c.pairs, chats: c.chatsReceived }),
    PROGRESS_EVERY_MS,
  );

  const start = (slot: number): void => {
    if (!running) return;
    c.sessionsStarted++;
    const ws = new WebSocket(`${t.matchingWs[slot % t.matchingWs.length]}/ws?mode=text`, WS_OPTS);
    live.add(ws);
    let opened = false;
    let leaving = false;
    const timers = new Set<NodeJS.Timeout>();
    const later = (ms: number, fn: () => void): void => {
      const h = setTimeout(() => {
        timers.delete(h);
        fn();
      }, ms);
      timers.add(h);
    };
    const clear = (): void => {
      for (const h of timers) clearTimeout(h);
      timers.clear();
    };
    const sendIfOpen = (text: string): boolean => {
      if (ws.readyState !== WebSocket.OPEN || !running) return false;
      ws.send(text);
      return true;
    };
    let chatN = 0;
    const chatLoop = (): void => {
      later(500 + Math.random() * 1_000, () => {
        sendIfOpen('{"event":"typing","typing":true}');
        if (sendIfOpen(JSON.stringify({ event: 'chat', message: `hello ${++chatN}, how is it going?` }))) c.chatsSent++;
        chatLoop();
      });
    };
    ws.on('open', () => {
      opened = true;
    });
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as Msg;
      switch (msg.event) {
        case 'matched':
          c.pairs++;
          clear();
          chatLoop();
          later(uniform(t.dwellSec) * 1_000, () => {
            clear();
            if (Math.random() < t.leaveChance) {
              // Leave for good; a new stranger takes the slot.
              leaving = true;
              c.leaves++;
              ws.close(1000);
              setTimeout(() => start(slot), 500);
            } else if (sendIfOpen('{"event":"next"}')) c.nexts++;
          });
          break;
        case 'peer-disconnected':
          clear();
          // What the web client does by itself: look for the next stranger.
          later(200 + Math.random() * 800, () => {
            if (sendIfOpen('{"event":"next"}')) c.nexts++;
          });
          break;
        case 'chat':
          c.chatsReceived++;
          break;
        case 'error':
          bump(c.errors, msg.code ?? 'unknown');
          break;
        default:
          break;
      }
    });
    ws.on('error', (err) => {
      if (!opened) bump(c.connectFailures, errKey(err));
    });
    ws.on('close', (code) => {
      clear();
      live.delete(ws);
      if (!running || leaving) return;
      if (opened) bump(c.unexpectedCloses, String(code));
      setTimeout(() => start(slot), 1_000);
    });
  };
  // Spread the first arrivals over a couple of seconds, as real ones would be.
  for (let i = 0; i < t.sessions; i++) setTimeout(() => start(i), Math.random() * 2_000);
  await sleep(t.durationMs);
  running = false;
  clearInterval(progress);
  for (const ws of live) ws.close(1000);
  await sleep(500);
  for (const ws of live) ws.terminate();
  c.cpuSec = cpuNow() - cpu0;
  return c;
}

// ------------------------------------------------------------------ visitors

/** Longest wait for the sockets of a pair or a burst to close once told to. */
const CLOSE_WAIT_MS = 5_000;
/** After a burst is all matched, how long a second `matched` is waited for before the sockets close. */
const BURST_SETTLE_MS = 200;
/** A pairs task stops after this many pairs in a row went wrong (a server that stopped answering). */
const GIVE_UP_AFTER = 3;
/** Both sides pair by mode only; video is what a POST /register without a body means. */
const VISITOR_MODE = 'video';

/** A promise settled from outside, once; its rejection is handled (a failed visitor is counted, not thrown). */
function latch<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** What `p` resolves to, or undefined when it rejects or takes longer than `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    const done = (v: T | undefined): void => {
      clearTimeout(timer);
      resolve(v);
    };
    p.then(done, () => done(undefined));
  });
}

/** One arriving visitor: its session id and every `matched` it is told. */
interface Visitor {
  /** From `session` (one-trip), the POST /register answer, or the name it gave the floor. */
  id?: string;
  ws?: WebSocket;
  /** In the pool: Dyad said `waiting`; the floor answered the upgrade (it says nothing else before the pair). */
  ready: Promise<void>;
  /** When its first `matched` arrived. */
  matchedAt: Promise<number>;
  matched: Msg[];
  closed: Promise<void>;
  /** Why it never matched, if it did not. */
  failure?: string;
  /** Told to leave: a registration still under way opens no socket. */
  gone: boolean;
}

/** POST /register on a connection of its own, as a new visitor has none to reuse. */
function register(base: string): Promise<{ id: string; token: string }> {
  const body = JSON.stringify({ mode: VISITOR_MODE });
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}/register`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`http ${res.statusCode}`));
          const j = JSON.parse(Buffer.concat(chunks).toString()) as { id?: unknown; token?: unknown };
          if (typeof j.id !== 'string' || typeof j.token !== 'string') return reject(new Error('register: no id or token'));
          resolve({ id: j.id, token: j.token });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Start visitor `n` of a task now: its first request (TCP connect, or the POST) goes out at once. */
function arrive(t: VisitorsTask, n: number): Visitor {
  const ready = latch<void>();
  const matched = latch<number>();
  const closed = latch<void>();
  const v: Visitor = { ready: ready.promise, matchedAt: matched.promise, matched: [], closed: closed.promise, gone: false };
  const fail = (why: string): void => {
    if (v.matched.length === 0) v.failure ??= why;
    ready.reject(new Error(why));
    matched.reject(new Error(why));
  };
  const base = t.servers[n % t.servers.length] as string;
  const wsBase = base.replace(/^http/, 'ws');
  const connect = (url: string): void => {
    const ws = new WebSocket(url, WS_OPTS);
    v.ws = ws;
    if (t.way === 'floor') ws.once('open', () => ready.resolve());
    ws.on('message', (data) => {
      const at = performance.now();
      const m = JSON.parse(String(data)) as Msg;
      if (m.event === 'matched') {
        v.matched.push(m);
        matched.resolve(at);
      } else if (m.event === 'waiting') ready.resolve();
      else if (m.event === 'session') v.id = m.id;
      else if (m.event === 'error') fail(errorEventKey(m));
    });
    ws.on('error', (err) => fail(errKey(err)));
    ws.on('close', (code) => {
      fail(v.gone ? 'not matched in time' : `closed ${code}`);
      closed.resolve();
    });
  };
  if (t.way === 'register') {
    register(base).then(
      (s) => {
        v.id = s.id;
        if (v.gone) closed.resolve();
        else connect(`${wsBase}/ws/${encodeURIComponent(s.id)}?token=${encodeURIComponent(s.token)}`);
      },
      (err: Error) => {
        fail(errKey(err));
        closed.resolve();
      },
    );
  } else if (t.way === 'one-trip') {
    connect(`${wsBase}/ws?mode=${VISITOR_MODE}`);
  } else {
    v.id = `${t.tag}-${n}`;
    connect(`${wsBase}/?name=${v.id}`);
  }
  return v;
}

/** Close every visitor with 1000 (its session ends) and wait, bounded, until all are closed. */
async function leave(vs: readonly Visitor[]): Promise<void> {
  for (const v of vs) {
    v.gone = true;
    if (v.ws?.readyState === WebSocket.OPEN) v.ws.close(1000);
    else if (v.ws?.readyState === WebSocket.CONNECTING) v.ws.terminate();
  }
  if ((await within(Promise.all(vs.map((v) => v.closed)), CLOSE_WAIT_MS)) === undefined) for (const v of vs) v.ws?.terminate();
}

const noAnomalies = (): MatchAnomalies => ({ doubles: 0, oddRooms: 0, lost: 0, failed: {} });
const anomalyCount = (a: MatchAnomalies): number => a.doubles + a.oddRooms + a.lost;

/** Count into `into` what is wrong with the matches of these visitors (all that will come has come). */
function audit(vs: readonly Visitor[], into: MatchAnomalies): void {
  const rooms = new Map<string, Visitor[]>();
  for (const v of vs) {
    const first = v.matched[0];
    if (!first) {
      into.lost++;
      bump(into.failed, v.failure ?? 'not matched in time');
      continue;
    }
    if (v.matched.length > 1) into.doubles++;
    const room = first.room_code ?? '';
    const members = rooms.get(room);
    if (members) members.push(v);
    else rooms.set(room, [v]);
  }
  for (const members of rooms.values()) {
    const [x, y] = members;
    const mx = x?.matched[0];
    const my = y?.matched[0];
    const sound = members.length === 2 && mx?.peer === y?.id && my?.peer === x?.id && mx?.initiator !== my?.initiator;
    if (!sound) into.oddRooms++;
  }
}

async function visitors(t: VisitorsTask): Promise<VisitorsResult> {
  const tell = progressOf();
  const cpu0 = cpuNow();
  const t0 = performance.now();
  const latencyMs: number[] = [];
  const anomalies = noAnomalies();
  let n = 0;
  let matched = 0;
  const progress = setInterval(() => tell({ arrived: n, matched }), PROGRESS_EVERY_MS);
  try {
    if (t.shape === 'burst') {
      const vs = Array.from({ length: t.count }, () => arrive(t, n++));
      const at = await Promise.all(vs.map((v) => within(v.matchedAt, t.timeoutMs)));
      const times = at.filter((x): x is number => x !== undefined);
      matched = times.length;
      latencyMs.push(times.length === vs.length ? Math.max(...times) - t0 : Number.NaN);
      // A second `matched` would come now.
      await sleep(BURST_SETTLE_MS);
      audit(vs, anomalies);
      await leave(vs);
    } else {
      let wrongInARow = 0;
      for (let i = 0; i < t.count && performance.now() - t0 < t.deadlineMs && wrongInARow < GIVE_UP_AFTER; i++) {
        const a = arrive(t, n++);
        const pair = [a];
        let start = Number.NaN;
        if (await within(a.ready.then(() => true), t.timeoutMs)) {
          // From here: the second arrival's first request.
          start = performance.now();
          pair.push(arrive(t, n++));
        }
        const at = await Promise.all(pair.map((v) => within(v.matchedAt, t.timeoutMs)));
        const times = at.filter((x): x is number => x !== undefined);
        matched += times.length;
        if (pair.length === 2 && times.length === 2) latencyMs.push(Math.max(...times) - start);
        await leave(pair);
        const before = anomalyCount(anomalies);
        audit(pair, anomalies);
        wrongInARow = anomalyCount(anomalies) > before ? wrongInARow + 1 : 0;
      }
    }
  } finally {
    clearInterval(progress);
  }
  return { latencyMs, elapsedMs: performance.now() - t0, sessions: n, anomalies, cpuSec: cpuNow() - cpu0 };
}

// ------------------------------------------------------------------ main

let holder: Holder | undefined;
/** Tasks waiting for the coordinator's `go`. */
const goWaiters: (() => void)[] = [];

process.on('message', (m: ToWorker) => {
  const id = m.op === 'run' ? m.id : undefined;
  const fail = (err: unknown): void => send({ op: 'error', id, message: err instanceof Error ? err.message : String(err) });
  switch (m.op) {
    case 'run': {
      currentTask = m.id;
      const task = m.task;
      if (task.kind === 'hold') {
        holder = new Holder(task);
        send({ op: 'status', status: holder.status() });
        return;
      }
      const run =
        task.kind === 'arrivals'
          ? arrivals(task)
          : task.kind === 'cycle'
            ? cycle(task)
            : task.kind === 'relay'
              ? relay(task)
              : task.kind === 'visitors'
                ? visitors(task)
                : soak(task);
      run.then((result) => send({ op: 'done', id: m.id, result }), fail);
      return;
    }
    case 'go':
      for (const resolve of goWaiters.splice(0)) resolve();
      return;
    case 'grow':
      if (holder) holder.grow(m.total);
      else fail(new Error('grow before a hold task'));
      return;
    case 'release':
      if (holder) holder.release().catch(fail);
      else fail(new Error('release before a hold task'));
      return;
    case 'exit':
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
send({ op: 'ready' });
