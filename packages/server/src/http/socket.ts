// One WebSocket of a session, on either service: rate limits, edge
// validation, in-order handling, and the close rules of the contract.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { CloseCode, parseMessage, type ErrorCode, type HttpError } from '@dyad/protocol';
import type { z } from 'zod';
import type { Logger } from 'pino';
import type { Connection, Hub } from '../core/hub.js';
import type { AttachResult, Channel, Effects, Store } from '../store/store.js';
import type { Metrics } from '../ops/metrics.js';
import { newConnId } from '../core/ids.js';

export interface SocketLimits {
  maxFrameBytes: number;
  messageRatePerSec: number;
  messageFloodPerSec: number;
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

/**
 * Messages of one socket in the current one-second window. The count is the
 * socket's own (nothing to share between processes) and runs on every
 * message, so it is a field, not a limiter-store lookup and a promise.
 */
class MessageWindow {
  private start = 0;
  private n = 0;

  count(now: number): number {
    if (now - this.start >= 1_000) {
      this.start = now;
      this.n = 0;
    }
    return ++this.n;
  }
}

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

/** Answer an upgrade request with a plain HTTP response and drop the socket. */
export function refuseUpgrade(socket: Duplex, status: number, body: object): void {
  const text = JSON.stringify(body);
  const reason = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests', 503: 'Service Unavailable' }[status] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

export interface SessionSocketHandlers<M> {
  /** Handle one valid message; returns the store's effects. */
  message(msg: M, conn: Connection): Promise<Effects>;
  /** The socket ended: `left` for a clean close. */
  closed(conn: Connection, left: boolean): Promise<Effects>;
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
  private readonly sweep: NodeJS.Timeout;
  /** The TCP socket under each WebSocket, for write coalescing. */
  private readonly transports = new WeakMap<WebSocket, Duplex>();
  /** Sockets corked in this turn of the event loop, uncorked together at its end. */
  private readonly corked = new Set<Duplex>();

  constructor(
    private readonly channel: Channel,
    private readonly schema: S,
    private readonly hub: Hub,
    private readonly limits: SocketLimits,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly handlers: SessionSocketHandlers<z.infer<S>>,
    private readonly sockets: SocketCount,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: true,
      WebSocket: EagerCloseWebSocket,
    });
    this.received = metrics.messages.labels({ channel });
    // A socket that misses a pong is terminated; its grace period then starts as for any drop.
    this.sweep = setInterval(() => {
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
  async admit(addr: string, socket: Duplex): Promise<{ status: number; body: HttpError } | undefined> {
    if (!(await this.sockets.open(addr))) {
      this.metrics.rejected.inc({ code: 'too-many-sockets' });
      return { status: 429, body: { status: 'error', message: 'too many open sockets from this address', retry_after: SOCKET_RETRY_AFTER_SEC } };
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.sockets.close(addr).catch((err: unknown) => this.log.warn({ err }, 'socket count release failed'));
    };
    // A client gone while its place was taken has had its 'close' already: give the place back now.
    if (socket.closed) release();
    else socket.once('close', release);
    return undefined;
  }

  /** Complete the upgrade, then hand the open socket to `opened`. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, opened: (ws: WebSocket) => void): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.transports.set(ws, socket);
      this.alive.set(ws, true);
      ws.on('pong', () => this.alive.set(ws, true));
      opened(ws);
    });
  }

  /**
   * Wire an open socket of `session` into the hub. `attach` tells the store;
   * it runs before any message of the socket is handled.
   */
  serve(ws: WebSocket, session: string, addr: string, attach: (conn: Connection) => Promise<AttachResult>): Connection {
    const connId = newConnId();
    const transport = this.transports.get(ws);
    const conn: Connection = {
      id: connId,
      session,
      addr,
      channel: this.channel,
      isOpen: () => ws.readyState === ws.OPEN,
      send: (text) => {
        if (transport) this.coalesce(transport);
        ws.send(text);
      },
      close: (code, reason) => ws.close(code, reason),
    };
    this.hub.add(conn);
    // Messages of one socket are handled strictly in the order received, the close last.
    const queue = new SerialQueue((err) => {
      this.log.error({ err, channel: this.channel }, 'socket handler failed');
      // The store did not answer (Redis away or stalled): say so instead of leaving the client waiting.
      if (ws.readyState === ws.OPEN) ws.send(errorFrame('rate-limited', 'service temporarily unavailable, try again shortly'));
    });
    const enqueue = (task: () => Promise<void>): void => queue.push(task);
    const pace = new MessageWindow();
    enqueue(async () => {
      const attached = await attach(conn);
      if (attached.ok) return this.hub.run(attached.effects);
      // The session ended between the token check and the upgrade.
      ws.send(errorFrame('unauthorized', 'session ended'));
      ws.close(CloseCode.unauthorized, 'unauthorized');
    });
    ws.on('message', (data: RawData, isBinary: boolean) => enqueue(() => this.receive(ws, conn, pace, data, isBinary)));
    // The first of `closing` (a close has begun) and `close` (the connection is gone, maybe without a close frame) ends it.
    let ended = false;
    const end = (code: number): void => {
      if (ended) return;
      ended = true;
      this.hub.remove(conn);
      enqueue(async () => this.hub.run(await this.handlers.closed(conn, CLEAN_CLOSES.has(code))));
    };
    ws.on('closing', end);
    ws.on('close', end);
    ws.on('error', (err) => this.log.debug({ err: err.message, channel: this.channel }, 'socket error'));
    return conn;
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
    if (this.corked.size === 0) setImmediate(this.flush);
    socket.cork();
    this.corked.add(socket);
  }

  private readonly flush = (): void => {
    for (const socket of this.corked) socket.uncork();
    this.corked.clear();
  };

  private async receive(ws: WebSocket, conn: Connection, pace: MessageWindow, data: RawData, isBinary: boolean): Promise<void> {
    // A message that arrived before the client closed is still handled (a chat then a close loses nothing).
    if (this.flooded.has(ws)) return;
    this.received.inc();
    const used = pace.count(Date.now());
    if (used > this.limits.messageFloodPerSec) {
      this.metrics.rejected.inc({ code: 'flood' });
      this.flooded.add(ws);
      ws.close(CloseCode.policyViolation, 'message rate exceeded');
      return;
    }
    if (used > this.limits.messageRatePerSec) {
      this.metrics.rejected.inc({ code: 'rate-limited' });
      ws.send(errorFrame('rate-limited', `more than ${this.limits.messageRatePerSec} messages a second`));
      return;
    }
    if (isBinary) {
      ws.send(errorFrame('bad-request', 'binary frames are not accepted: send JSON text'));
      return;
    }
    const parsed = parseMessage(this.schema, Array.isArray(data) ? Buffer.concat(data).toString() : data.toString());
    if (!parsed.ok) {
      this.metrics.rejected.inc({ code: 'bad-request' });
      ws.send(errorFrame('bad-request', parsed.error));
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
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    handle(req, socket, head).catch((err: unknown) => {
      log.error({ err }, 'upgrade failed');
      if (socket.writable) refuseUpgrade(socket, 503, { status: 'error', message: 'service unavailable' });
    });
  });
}
