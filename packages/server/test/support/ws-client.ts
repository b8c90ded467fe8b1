// A WebSocket client for wire tests: every message the server sends is queued,
// checked against the protocol schemas, and awaited with a bounded wait whose
// failure says what was expected and what came instead.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import WebSocket from 'ws';
import type { z } from 'zod';
import {
  ChatEvent,
  ErrorEvent,
  IdleEvent,
  MatchedEvent,
  MatchingServerMessage,
  PeerDisconnectedEvent,
  PeerJoinedEvent,
  SessionEvent,
  SignalEvent,
  SignallingServerMessage,
  TypingEvent,
  VerifiedEvent,
  WaitingEvent,
} from '@dyad/protocol';

/** How long any single expected message may take unless a test says otherwise. */
export const WAIT_MS = 2_000;
const OPEN_TIMEOUT_MS = 5_000;
const CLOSE_TIMEOUT_MS = 2_000;
/** Time for the server to see a dropped TCP connection on loopback. */
const DROP_NOTICE_MS = 100;

export type Channel = 'matching' | 'signalling';

/** What each event looks like once validated, keyed by event name. */
export interface Events {
  waiting: z.infer<typeof WaitingEvent>;
  idle: z.infer<typeof IdleEvent>;
  session: z.infer<typeof SessionEvent>;
  matched: z.infer<typeof MatchedEvent>;
  chat: z.infer<typeof ChatEvent>;
  typing: z.infer<typeof TypingEvent>;
  'peer-disconnected': z.infer<typeof PeerDisconnectedEvent>;
  error: z.infer<typeof ErrorEvent>;
  verified: z.infer<typeof VerifiedEvent>;
  'peer-joined': z.infer<typeof PeerJoinedEvent>;
  signal: z.infer<typeof SignalEvent>;
}
export type EventName = keyof Events;
export type AnyEvent = Events[EventName];

const KNOWN: Record<Channel, ReadonlySet<string>> = {
  matching: new Set(['waiting', 'idle', 'session', 'matched', 'chat', 'typing', 'peer-disconnected', 'error']),
  signalling: new Set(['verified', 'peer-joined', 'signal', 'peer-disconnected', 'error']),
};
const SCHEMA: Record<Channel, z.ZodType> = { matching: MatchingServerMessage, signalling: SignallingServerMessage };

export interface Closed {
  code: number;
  reason: string;
}

type Item = { msg: AnyEvent } | { violation: string };

export type Attempt =
  | { kind: 'open'; client: WireClient }
  | { kind: 'refused'; status: number; reason: string; headers: IncomingHttpHeaders; body: string };

export interface ConnectOptions {
  channel: Channel;
  /** Names the socket in failure messages, e.g. "alice/matching". */
  label?: string;
  origin?: string;
  headers?: Record<string, string>;
  /** The address to connect from (one routed to loopback: e2e/ipv6.e2e.test.ts); default: the system's choice. */
  localAddress?: string;
  /** How long an expected message or close may take unless a call says otherwise (default WAIT_MS). */
  waitMs?: number;
  /**
   * The server speaks another protocol on this socket (a legacy one,
   * docs/LEGACY.md): every message must pass this schema instead of Dyad's,
   * and is queued as it came (test/support/legacy.ts reads them).
   */
  schema?: z.ZodType;
}

/** Hides tokens in URLs shown in failure messages. */
export const redact = (url: string): string => url.replace(/token=[^&]*/g, 'token=…');

const all = new Set<WireClient>();

export class WireClient {
  /** Every validated message received, in order, consumed or not. */
  readonly history: AnyEvent[] = [];
  /** Messages with event names the contract does not define: allowed, and skipped. */
  readonly extensions: unknown[] = [];
  readonly closed: Promise<Closed>;
  private readonly queue: Item[] = [];
  private wake: (() => void) | undefined;
  private closeInfo: Closed | undefined;

