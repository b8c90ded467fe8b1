// A seeded random crowd of clients against several processes: sessions come
// and go, pair, chat, signal, skip, stop, drop and resume, while the harness
// kills a process and restarts Redis. Every client keeps a log of what it
// sent and saw; a `Checker` then looks for broken invariants in those logs.
// The chaos test (2,000 sessions) and the chaos soak of the benchmark
// (bench/lib/chaos.ts, 100,000 sessions) both run this crowd and this check.
import WebSocket from 'ws';

/** Deterministic PRNG (mulberry32): the same seed gives the same choices. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Msg = Record<string, unknown> & { event: string };

export type Entry =
  | { t: number; kind: 'recv'; ch: 'm' | 's'; msg: Msg }
  | { t: number; kind: 'send'; ch: 'm' | 's'; event: string; room?: string }
  /** Our matching socket went away: `self` when this client dropped it, else the server side (crash, close). */
  | { t: number; kind: 'lost'; self: boolean; code: number }
  | { t: number; kind: 'resumed' }
  /** A socket upgraded and told nothing within FIRST_WORD_MS: given up on (terminated), as a client would; `at`: its process. */
  | { t: number; kind: 'silent'; at: string }
  | { t: number; kind: 'gone'; why: string };

export interface Target {
  name: string;
  matching: string;
  signalling: string;
}

export interface ChaosOptions {
  seed: number;
  sessions: number;
  /** Sessions alive at once: each actor runs one session after another. */
  actors: number;
  graceMs: number;
  targets: () => Target[];
  /** Pause before each step of a session, ms, drawn evenly from [min, max). @default [40, 300] */
  stepMs?: readonly [number, number];
  /** Steps a session takes before it leaves, drawn evenly from [min, max). @default [4, 16] */
  steps?: readonly [number, number];
  /** Share of sessions that stay on after their steps, for the end-of-run check. @default 0.1 */
  lingerChance?: number;
  /** No session starts after this time (Date.now() ms): bounds a long run. @default never */
  stopAt?: number;
}

export interface CrowdHooks {
  /** Told of each new session (n counts from 1) before it starts; the crowd waits for it. */
  onStarted?: (n: number) => Promise<void> | void;
  /** Told of each session whose life is over (not the lingering ones): its log is complete. */
  onDone?: (s: ChaosSession) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How long a client waits for the first word on a socket whose upgrade is done (past a freeze and a call timeout). */
export const FIRST_WORD_MS = 15_000;

export class ChaosSession {
  readonly log: Entry[] = [];
  id = '';
  token = '';
  state: 'connecting' | 'waiting' | 'matched' | 'idle' | 'lost' | 'ended' = 'connecting';
  room: string | undefined;
  peer: string | undefined;
  /** The process of the matching socket last opened. */
  at: string | undefined;
  private m: WebSocket | undefined;
  private s: WebSocket | undefined;
  private sRoom: string | undefined;
  private chatSeq = 0;
  private signalSeq = 0;
  /** The seq of the partner's last chat line in `room`, named on resumption (chat_seen) as the web client does. */
  private chatSeen = 0;

  constructor(
    readonly mode: 'video' | 'text',
    readonly query: Record<string, string>,
    private readonly rnd: () => number,
    private readonly opts: ChaosOptions,
  ) {}

  private note(e: Entry): void {
    this.log.push(e);
  }

  private pick(): Target | undefined {
    const ts = this.opts.targets();
    return ts[Math.floor(this.rnd() * ts.length)];
  }

