// One WebSocket of a session, on either service: rate limits, edge
// validation, in-order handling, and the close rules of the contract.
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { Writable, type Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { CloseCode, parseMessage, type ErrorCode } from '@dyad/protocol';
import type { z } from 'zod';
import type { Logger } from 'pino';
import type { Connection, Hub } from '../core/hub.js';
import type { AttachResult, Channel, ChatSeen, Effects, Store } from '../store/store.js';
import type { Metrics } from '../ops/metrics.js';
import { newConnId } from '../core/ids.js';
import { PaceBook, type Pace } from './pace.js';
import { requestUrl, type Context, type Refusal } from './context.js';
import { originAllowed } from './client.js';
import { handshakeProblem, type HandshakeProblem } from './handshake.js';
import { BACKLOG_FLOOR, CORKED_BYTES_MAX, heldBytes, SEND_WRITE_COST_BYTES, type SendBacklog } from './backlog.js';
import { holdFewReads, ownBytes, ownCopy } from './held.js';
import type { WaitingMessages } from './waiting.js';
import { onceEvery } from '../ops/once-every.js';

export interface SocketLimits {
  maxFrameBytes: number;
  maxMessageFragments: number;
  messageRatePerSec: number;
  messageBurst: number;
  messageFloodPerSec: number;
  socketSendBufferBytes: number;
  pingIntervalMs: number;
}

/**
 * Where open sockets are counted per address: the store, so that both
 * services (and, on Redis, every process) count together.
 */
export interface SocketCount {
  /** Take a place for a socket from `addr`; false when the address has none left. */
  open(addr: string): Promise<boolean>;
  /** Give back a place taken by `open`. */
  close(addr: string): Promise<void>;
}

/** The store's count of open sockets, at most `max` per address (MAX_SOCKETS_PER_ADDR). */
export const socketCount = (store: Pick<Store, 'admitSocket' | 'releaseSocket'>, max: number): SocketCount => ({
  open: (addr) => store.admitSocket(addr, max),
  close: (addr) => store.releaseSocket(addr),
});

/** A client refused for holding too many sockets may try again after this long. */
const SOCKET_RETRY_AFTER_SEC = 5;


/** What a close frame without a code means (RFC 6455 section 7.1.5). */
const NO_STATUS_CODE = 1005;

/** Close codes after which the client has left; any other end starts the grace period. */
const CLEAN_CLOSES: ReadonlySet<number> = new Set([CloseCode.normal, NO_STATUS_CODE]);

/**
 * A `ws` socket that emits `closing` (with the close code) the moment a close
 * begins: when the client's close frame arrives (ws answers it by calling
 * close() at once) or when we close it. `close` itself waits for the TCP
 * connection to end, and a session that has left must not be paired meanwhile.
 */
class EagerCloseWebSocket extends WebSocket {
  private closingTold = false;
  override close(code?: number, reason?: string | Buffer): void {
    if (!this.closingTold) {
      this.closingTold = true;
      this.emit('closing', code ?? NO_STATUS_CODE);
    }
    super.close(code, reason);
  }
}

/** What `ws` holds of a message still coming in: the unread bytes, a frame's mask until its payload is whole, and the fragments of a message not yet whole. */
interface ReceiverHolding {
  _buffers?: Buffer[];
  _mask?: Buffer;
  _fragments?: Buffer[];
}

/**
 * `ws` holds what it has of a message still coming in (the start of a frame,
 * the mask of a frame whose payload is not whole, the fragments of a message
 * not yet whole) as views into the chunks the
 * socket read, commonly 64 KiB each. One byte of a fragment at the front of a
 * read otherwise full of pongs (which ws reads and drops) kept the whole read:
 * MAX_FRAME_BYTES, which counts payload, let one socket hold 1 GiB over 16,384
 * fragments (fourth review, finding F4). And a frame's bytes sent one per
 * read were held as that many buffers of some 200 bytes each: 3 MB for one
 * frame of 16 KiB. Run after each read: any such view much smaller than its
 * buffer becomes a copy of its own bytes, and many reads of a frame not yet
 * whole become one buffer (http/held.ts), so a socket holds about what it
 * was sent of the message (at most MAX_FRAME_BYTES in MAX_MESSAGE_FRAGMENTS
 * frames). It reads ws's receiver's own fields, which have these names in
 * every ws 8 release; `frames-held.test.ts` fails if they stop doing so.
 */
function holdOwnBytes(ws: WebSocket): void {
  const receiver = (ws as unknown as { _receiver?: ReceiverHolding })._receiver;
  if (!receiver) return;
  if (receiver._buffers) holdFewReads(receiver._buffers);
  if (receiver._mask) receiver._mask = ownCopy(receiver._mask);
  if (receiver._fragments) ownBytes(receiver._fragments);
}

/**
 * ws ends a socket's receiver when the client's side ends, and again when the
 * connection closes, and ends the TCP connection on the close handshake and
 * again when the client's side ends: on every clean close, each second
 * `end()` made Node build an ERR_STREAM_ALREADY_FINISHED error, stack trace
 * and all, that nobody sees (about 5 µs each, 1.8% of a Redis arrival's
 * profile). Their `end` then does nothing once they have ended; a call with
 * arguments (data or a callback) still goes through.
 */
function endOnce(this: Writable, ...args: unknown[]): Writable {
  if (args.length === 0 && this.writableEnded) return this;
  return ((Object.getPrototypeOf(this) as Writable).end as (...a: unknown[]) => Writable).apply(this, args);
}

/** Give `ws`'s receiver and its connection an `end` that a second call leaves alone (endOnce). */
export function endOnceEach(ws: WebSocket, transport: Duplex): void {
  const receiver = (ws as unknown as { _receiver?: Writable })._receiver;
  if (receiver) receiver.end = endOnce as Writable['end'];
  transport.end = endOnce as Duplex['end'];
}

/** A text message's characters (ws hands a message over as one or more Buffers). */
const messageText = (data: RawData): string => (Array.isArray(data) ? Buffer.concat(data).toString() : data.toString());

/**
 * Runs one socket's tasks strictly one after another, in the order given:
 * a store call of a message must finish before the next message's starts.
 */
class SerialQueue {
  private readonly tasks: Array<() => Promise<void>> = [];
  private running = false;

  constructor(private readonly failed: (err: unknown) => void) {}

  push(task: () => Promise<void>): void {
    this.tasks.push(task);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    for (let task = this.tasks.shift(); task; task = this.tasks.shift()) {
      try {
        await task();
      } catch (err) {
        this.failed(err);
      }
    }
    this.running = false;
  }
}

export const errorFrame = (code: ErrorCode, message: string): string => JSON.stringify({ event: 'error', code, message });

/** Answer an upgrade request with a plain HTTP response (and any `headers` of its own, names and values from this code) and drop the socket. */
export function refuseUpgrade(socket: Duplex, status: number, body: object, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  const reason = STATUS_CODES[status] ?? 'Error';
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${extra}Connection: close\r\n\r\n${text}`,
  );
}

/** Refuse an upgrade whose handshake cannot succeed (handshakeProblem), with the contract's JSON error. */
export function refuseHandshake(socket: Duplex, problem: HandshakeProblem): void {
  refuseUpgrade(socket, problem.status, { status: 'error', message: problem.message }, problem.headers);
}

/**
 * The checks every session socket's upgrade passes before its service looks
 * at it: the Origin, the request target, the path (`/ws/{id}`, or `/ws` as
 * well where `bare`) and the handshake itself. A request that fails one is
 * refused here (undefined); else its URL and the id of its path ('' for `/ws`).
 */
export function upgradeTarget(req: IncomingMessage, socket: Duplex, allowedOrigins: readonly string[], bare: boolean): { url: URL; id: string } | undefined {
  if (!originAllowed(req, allowedOrigins)) return void refuseUpgrade(socket, 403, { status: 'error', message: 'origin not allowed' });
  const url = requestUrl(req);
  if (!url) return void refuseUpgrade(socket, 400, { status: 'error', message: 'not a request target' });
  const id = /^\/ws\/([^/]+)$/.exec(url.pathname)?.[1] ?? '';
  if (!id && !(bare && url.pathname === '/ws')) return void refuseUpgrade(socket, 404, { status: 'error', message: 'not found' });
  const bad = handshakeProblem(req);
  if (bad) return void refuseHandshake(socket, bad);
  return { url, id };
}

/** What becomes of one frame at the edge, before it is read. */
type Verdict = 'pass' | 'limited' | 'address-limited' | 'address-bytes-limited' | 'flood';

/** How long a socket whose address is past MESSAGE_BYTES_PER_ADDR_PER_SEC is not read: until the bytes are there again, within these. */
const BYTES_PAUSE_MIN_MS = 50;
const BYTES_PAUSE_MAX_MS = 1_000;

/** The bytes of a message as ws hands it over. */
const rawBytes = (data: RawData): number => (Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength);

export interface SessionSocketHandlers<M> {
  /** Handle one valid message; returns the store's effects. */
  message(msg: M, conn: Connection): Promise<Effects>;
  /** The socket ended: `left` for a clean close. */
  closed(conn: Connection, left: boolean): Promise<Effects>;
  /** Tell the store the socket is open (it runs before any message of the socket is handled); `seen`: ServeOptions.chatSeen. */
  attach(conn: Connection, token: string, seen?: ChatSeen): Promise<AttachResult>;
  /**
   * The socket ended, however: forget what the edge keeps for it. Runs once;
   * `closed` follows unless `flooded` (a flood ends the session instead).
   */
  released?(conn: Connection, flooded: boolean): void;
}

/** How one socket is served beyond the defaults (the legacy protocols' edges use these). */
export interface ServeOptions {
  /** The socket's id (default: a fresh random one). */
  id?: string;
  /**
   * The socket was opened in the store already, held by this connection
   * (`hold`): what it holds is sent now, and `attach` is not called.
   */
  held?: HeldConnection;
  /** A resuming matching socket's `chat_seen`: the last chat line its client has. */
  chatSeen?: ChatSeen;
  /**
   * What the client gets for each message this socket is sent, Dyad's text
   * in, the client's own protocol out; undefined drops it. Default: as is.
   */
  render?: (text: string) => string | undefined;
}

/** Most messages a held socket takes before its upgrade is done (more: it counts as gone, as a socket past its send buffer). */
const HELD_MESSAGES_MAX = 64;

/**
 * A socket whose store transition runs before its upgrade is done (a one-trip
 * start registers and opens it in one call): the hub's connection from the
 * start, holding what it is sent until `serve` takes it over, then passing
 * everything on to the served socket.
 */
export class HeldConnection implements Connection {
  /** The session, once the store has made it ('' until then). */
  session = '';
  private held: string[] = [];
  private closing: { code: number; reason: string } | undefined;
  private served: Connection | undefined;

  constructor(
    readonly id: string,
    readonly addr: string,
    readonly channel: Channel,
  ) {}

  isOpen(): boolean {
    return this.served ? this.served.isOpen() : this.closing === undefined && this.held.length < HELD_MESSAGES_MAX;
  }

  send(text: string): void {
    if (this.served) this.served.send(text);
    else this.held.push(text);
  }

  close(code: number, reason: string): void {
    if (this.served) this.served.close(code, reason);
    else this.closing ??= { code, reason };
  }

  /** The upgrade is done: what was held goes to `conn`, in order, and so does everything from now on. */
  serveWith(conn: Connection): void {
    this.served = conn;
    const held = this.held;
    this.held = [];
    for (const text of held) conn.send(text);
    if (this.closing) conn.close(this.closing.code, this.closing.reason);
  }
}

/** A served socket: the hub's connection, and a way to write to the client past `render`. */
export interface ServedConnection extends Connection {
  /** Write text as it is, after what is already queued for the client. */
  write(text: string): void;
}

/**
 * The WebSocket side of one service: a `ws` server without its own listener,
 * a ping sweep, and the per-socket message pipeline.
 */
export class SocketEdge<S extends z.ZodType> {
  readonly wss: WebSocketServer;
  private readonly received: { inc(): void };
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly flooded = new WeakSet<WebSocket>();
  /** Sockets whose drain and close take them out of the send backlog. */
  private readonly drainWatched = new WeakSet<WebSocket>();
  private readonly sweep: NodeJS.Timeout;
  /** The TCP socket under each WebSocket, for write coalescing. */
  private readonly transports = new WeakMap<WebSocket, Duplex>();
  /** Sockets corked in this turn of the event loop, uncorked together at its end. */
  private corked = new Set<Duplex>();
  /** What the writes held by the cork cost, as heldBytes counts them (CORKED_BYTES_MAX). */
  private corkedBytes = 0;
  /**
   * Frames of each session on this channel, whichever of its sockets sent
   * them: a reopened socket carries on with the same bucket (finding W2).
   */
  private readonly paces: PaceBook;
  private readonly addressPaces: PaceBook;
  private readonly addressBytes: PaceBook;
  private readonly backlog: SendBacklog;
  private readonly waitingMessages: WaitingMessages;

  constructor(
    private readonly channel: Channel,
    private readonly schema: S,
    private readonly hub: Hub,
    private readonly limits: SocketLimits,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly handlers: SessionSocketHandlers<z.infer<S>>,
    private readonly sockets: SocketCount,
    /**
     * What the edges of the process share: the frames of each client address
     * over all its sockets of both services, and the bytes held for clients
     * that do not read, and the messages waiting to be handled.
     */
    shared: Pick<Context, 'addressPaces' | 'addressBytes' | 'sendBacklog' | 'waitingMessages'>,
  ) {
    this.addressPaces = shared.addressPaces;
    this.addressBytes = shared.addressBytes;
    this.backlog = shared.sendBacklog;
    this.waitingMessages = shared.waitingMessages;
    this.paces = new PaceBook(limits.messageRatePerSec, limits.messageBurst);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxFrameBytes,
      maxFragments: limits.maxMessageFragments,
      perMessageDeflate: false,
      clientTracking: true,
      WebSocket: EagerCloseWebSocket,
    });
    this.received = metrics.messages.labels({ channel });
    // A socket that misses a pong is terminated; its grace period then starts as for any drop.
    this.sweep = setInterval(() => {
      // And the paces of sessions gone quiet go, on a quiet process too (sixth review, S2; main.ts sweeps the per-address ones).
      this.paces.sweep(performance.now());
      for (const ws of this.wss.clients) {
        if (this.alive.get(ws) === false) {
          ws.terminate();
          continue;
        }
        this.alive.set(ws, false);
        ws.ping();
      }
    }, limits.pingIntervalMs);
    this.sweep.unref();
  }

  /**
   * Count a new socket against its address's limit (MAX_SOCKETS_PER_ADDR,
   * both services together) until the connection closes, whatever happens
   * to the upgrade. Returns a refusal, or undefined when admitted.
   */
  async admit(addr: string, socket: Duplex): Promise<Refusal | undefined> {
    if (!(await this.sockets.open(addr))) return this.tooManySockets();
    this.counted(addr, socket);
    return undefined;
  }

  /** The refusal of a socket from an address with MAX_SOCKETS_PER_ADDR open already, counted. */
  tooManySockets(): Refusal {
    this.metrics.rejected.inc({ code: 'too-many-sockets' });
    return { status: 429, body: { status: 'error', message: 'too many open sockets from this address', retry_after: SOCKET_RETRY_AFTER_SEC } };
  }

  /**
   * A socket from `addr` has been counted (by admit, or by the store with a
   * one-trip start's registration): its place is given back when the connection closes.
   */
  counted(addr: string, socket: Duplex): void {
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.sockets.close(addr).catch((err: unknown) => this.log.warn({ err }, 'socket count release failed'));
    };
    // A client gone while its place was taken has had its 'close' already: give the place back now.
    if (socket.closed) release();
    else socket.once('close', release);
  }

  /** Complete the upgrade, then hand the open socket to `opened`. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, opened: (ws: WebSocket) => void): void {
    // The 101 response and the first messages of this turn (a one-trip start's
    // session, waiting, even matched) leave in one write.
    this.coalesce(socket);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.transports.set(ws, socket);
      endOnceEach(ws, socket);
      // After ws has read each chunk (its listener came first).
      socket.on('data', () => holdOwnBytes(ws));
      this.alive.set(ws, true);
      ws.on('pong', () => this.alive.set(ws, true));
      opened(ws);
    });
  }

  /**
   * Wire an open socket of `session` (opened with `token`) into the hub. The
   * handlers' `attach` tells the store first; a flood ends the session by its token.
   */
  serve(ws: WebSocket, session: string, addr: string, token: string, opts: ServeOptions = {}): ServedConnection {
    const connId = opts.held?.id ?? opts.id ?? newConnId();
    const render = opts.render;
    // Everything this socket is sent, by the hub or by this edge (refusals), goes through `render`.
    const send = render
      ? (text: string): void => {
          const out = render(text);
          if (out !== undefined) this.write(ws, addr, out);
        }
      : (text: string): void => this.write(ws, addr, text);
    const conn: ServedConnection = {
      id: connId,
      session,
      addr,
      channel: this.channel,
      // A socket past its send buffer cap is not open: what comes for it is undelivered (kept for an absent member).
      isOpen: () => this.writable(ws, addr),
      send,
      write: (text) => this.write(ws, addr, text),
      close: (code, reason) => ws.close(code, reason),
    };
    this.hub.add(conn);
    // In the same turn as the hub's switch to the served socket, so that nothing it is sent overtakes what was held.
    opts.held?.serveWith(conn);
    // Messages of one socket are handled strictly in the order received, the close last.
    const queue = new SerialQueue((err) => {
      this.log.error({ err, channel: this.channel }, 'socket handler failed');
      // The store did not answer (Redis away or stalled): say so instead of leaving the client waiting.
      send(errorFrame('rate-limited', 'service temporarily unavailable, try again shortly'));
    });
    const enqueue = (task: () => Promise<void>): void => queue.push(task);
    const opened = performance.now();
    const pace = this.paces.open(session, opened);
    const addrPace = this.addressPaces.open(addr, opened);
    const addrBytes = this.addressBytes.open(addr, opened);
    // A held socket was opened in the store with its registration already.
    if (!opts.held) {
      enqueue(async () => {
        const attached = await this.handlers.attach(conn, token, opts.chatSeen);
        if (attached.ok) return this.hub.run(attached.effects);
        // The session ended between the token check and the upgrade.
        send(errorFrame('unauthorized', 'session ended'));
        ws.close(CloseCode.unauthorized, 'unauthorized');
      });
    }
    // Messages passed and not yet handled: they wait behind the store's
    // answers (a legacy socket's attach waits for its registration).
    let waiting = 0;
    let backlogged = false;
    ws.on('message', (data: RawData, isBinary: boolean) => {
      // A flooded or backlogged socket is closing: what it still sends is not read.
      if (this.flooded.has(ws) || backlogged) return;
      this.received.inc();
      // Judged on arrival, not in the queue: a slow store neither stretches the
      // second nor lets refused frames pile up in memory.
      const size = rawBytes(data);
      switch (this.judge(pace, addrPace, addrBytes, size)) {
        case 'pass': {
          // At most MESSAGE_BURST and a second's MESSAGE_RATE_PER_SEC wait; past
          // it the socket is closed (1013) and its session keeps its place
          // (fourth review, legacy finding L1). No more can pass the pace
          // within one second, so a flood, whatever the store's speed, meets
          // MESSAGE_FLOOD_PER_SEC (1008) first: at MESSAGE_BURST alone, a
          // flood on a loaded Redis got 1013 when the burst still waited and
          // the pace had refilled a token or two.
          if (waiting >= this.limits.messageBurst + this.limits.messageRatePerSec) {
            this.metrics.rejected.inc({ code: 'backlog' });
            backlogged = true;
            return void ws.close(CloseCode.tryAgain, 'too many messages waiting');
          }
          waiting++;
          // Held as text, not as a view of the read it came in (which may be 64 KiB).
          const text = isBinary ? undefined : messageText(data);
          // Past MESSAGE_BYTES_WAITING_TOTAL in all, this socket is read no more for now.
          if (this.waitingMessages.add(size, ws)) this.metrics.rejected.inc({ code: 'waiting-full' });
          return enqueue(() => {
            waiting--;
            this.waitingMessages.done(size);
            return this.receive(ws, conn, text);
          });
        }
        case 'limited':
          this.metrics.rejected.inc({ code: 'rate-limited' });
          return enqueue(async () => send(errorFrame('rate-limited', this.limitedMessage)));
        case 'address-limited':
          this.metrics.rejected.inc({ code: 'address-rate-limited' });
          return enqueue(async () => send(errorFrame('rate-limited', 'too many messages from this address, slow down')));
        case 'address-bytes-limited': {
          this.metrics.rejected.inc({ code: 'address-bytes-limited' });
          // And the socket is not read until its address has the bytes again: a
          // flood of bytes refused one by one still cost the process its reading.
          const wait = Math.min(BYTES_PAUSE_MAX_MS, Math.max(BYTES_PAUSE_MIN_MS, this.addressBytes.waitFor(addrBytes, size, performance.now())));
          ws.pause();
          setTimeout(() => ws.resume(), wait).unref();
          return enqueue(async () => send(errorFrame('rate-limited', 'too many bytes from this address (MESSAGE_BYTES_PER_ADDR_PER_SEC), slow down')));
        }
        case 'flood':
          // Nothing more of this socket is read; the close follows the answers
          // already queued (its rate-limited errors among them), in order.
          this.metrics.rejected.inc({ code: 'flood' });
          this.flooded.add(ws);
          return enqueue(async () => ws.close(CloseCode.policyViolation, 'message rate exceeded'));
      }
    });
    // The first of `closing` (a close has begun) and `close` (the connection is gone, maybe without a close frame) ends it.
    let ended = false;
    const end = (code: number): void => {
      if (ended) return;
      ended = true;
      const now = performance.now();
      this.paces.close(session, pace, now);
      this.addressPaces.close(addr, addrPace, now);
      this.addressBytes.close(addr, addrBytes, now);
      this.hub.remove(conn);
      this.handlers.released?.(conn, this.flooded.has(ws));
      if (this.flooded.has(ws)) {
        // A flood ends the session, not just this socket (finding W2), as a
        // clean leave; by its token, so that a socket opened meanwhile does
        // not keep it alive.
        this.hub.store
          .expel(session, token, this.channel, conn.id, this.hub.clock.now())
          .then((fx) => this.hub.run(fx))
          .catch((err: unknown) => this.log.error({ err, channel: this.channel }, 'ending a flooded session failed'));
        return;
      }
      enqueue(async () => this.hub.run(await this.handlers.closed(conn, CLEAN_CLOSES.has(code))));
    };
    ws.on('closing', end);
    ws.on('close', end);
    ws.on('close', () => this.waitingMessages.forget(ws));
    ws.on('error', (err) => this.log.debug({ err: err.message, channel: this.channel }, 'socket error'));
    return conn;
  }

  /** A connection for a socket the store opens before its upgrade is done (ServeOptions.held); in the hub until served or `release`d. */
  hold(addr: string): HeldConnection {
    const held = new HeldConnection(newConnId(), addr, this.channel);
    this.hub.add(held);
    return held;
  }

  /**
   * A held socket that will never be served (refused, or its client went
   * before the upgrade): out of the hub, and out of the store as by a clean
   * close when the store had opened it.
   */
  release(held: HeldConnection): void {
    this.hub.remove(held);
    if (held.session === '') return;
    this.handlers
      .closed(held, true)
      .then((fx) => this.hub.run(fx))
      .catch((err: unknown) => this.log.error({ err, channel: this.channel }, 'closing a socket that never opened failed'));
  }

  /**
   * Hold a socket's writes until the end of this turn of the event loop, so
   * that messages for one client produced by one burst of input (a batch of
   * relayed candidates, a pairing and its news) leave in one write instead of
   * one system call each. The delay is bounded by the turn: setImmediate runs
   * right after the I/O callbacks, and a pending one keeps the loop from
   * sleeping in between.
   */
  private coalesce(socket: Duplex): void {
    if (this.corked.has(socket)) return;
    // (After an early flush (write) a second one may be due this turn: it finds what was corked since.)
    if (this.corked.size === 0) setImmediate(this.flush);
    socket.cork();
    this.corked.add(socket);
  }

  private readonly flush = (): void => {
    this.corkedBytes = 0;
    for (const socket of this.corked) socket.uncork();
    // A new set, not clear(): V8 leaves a cleared set's old table pointing at
    // its new one, so one table that was ever promoted would keep every later
    // one, and what they hold, alive through every young-generation collection
    // (docs/BENCHMARKS.md, "The survivors found").
    this.corked = new Set();
  };

  /**
   * Count one frame against its session's pace on this channel and its
   * address's pace: past MESSAGE_FLOOD_PER_SEC frames within a second it is a
   * flood; without a token in either bucket it is refused.
   */
  private judge(pace: Pace, addrPace: Pace, addrBytes: Pace, bytes: number): Verdict {
    const now = performance.now();
    if (this.paces.count(pace, now) > this.limits.messageFloodPerSec) return 'flood';
    if (!this.paces.take(pace, now)) return 'limited';
    if (!this.addressPaces.take(addrPace, now)) return 'address-limited';
    // Bytes too: a message's cost grows with its size and shape (a 16 KB signal
    // of 3,000 keys took 1 ms to read), so an address's allowance of messages
    // alone let it keep a core busy (fifth review, finding H2).
    if (!this.addressBytes.take(addrBytes, now, bytes)) return 'address-bytes-limited';
    return 'pass';
  }

  private get limitedMessage(): string {
    return `more than ${this.limits.messageBurst} messages at once or ${this.limits.messageRatePerSec} a second`;
  }

  /**
   * Is the socket open and within SOCKET_SEND_BUFFER_BYTES, and its address
   * and the process within theirs (http/backlog.ts)? A client that stops
   * reading cannot make the server hold more than that for its socket
   * (finding W3), nor a few addresses more than theirs together: past it the
   * socket is dropped.
   *
   * What counts is what earlier turns of the event loop left unwritten:
   * ws.bufferedAmount is the TCP socket's writableLength (writes held by the
   * cork included, and a write the kernel took only in part, until all of it
   * is through) plus what ws keeps back itself; the budgets add the cost of
   * each write still queued (heldBytes). So it is looked at before a
   * socket's first write of a turn: the writes of the turn itself (a batch of
   * relayed signals, the items kept for a join) are held by the cork, not
   * refused by the client, and are counted from the next turn on if the
   * client has not taken them by then.
   */
  private writable(ws: WebSocket, addr: string): boolean {
    if (ws.readyState !== ws.OPEN) return false;
    const transport = this.transports.get(ws);
    if (transport && this.corked.has(transport)) return true;
    const unwritten = ws.bufferedAmount;
    if (unwritten > this.limits.socketSendBufferBytes) return this.overflow(ws, 'send-buffer-full');
    // The budgets count what it costs the heap: small messages cost more than their bytes.
    const held = heldBytes(unwritten, transport);
    // A reader keeping up holds a write or two and is not counted.
    if (held < BACKLOG_FLOOR) {
      this.backlog.drop(ws);
      return true;
    }
    if (!this.drainWatched.has(ws)) {
      // Counted until the socket has written all it held, or has closed.
      this.drainWatched.add(ws);
      const uncount = (): void => this.backlog.drop(ws);
      transport?.on('drain', uncount);
      ws.once('close', uncount);
    }
    const over = this.backlog.note(ws, addr, held);
    return over === undefined || this.overflow(ws, over === 'address' ? 'address-send-buffer-full' : 'send-buffers-full');
  }

  /** Write one message to a socket, held until the end of this turn of the event loop (coalesce). */
  private write(ws: WebSocket, addr: string, text: string): void {
    if (!this.writable(ws, addr)) return;
    const transport = this.transports.get(ws);
    if (!transport) return void ws.send(text);
    this.coalesce(transport);
    ws.send(text);
    // Two writes: the frame's header and its text.
    this.corkedBytes += text.length + 2 * SEND_WRITE_COST_BYTES;
    if (this.corkedBytes > CORKED_BYTES_MAX) this.flush();
  }

  /**
   * The socket's client does not read: drop the connection (what it holds is
   * lost) so that its grace period starts as for any drop. Until the close is
   * through, the socket is not open, so the hub treats what comes for it like
   * any undelivered message: kept for an absent member, within SIGNAL_BUFFER.
   */
  private overflow(ws: WebSocket, code: 'send-buffer-full' | 'address-send-buffer-full' | 'send-buffers-full'): false {
    this.metrics.rejected.inc({ code });
    this.log.debug({ channel: this.channel, code }, 'socket dropped: its client does not read');
    this.backlog.drop(ws);
    ws.terminate();
    return false;
  }

  /** Handle one message passed by the paces: its text, or undefined for a binary frame. */
  private async receive(ws: WebSocket, conn: Connection, text: string | undefined): Promise<void> {
    // A message that arrived before the client closed is still handled (a chat then a close loses nothing).
    if (this.flooded.has(ws)) return;
    if (text === undefined) {
      conn.send(errorFrame('bad-request', 'binary frames are not accepted: send JSON text'));
      return;
    }
    const parsed = parseMessage(this.schema, text);
    if (!parsed.ok) {
      this.metrics.rejected.inc({ code: 'bad-request' });
      conn.send(errorFrame('bad-request', parsed.error));
      return;
    }
    await this.hub.run(await this.handlers.message(parsed.value, conn));
  }

  /** Tell every client we are going away (1001). */
  closeAll(): void {
    clearInterval(this.sweep);
    for (const ws of this.wss.clients) ws.close(CloseCode.goingAway, 'server shutting down');
  }
}

/** Route `upgrade` events of `server` to `handle`; errors refuse with 400. */
export function onUpgrade(
  server: Server,
  log: Logger,
  handle: (req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>,
): void {
  // An upgrade's failure of one kind (the store away fails every one alike) is logged once a minute at most, with how many times.
  const failures = onceEvery(60_000);
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    handle(req, socket, head).catch((err: unknown) => {
      failures(err instanceof Error ? err.name : 'error', (times) => log.error({ err, times }, 'upgrade failed (times: since the last such line)'));
      if (socket.writable) refuseUpgrade(socket, 503, { status: 'error', message: 'service unavailable' });
    });
  });
}