  private constructor(
    readonly ws: WebSocket,
    readonly channel: Channel,
    readonly label: string,
    readonly waitMs: number,
    private readonly schema?: z.ZodType,
  ) {
    all.add(this);
    ws.on('error', () => {
      // Errors after open surface as a close (1006); nothing to add here.
    });
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        all.delete(this);
        this.poke();
        resolve(this.closeInfo);
      });
    });
  }

  /** Opens a socket; an HTTP refusal of the upgrade is a result, not an error. */
  static connect(url: string, opts: ConnectOptions): Promise<Attempt> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.origin !== undefined) headers.origin = opts.origin;
    const ws = new WebSocket(url, { headers, handshakeTimeout: OPEN_TIMEOUT_MS, localAddress: opts.localAddress });
    const client = new WireClient(ws, opts.channel, opts.label ?? `${opts.channel} ${redact(url)}`, opts.waitMs ?? WAIT_MS, opts.schema);
    return new Promise<Attempt>((resolve, reject) => {
      ws.once('open', () => resolve({ kind: 'open', client }));
      ws.once('unexpected-response', (req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({
            kind: 'refused',
            status: res.statusCode ?? 0,
            reason: res.statusMessage ?? '',
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          });
          req.destroy();
        });
        res.on('error', () => req.destroy());
      });
      ws.once('error', (err) => reject(new Error(`${client.label}: could not connect: ${err.message}`)));
    });
  }

  /** Opens a socket that must be accepted. */
  static async open(url: string, opts: ConnectOptions): Promise<WireClient> {
    const attempt = await WireClient.connect(url, opts);
    if (attempt.kind === 'refused') {
      assert.fail(`${opts.label ?? redact(url)}: upgrade refused with HTTP ${attempt.status} ${attempt.body.slice(0, 200)}`);
    }
    return attempt.client;
  }

  /** Closes every socket still open (code 1000), so the next test starts from an empty pool. */
  static async closeAll(): Promise<void> {
    await Promise.all([...all].map((c) => c.close(1000)));
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (isBinary) {
      this.push({ violation: 'a binary frame (every message must be a JSON text frame)' });
      return;
    }
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.push({ violation: `a frame that is not JSON: ${text.slice(0, 200)}` });
      return;
    }
    const event = (value as { event?: unknown } | null)?.event;
    if (typeof event !== 'string') {
      this.push({ violation: `a message without a string "event": ${text.slice(0, 200)}` });
      return;
    }
    if (this.schema) {
      const parsed = this.schema.safeParse(value);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        this.push({ violation: `a "${event}" message that breaks the schema (${issue?.path.join('.')}: ${issue?.message}): ${text.slice(0, 300)}` });
        return;
      }
      this.history.push(value as AnyEvent);
      this.push({ msg: value as AnyEvent });
      return;
    }
    if (!KNOWN[this.channel].has(event)) {
      // The contract lets servers add event names that clients ignore.
      this.extensions.push(value);
      return;
    }
    const parsed = SCHEMA[this.channel].safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.push({
        violation: `a "${event}" message that breaks the schema (${issue?.path.join('.')}: ${issue?.message}): ${text.slice(0, 300)}`,
      });
      return;
    }
    // Keep the message as sent (extra fields included), validated above.
    const msg = value as AnyEvent;
    const previous = this.history.at(-1);
    this.history.push(msg);
    // `peer-disconnected` is what tells a session it is now idle; a server may
    // add an explicit `idle` after it, which no client is harmed by. Tests that
    // care read `history`.
    if (msg.event === 'idle' && previous?.event === 'peer-disconnected') return;
    this.push({ msg });
  }

  private push(item: Item): void {
    this.queue.push(item);
    this.poke();
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Sends an object as JSON, or a string / Buffer as is (a Buffer goes as a binary frame). */
  send(data: object | string | Buffer): void {
    assert.ok(this.isOpen, `${this.label}: cannot send, the socket is ${this.closeInfo ? `closed (${this.closeInfo.code})` : 'not open'}`);
    if (Buffer.isBuffer(data)) this.ws.send(data, { binary: true });
    else this.ws.send(typeof data === 'string' ? data : JSON.stringify(data));
  }

  /** Resolves with the next message, or fails after `timeoutMs` naming `what` was expected. */
  async next(what = 'a message', timeoutMs = this.waitMs): Promise<AnyEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const item = this.queue.shift();
      if (item) {
        if ('violation' in item) assert.fail(`${this.label}: expected ${what}, got ${item.violation}`);
        return item.msg;
      }
      if (this.closeInfo) {
        assert.fail(`${this.label}: expected ${what}, but the socket closed (code ${this.closeInfo.code} ${this.closeInfo.reason})`);
      }
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`${this.label}: expected ${what} within ${timeoutMs} ms, got nothing`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /**
   * The next message must be `event`; messages whose event is in `skip` are
   * passed over first (for server messages the contract allows but does not
   * require), or any other message with `skip: 'any'`.
   */
  async expect<E extends EventName>(
    event: E,
    opts: { timeoutMs?: number; skip?: readonly EventName[] | 'any'; what?: string } = {},
  ): Promise<Events[E]> {
    const skip = opts.skip;
    const msg = await this.waitFor(
      (m) => m.event === event || (skip !== 'any' && !skip?.includes(m.event as EventName)),
      opts.what ?? `"${event}"`,
      opts.timeoutMs,
    );
    if (msg.event !== event) assert.fail(`${this.label}: expected ${opts.what ?? `"${event}"`}, got ${JSON.stringify(redactMsg(msg))}`);
    return msg as Events[E];
  }

  /** The first message that satisfies `pred`; the messages before it are consumed and passed over. */
  async waitFor(pred: (msg: AnyEvent) => boolean, what: string, timeoutMs = this.waitMs): Promise<AnyEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msg = await this.next(what, Math.max(1, deadline - Date.now()));
      if (pred(msg)) return msg;
    }
  }

  /** The next message must be an `error` with this code. */
  async expectError(
    code: Events['error']['code'],
    opts: { timeoutMs?: number; what?: string; skip?: readonly EventName[] } = {},
  ): Promise<Events['error']> {
    const what = opts.what ?? `error "${code}"`;
    const msg = await this.expect('error', { ...opts, what });
    assert.equal(msg.code, code, `${this.label}: expected ${what}, got ${JSON.stringify(msg)}`);
    assert.equal(typeof msg.message, 'string');
    return msg;
  }

  /** Nothing (apart from events in `skip`) arrives within `ms`, and the socket stays open. */
  async expectSilence(ms: number, opts: { skip?: readonly EventName[]; why?: string } = {}): Promise<void> {
    const got = await this.drain(ms);
    const unexpected = got.filter((m) => !opts.skip?.includes(m.event as EventName));
    assert.deepEqual(
      unexpected.map(redactMsg),
      [],
      `${this.label}: expected no message${opts.why ? ` (${opts.why})` : ''} for ${ms} ms`,
    );
    assert.ok(!this.closeInfo, `${this.label}: expected the socket to stay open, it closed with ${this.closeInfo?.code}`);
  }

  /** Waits `ms` and returns (consuming) everything that arrived meanwhile. */
  async drain(ms: number): Promise<AnyEvent[]> {
    await sleep(ms);
    const out: AnyEvent[] = [];
    while (this.queue.length > 0) {
      const item = this.queue.shift();
      if (!item) break;
      if ('violation' in item) assert.fail(`${this.label}: got ${item.violation}`);
      out.push(item.msg);
    }
    return out;
  }

  /**
   * The socket must be closed by the server with one of `codes` within the
   * wait; returns the close and the messages that came before it.
   */
  async expectClose(codes: number | readonly number[], timeoutMs = this.waitMs, what?: string): Promise<Closed & { before: AnyEvent[] }> {
    const allowed = typeof codes === 'number' ? [codes] : codes;
    const label = what ?? `close ${allowed.join(' or ')}`;
    const closed = await within(this.closed, timeoutMs);
    const before: AnyEvent[] = [];
    for (const item of this.queue.splice(0)) if ('msg' in item) before.push(item.msg);
    if (!closed) assert.fail(`${this.label}: expected ${label} within ${timeoutMs} ms, the socket is still open`);
    assert.ok(
      allowed.includes(closed.code),
      `${this.label}: expected ${label}, got close ${closed.code} "${closed.reason}" after ${JSON.stringify(before.map(redactMsg))}`,
    );
    return { ...closed, before };
  }

  /** Sends a message and a close (code 1000) in one write: the server reads the close while the message is still queued. */
  async sendThenClose(data: object): Promise<Closed> {
    const socket = (this.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    socket?.cork();
    this.send(data);
    const closing = this.close(1000);
    socket?.uncork();
    return closing;
  }

  /** Client close with a code (1000 by default; `null` sends no code, i.e. 1005 at the server). */
  async close(code: number | null = 1000): Promise<Closed> {
    if (this.closeInfo) return this.closeInfo;
    if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
      return this.closed;
    }
    if (code === null) this.ws.close();
    else this.ws.close(code);
    const done = await within(this.closed, CLOSE_TIMEOUT_MS);
    if (done) return done;
    this.ws.terminate();
    return this.closed;
  }

  /**
   * Drops the TCP connection without a close frame: the server sees 1006 and
   * starts the grace period. Waits a moment more, because until the server has
   * noticed, whatever it relays goes into the dead connection, as it would on a
   * real network.
   */
  async drop(noticeMs = DROP_NOTICE_MS): Promise<void> {
    this.ws.terminate();
    await this.closed;
    await sleep(noticeMs);
  }
}

/**
 * A WebSocket upgrade request as raw text, for tests that write it on a
 * socket of their own (to reset it at once, or to follow it with frames in
 * the same write). `target`: the URL (its path, query and host are used).
 */
export function upgradeRequest(target: string, headers: Record<string, string> = {}): string {
  const u = new URL(target);
  const lines = [
    `GET ${u.pathname}${u.search} HTTP/1.1`,
    `Host: ${u.host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What `promise` resolves with if it does within `ms`, else undefined. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns something other than undefined (a throw counts as undefined); fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 5_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`expected ${what} within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/** Messages as shown in failure output, with tokens hidden. */
export function redactMsg(msg: unknown): unknown {
  if (msg && typeof msg === 'object' && 'token' in msg) return { ...msg, token: '…' };
  return msg;
}