  /** Open a matching socket on process `at`; resolves with the first message, or the refusal status. */
  private connect(url: string, at: string): Promise<{ ws: WebSocket; first: Msg } | { status: number }> {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { handshakeTimeout: 3_000 });
      let settled = false;
      const done = (v: { ws: WebSocket; first: Msg } | { status: number }): void => {
        if (settled) return;
        settled = true;
        resolve(v);
      };
      let silence: NodeJS.Timeout | undefined;
      ws.once('open', () => {
        silence = setTimeout(() => {
          this.note({ t: Date.now(), kind: 'silent', at });
          ws.terminate();
        }, FIRST_WORD_MS);
      });
      ws.once('unexpected-response', (_req, res) => {
        done({ status: res.statusCode ?? 0 });
        ws.terminate();
      });
      ws.once('error', () => done({ status: 0 }));
      ws.once('close', () => {
        clearTimeout(silence);
        done({ status: 0 });
      });
      ws.once('message', (data) => {
        clearTimeout(silence);
        const first = JSON.parse(data.toString()) as Msg;
        this.at = at;
        this.wire(ws);
        done({ ws, first });
        this.onMessage(first);
      });
    });
  }

  private wire(ws: WebSocket): void {
    this.m = ws;
    ws.on('message', (data) => {
      if (this.m === ws) this.onMessage(JSON.parse(data.toString()) as Msg);
    });
    ws.on('close', (code) => {
      if (this.m !== ws) return;
      this.m = undefined;
      if (this.state === 'ended') return;
      this.note({ t: Date.now(), kind: 'lost', self: false, code });
      this.state = code === 4001 || code === 4003 ? 'ended' : 'lost';
      if (this.state === 'ended') this.note({ t: Date.now(), kind: 'gone', why: `closed ${code}` });
    });
  }

  private onMessage(msg: Msg): void {
    this.note({ t: Date.now(), kind: 'recv', ch: 'm', msg });
    switch (msg.event) {
      case 'session':
        this.id = String(msg.id);
        this.token = String(msg.token);
        break;
      case 'waiting':
        this.state = 'waiting';
        this.room = undefined;
        break;
      case 'matched':
        this.state = 'matched';
        if (this.room !== String(msg.room_code)) this.chatSeen = 0;
        this.room = String(msg.room_code);
        this.peer = String(msg.peer);
        break;
      case 'chat':
        if (typeof msg.seq === 'number' && msg.sender === this.peer && msg.seq > this.chatSeen) this.chatSeen = msg.seq;
        break;
      case 'idle':
      case 'peer-disconnected':
        this.state = 'idle';
        this.room = undefined;
        break;
    }
  }

  private send(event: string, extra: object = {}): void {
    const ws = this.m;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    this.note({ t: Date.now(), kind: 'send', ch: 'm', event, room: this.room });
    ws.send(JSON.stringify({ event, ...extra }));
  }

  /** Start with a one-trip connect; retried (for at most 15 s) while no process answers (a restart in progress). */
  private async begin(): Promise<boolean> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const t = this.pick();
      if (!t) return false;
      const qs = new URLSearchParams({ mode: this.mode, ...this.query }).toString();
      const r = await this.connect(`${t.matching}/ws?${qs}`, t.name);
      if ('ws' in r) return true;
      await sleep(200);
    }
    return false;
  }

  /** Come back after losing the socket: any live process, within the grace period. */
  private async resume(): Promise<boolean> {
    const deadline = Date.now() + this.opts.graceMs - 300;
    while (Date.now() < deadline) {
      const t = this.pick();
      if (!t) return false;
      const seen = this.room !== undefined && this.chatSeen > 0 ? `&chat_seen=${encodeURIComponent(`${this.room}:${this.chatSeen}`)}` : '';
      const r = await this.connect(`${t.matching}/ws/${encodeURIComponent(this.id)}?token=${encodeURIComponent(this.token)}${seen}`, t.name);
      if ('ws' in r) {
        this.note({ t: Date.now(), kind: 'resumed' });
        // Not told a state yet (an error came first): the socket is up, the state still to come.
        if (this.state === 'lost') this.state = 'connecting';
        return true;
      }
      if (r.status === 401) break;
      await sleep(150);
    }
    this.state = 'ended';
    this.note({ t: Date.now(), kind: 'gone', why: 'could not resume' });
    return false;
  }

  /** Drop the socket without a close frame (the server starts the grace period). */
  private drop(): void {
    const ws = this.m;
    this.m = undefined;
    this.note({ t: Date.now(), kind: 'lost', self: true, code: 1006 });
    this.state = 'lost';
    ws?.terminate();
  }

  private end(clean: boolean): void {
    this.closeSignalling();
    const ws = this.m;
    this.m = undefined;
    const t = Date.now();
    if (clean) this.note({ t, kind: 'send', ch: 'm', event: 'close', room: this.room });
    else this.note({ t, kind: 'lost', self: true, code: 1006 });
    this.note({ t, kind: 'gone', why: clean ? 'left' : 'vanished' });
    this.state = 'ended';
    if (clean) ws?.close(1000);
    else ws?.terminate();
  }

  private closeSignalling(): void {
    this.s?.close(1000);
    this.s = undefined;
    this.sRoom = undefined;
  }

  /** Join the room on a signalling socket of any process and trickle a few candidates. */
  private async signalling(): Promise<void> {
    const room = this.room;
    const t = this.pick();
    if (!room || !t) return;
    if (this.sRoom !== room) {
      this.closeSignalling();
      const ws = new WebSocket(`${t.signalling}/ws/${encodeURIComponent(this.id)}?token=${encodeURIComponent(this.token)}`, {
        handshakeTimeout: 3_000,
      });
      const ok = await new Promise<boolean>((resolve) => {
        ws.once('open', () => resolve(true));
        ws.once('error', () => resolve(false));
        ws.once('close', () => resolve(false));
        ws.once('unexpected-response', () => {
          resolve(false);
          ws.terminate();
        });
      });
      if (!ok) return;
      ws.on('message', (data) => this.note({ t: Date.now(), kind: 'recv', ch: 's', msg: JSON.parse(data.toString()) as Msg }));
      ws.on('error', () => undefined);
      this.s = ws;
      this.sRoom = room;
      this.note({ t: Date.now(), kind: 'send', ch: 's', event: 'join', room });
      ws.send(JSON.stringify({ event: 'join', room_code: room }));
    }
    const n = 1 + Math.floor(this.rnd() * 5);
    for (let i = 0; i < n; i++) {
      if (this.s?.readyState !== WebSocket.OPEN) return;
      this.note({ t: Date.now(), kind: 'send', ch: 's', event: 'signal', room });
      this.s.send(JSON.stringify({ event: 'signal', room_code: room, type: 'candidate', data: { candidate: '', room, seq: this.signalSeq++ } }));
    }
  }

  /** Live one session: random steps until its budget is spent, then leave (or, lingering, stay). */
  async live(linger = false): Promise<void> {
    if (!(await this.begin())) {
      this.state = 'ended';
      return;
    }
    const [stepsMin, stepsMax] = this.opts.steps ?? [4, 16];
    let budget = stepsMin + Math.floor(this.rnd() * (stepsMax - stepsMin));
    const [stepMin, stepMax] = this.opts.stepMs ?? [40, 300];
    while (budget > 0 && this.state !== 'ended') {
      await sleep(stepMin + this.rnd() * (stepMax - stepMin));
      const r = this.rnd();
      switch (this.state) {
        case 'connecting':
          // Connected but not told a state yet (the store did not answer the attach and the
          // server said to try again): wait a while, then reconnect as a client would.
          budget -= 0.25;
          if (r < 0.1) this.drop();
          break;
        case 'lost':
          if (!(await this.resume())) return;
          break;
        case 'waiting':
          // Mostly wait (a while counts as a step, so that a client nobody pairs
          // with in a thinning crowd still ends); now and then give up, vanish,
          // or drop and come back.
          if (r < 0.03) this.send('stop');
          else if (r < 0.06) this.drop();
          else if (r < 0.08) this.end(this.rnd() < 0.5);
          budget -= r < 0.08 ? 1 : 0.25;
          break;
        case 'matched':
          budget--;
          if (r < 0.3) this.send('chat', { message: `${this.id}|${this.room}|${this.chatSeq++}` });
          else if (r < 0.42) await this.signalling();
          else if (r < 0.47) this.send('typing', { typing: this.rnd() < 0.5 });
          else if (r < 0.67) this.send('next');
          else if (r < 0.75) this.send('stop');
          else if (r < 0.85) this.drop();
          else if (r < 0.9) this.end(true);
          else if (r < 0.93) this.end(false);
          break;
        case 'idle':
          budget--;
          if (r < 0.85) this.send('next');
          else this.end(true);
          break;
      }
    }
    if (this.state !== 'ended' && !linger) this.end(this.rnd() < 0.7);
  }

  /** After the run: come back if lost, queue again if idle; resolves with the state reached. */
  async settle(): Promise<void> {
    if (this.state === 'lost') await this.resume();
    if (this.state === 'idle') this.send('next');
  }

  close(): void {
    this.closeSignalling();
    this.m?.close(1000);
    this.m = undefined;
  }
}

/**
 * Run `sessions` sessions over `actors` concurrent clients (fewer when `stopAt`
 * comes first). `all` keeps every session unless `keep` is false (a long run
 * hands each finished one to `onDone` and forgets it).
 */
export async function runCrowd(
  opts: ChaosOptions,
  hooks: CrowdHooks = {},
  keep = true,
): Promise<{ all: ChaosSession[]; lingering: ChaosSession[]; started: number }> {
  const rnd = prng(opts.seed);
  const all: ChaosSession[] = [];
  const active = new Set<ChaosSession>();
  const lingering: ChaosSession[] = [];
  const lingerChance = opts.lingerChance ?? 0.1;
  let started = 0;
  const langs = ['en', 'fr'];
  const interests = ['music', 'games', 'films', 'books'];
  const actor = async (): Promise<void> => {
    while (started < opts.sessions && Date.now() < (opts.stopAt ?? Infinity)) {
      started++;
      await hooks.onStarted?.(started);
      const query: Record<string, string> = {};
      if (rnd() < 0.2) query.lang = langs[Math.floor(rnd() * langs.length)] ?? 'en';
      if (rnd() < 0.3) query.interests = interests.filter(() => rnd() < 0.5).join(',') || 'music';
      const s = new ChaosSession(rnd() < 0.7 ? 'video' : 'text', query, prng(Math.floor(rnd() * 2 ** 32)), opts);
      if (keep) all.push(s);
      // Some stay on after their steps, for the end-of-run check.
      const linger = rnd() < lingerChance;
      if (linger) lingering.push(s);
      else active.add(s);
      await s.live(linger).catch(() => undefined);
      if (!linger) {
        active.delete(s);
        hooks.onDone?.(s);
      }
    }
  };
  // CHAOS_PROGRESS=1 prints where the crowd stands every few seconds (for a run that seems stuck).
  const progress = process.env.CHAOS_PROGRESS
    ? setInterval(() => {
        const n: Record<string, number> = {};
        for (const s of [...active, ...lingering]) if (s.state !== 'ended') n[s.state] = (n[s.state] ?? 0) + 1;
        process.stderr.write(`chaos: started ${started}, ${JSON.stringify(n)}\n`);
      }, 5_000)
    : undefined;
  await Promise.all(Array.from({ length: opts.actors }, actor));
  clearInterval(progress);
  return { all, lingering, started };
}

const waitingByMode = (ss: ChaosSession[]): Record<string, number> => {
  const n: Record<string, number> = { video: 0, text: 0 };
  for (const s of ss) if (s.state === 'waiting') n[s.mode] = (n[s.mode] ?? 0) + 1;
  return n;
};

/**
 * The churn is over: whoever lingers comes back and queues again until the
 * pool settles (everyone matched or waiting, at most one waiting per mode, twice
 * in a row) or `settleMs` runs out.
 */
export async function settle(
  lingering: ChaosSession[],
  settleMs: number,
): Promise<{ settled: boolean; present: ChaosSession[]; waiting: Record<string, number> }> {
  const deadline = Date.now() + settleMs;
  for (let calm = 0; Date.now() < deadline; ) {
    await Promise.all(lingering.map((s) => s.settle()));
    await sleep(500);
    const present = lingering.filter((s) => s.state !== 'ended');
    const w = waitingByMode(present);
    const stable = present.every((s) => s.state === 'matched' || s.state === 'waiting') && (w.video ?? 0) <= 1 && (w.text ?? 0) <= 1;
    calm = stable ? calm + 1 : 0;
    if (calm >= 2) return { settled: true, present, waiting: w };
  }
  const present = lingering.filter((s) => s.state !== 'ended');
  return { settled: false, present, waiting: waitingByMode(present) };
}

/** The invariants, each with what it means in a report. */
export const INVARIANTS = {
  oneRoom: 'nobody in two rooms at once',
  roomOfTwo: 'every room exactly two, naming each other, one initiator',
  answered: "every matched answered by the partner's",
  relay: 'chat and signals from the current partner, in order',
  settled: 'nobody left waiting while someone else waits',
  alive: 'every running process keeps its heartbeat',
} as const;
export type Invariant = keyof typeof INVARIANTS;

export interface Findings {
  /** The first violations found, in words (at most 50). */
  violations: string[];
  /** Every violation, counted by invariant. */
  byInvariant: Record<Invariant, number>;
  sessions: number;
  rooms: number;
  oneSided: number;
  chats: number;
  signals: number;
  /** Sockets taken up again within the grace period, after a drop or a crash. */
  resumptions: number;
  /** Sockets upgraded and told nothing within FIRST_WORD_MS (the client gave up on them). */
  silent: number;
}

const VIOLATIONS_KEPT = 50;

/**
 * The invariants, over every event the clients saw:
 * - nobody is in two rooms at once;
 * - every room has exactly two members, each naming the other, one initiator;
 * - every `matched` is answered by the partner's own `matched` for that room,
 *   unless the partner's connection was cut around then (crash, drop, Redis
 *   restart) and the room then ended for the one that saw it;
 * - chat and signals come from the current partner, in the order sent.
 *
 * Sessions are added one at a time, as soon as their logs are complete: what
 * the check keeps of a session once added is a few numbers, so a long run can
 * forget the session itself. `finish` then looks at the rooms.
 */
export class Checker {
  private readonly violations: string[] = [];
  private readonly byInvariant = Object.fromEntries(Object.keys(INVARIANTS).map((k) => [k, 0])) as Record<Invariant, number>;
  /** Per session id: when its connection was cut (lost, gone), and its last sign of leaving a room. */
  private readonly seen = new Map<string, { cuts: number[]; lastEnd: number }>();
  private readonly rooms = new Map<string, Map<string, { peer: string; initiator: boolean; t: number }>>();
  /** What the session being added broke, for `add` to return. */
  private mine: string[] = [];
  sessions = 0;
  chats = 0;
  signals = 0;
  resumptions = 0;
  /** Sockets upgraded and told nothing within FIRST_WORD_MS (the client gave up on them). */
  silent = 0;

  get pairings(): number {
    return this.rooms.size;
  }

  get violationCount(): number {
    return Object.values(this.byInvariant).reduce((a, b) => a + b, 0);
  }

  bad(invariant: Invariant, what: string): void {
    this.byInvariant[invariant]++;
    this.mine.push(what);
    if (this.violations.length < VIOLATIONS_KEPT) this.violations.push(what);
  }

  /** Check one session's own log; returns the violations found in it. */
  add(s: ChaosSession): string[] {
    this.mine = [];
    this.sessions++;
    let room: string | undefined;
    let peer: string | undefined;
    let unsure = false;
    const cuts: number[] = [];
    let lastEnd = -Infinity;
    const lastChat = new Map<string, number>();
    const lastSignal = new Map<string, number>();
    for (const e of s.log) {
      if (e.kind === 'lost' || e.kind === 'gone' || e.kind === 'silent') cuts.push(e.t);
      if (e.kind === 'resumed') this.resumptions++;
      if (e.kind === 'silent') this.silent++;
      if (
        (e.kind === 'recv' && e.ch === 'm' && ['peer-disconnected', 'idle', 'waiting'].includes(e.msg.event)) ||
        (e.kind === 'send' && ['next', 'stop', 'close'].includes(e.event)) ||
        e.kind === 'gone' ||
        e.kind === 'lost'
      ) {
        lastEnd = Math.max(lastEnd, e.t);
      }
      // A room ends for the client when it is told (waiting, idle, peer-disconnected), not when it asks:
      // what the partner sent before the server saw our `next` still arrives.
      // A lost socket loses what was on its way; a resumption tells the state afresh
      // (after the chat kept meanwhile, which belongs to the room we were in).
      if (e.kind === 'lost') unsure = true;
      if (e.kind !== 'recv') continue;
      const m = e.msg;
      if (e.ch === 's') {
        if (m.event === 'signal') {
          this.signals++;
          const data = m.data as { room: string; seq: number };
          const key = `${String(m.from)}|${data.room}`;
          if (data.room !== m.room_code) this.bad('relay', `${s.id}: signal for ${String(m.room_code)} carries room ${data.room}`);
          if ((lastSignal.get(key) ?? -1) >= data.seq) this.bad('relay', `${s.id}: signal ${data.seq} from ${String(m.from)} after ${lastSignal.get(key)}`);
          lastSignal.set(key, data.seq);
        }
        continue;
      }
      switch (m.event) {
        case 'matched': {
          const r = String(m.room_code);
          if (room !== undefined && room !== r && !unsure) this.bad('oneRoom', `${s.id}: matched ${r} while in ${room}`);
          unsure = false;
          room = r;
          peer = String(m.peer);
          let members = this.rooms.get(r);
          if (!members) this.rooms.set(r, (members = new Map()));
          const prev = members.get(s.id);
          if (prev && (prev.peer !== peer || prev.initiator !== m.initiator)) this.bad('oneRoom', `${s.id}: room ${r} told twice, differently`);
          if (!prev) members.set(s.id, { peer, initiator: m.initiator === true, t: e.t });
          break;
        }
        case 'waiting':
        case 'idle':
        case 'peer-disconnected':
          room = undefined;
          unsure = false;
          break;
        case 'error':
          // The server could not say whether our last request ran (Redis went away under it):
          // as after a lost socket, we know where we stand once told afresh.
          if (m.code === 'rate-limited' && String(m.message).includes('temporarily unavailable')) unsure = true;
          break;
        case 'chat': {
          this.chats++;
          const [sender, r, seq] = String(m.message).split('|');
          if (sender !== m.sender) this.bad('relay', `${s.id}: chat from ${String(m.sender)} written by ${sender}`);
          // The room in the text is the sender's own view when it typed (it may have just sent
          // `next`); what counts is that the server relayed it to the partner it had then.
          // After a lost socket, the chat kept for us may come from a room whose `matched` went down
          // with that socket (neither side may have seen it): only the server knew that partner then.
          if (!unsure && (room === undefined || m.sender !== peer)) {
            this.bad('relay', `${s.id}: chat from ${String(m.sender)} (written in ${r}), but in ${room} with ${peer}`);
          }
          const key = `${sender}|${r}`;
          if ((lastChat.get(key) ?? -1) >= Number(seq)) this.bad('relay', `${s.id}: chat ${seq} from ${sender} after ${lastChat.get(key)}`);
          lastChat.set(key, Number(seq));
          break;
        }
      }
    }
    if (s.id) this.seen.set(s.id, { cuts, lastEnd });
    return this.mine;
  }

  /**
   * The room invariants, once every session is added. `disruptions` are the
   * times of crashes, restarts and stalls; a one-sided room within `windowMs` of
   * one, or of a cut (a drop, a leave) of one of its members, is excused.
   */
  finish(disruptions: number[], windowMs: number): Findings {
    // A partner no client knows is a session whose client gave up before it heard its id (an upgrade
    // that timed out on the client side): the server paired a socket that was already on its way out.
    const disrupted = (id: string, t: number): boolean => {
      const p = this.seen.get(id);
      return p === undefined || disruptions.some((d) => Math.abs(d - t) <= windowMs) || p.cuts.some((c) => Math.abs(c - t) <= windowMs);
    };
    let oneSided = 0;
    for (const [r, members] of this.rooms) {
      if (members.size > 2) this.bad('roomOfTwo', `room ${r} has ${members.size} members: ${[...members.keys()].join(', ')}`);
      const [first, second] = [...members.entries()];
      if (!first) continue;
      if (second) {
        const [[a, ma], [b, mb]] = [first, second];
        if (ma.peer !== b || mb.peer !== a) this.bad('roomOfTwo', `room ${r}: ${a} names ${ma.peer}, ${b} names ${mb.peer}`);
        if (ma.initiator === mb.initiator) this.bad('roomOfTwo', `room ${r}: initiator ${ma.initiator} on both sides`);
        continue;
      }
      const [id, info] = first;
      oneSided++;
      if (!disrupted(info.peer, info.t) && !disrupted(id, info.t)) {
        // How far off the nearest cut of the partner was (a long run keeps no logs to look it up later).
        const gaps = (this.seen.get(info.peer)?.cuts ?? []).map((c) => c - info.t);
        const nearest = gaps.reduce((a, g) => (Math.abs(g) < Math.abs(a) ? g : a), Infinity);
        const cut = Number.isFinite(nearest) ? `; the partner's nearest cut ${(nearest / 1000).toFixed(1)} s from it` : '';
        this.bad('answered', `room ${r}: ${id} matched with ${info.peer}, who never heard of it and was not cut off${cut}`);
      }
      // The one that saw it must not be left in it: the room ended for it, or it left.
      if ((this.seen.get(id)?.lastEnd ?? -Infinity) < info.t) this.bad('answered', `room ${r}: ${id} stayed in a room its partner ${info.peer} never joined`);
    }
    return {
      violations: [...this.violations],
      byInvariant: { ...this.byInvariant },
      sessions: this.sessions,
      rooms: this.rooms.size,
      oneSided,
      chats: this.chats,
      signals: this.signals,
      resumptions: this.resumptions,
      silent: this.silent,
    };
  }
}

/** Every session at once: see Checker. */
export function check(sessions: ChaosSession[], disruptions: number[], windowMs: number): Findings {
  const checker = new Checker();
  for (const s of sessions) checker.add(s);
  return checker.finish(disruptions, windowMs);
}
