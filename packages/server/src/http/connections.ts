// Open TCP connections, counted over every port of the process as they are
// accepted, before a byte is read: per client address, so that a few
// addresses cannot hold the process's file descriptors (idle or slow
// connections, renewed as timeouts close them); and in all, so that many
// addresses together leave the process the descriptors it needs for itself
// (its Redis connections, its files) and for the visitors it already has.
// And on the services' ports, requests per client address: each costs the
// process far more than a packet costs its sender, so one address must not
// keep a core busy with requests that are refused anyway.
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { sendJson, slowDown } from './context.js';
import type { PaceBook } from './pace.js';
import { refuseUpgrade } from './socket.js';

export interface ConnectionLimits {
  /** MAX_CONNECTIONS: connections open at once in the process. */
  total: number;
  /** MAX_CONNECTIONS_PER_ADDR, and what a connection's address counts as (its keyed hash); none behind a trusted proxy. */
  perAddress?: { max: number; keyOf: (socket: Socket) => string };
  /**
   * REQUEST_RATE_PER_ADDR_PER_SEC and REQUEST_BURST_PER_ADDR, on the servers
   * watched with `requests`: each request and upgrade takes a token of its
   * client's address (`keyOf`: its keyed hash, the forwarded one behind a
   * trusted proxy); a new connection from an address with none left is closed
   * unread (without a trusted proxy).
   */
  requests: { book: PaceBook; keyOf: (req: IncomingMessage) => string };
  /**
   * WEB_REQUEST_RATE_PER_ADDR_PER_SEC and WEB_REQUEST_BURST_PER_ADDR: the
   * same, on the web role's port, with a bucket of its own (a page's load
   * is a few dozen files; a file of megabytes costs the process milliseconds).
   */
  webRequests: PaceBook;
  /**
   * HTTP_TIMEOUT_MS: how long an upgrade's connection may go without a byte
   * read or written until ws takes it (then pings watch it), or after it was
   * refused; the HTTP server no longer times it out once it is an upgrade.
   */
  upgradeIdleMs: number;
}

/** How long a connection refused mid-request stays open, unread, for its client to read the answer. */
const REFUSED_LINGER_MS = 1_000;
/** A header line naming a body in chunks, at the start of a line (a JSON body cannot hold one: its line breaks are escaped inside strings). */
const CHUNKED_HEADER = /\ntransfer-encoding[ \t]*:/i;
/** What is kept of a read to find such a line cut across two reads. */
const HEADER_TAIL_CHARS = 32;
const LENGTH_REQUIRED_BODY = JSON.stringify({ status: 'error', message: 'a request body must come with its Content-Length, not in chunks (Transfer-Encoding)' });
/** The answer to a request whose body comes in chunks, written on the connection itself. */
const LENGTH_REQUIRED =
  `HTTP/1.1 411 Length Required\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(LENGTH_REQUIRED_BODY)}\r\n` +
  `X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${LENGTH_REQUIRED_BODY}`;

/** Which limit turned a connection or request away. */
export type ConnectionRefusal = 'address' | 'process' | 'requests' | 'web-requests' | 'chunked';

/** Whose requests a server's are: the services' (matching, signalling) or the web role's files. */
export type RequestKind = 'services' | 'web';

/** Share of the open-file limit that MAX_CONNECTIONS takes by default: the rest stays for the process's own files and Redis. */
const DEFAULT_SHARE_OF_OPEN_FILES = 0.9;
/**
 * What an open connection may cost the process at most, before it is a
 * WebSocket (measured on the embedded store, 4,000 connections: about 11 KB
 * for one that has sent nothing, 17 KB for one holding a request's headers up
 * to Node's limit; an idle WebSocket session costs about 8 KB).
 */
const CONNECTION_BYTES = 20 * 1024;
/** And of the JavaScript heap (5 KB measured for a connection that has sent nothing). */
const CONNECTION_HEAP_BYTES = 6 * 1024;
/** Share of the process's memory, and of its heap, that connections take at most by default. */
const DEFAULT_SHARE_OF_MEMORY = 0.25;

/** The memory this process may use: its cgroup's limit (a container's), else the machine's. */
export function memoryAvailable(): number {
  const total = totalmem();
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 && constrained < total ? constrained : total;
}

/**
 * MAX_CONNECTIONS when unset: most of the process's open-file limit, read at
 * start (Linux), and no more than a quarter of its memory and of its heap
 * holds. Where open files are not limited (a container may allow a million),
 * many addresses together (an IPv6 subscriber's /64s, 256 connections each)
 * could otherwise hold gigabytes with connections that send nothing.
 */
export function defaultMaxConnections(
  limits = '/proc/self/limits',
  memory = memoryAvailable(),
  heap = getHeapStatistics().heap_size_limit,
): number {
  const byMemory = Math.floor(Math.min((memory * DEFAULT_SHARE_OF_MEMORY) / CONNECTION_BYTES, (heap * DEFAULT_SHARE_OF_MEMORY) / CONNECTION_HEAP_BYTES));
  let byFiles = Number.POSITIVE_INFINITY;
  try {
    const soft = /^Max open files\s+(\d+)/m.exec(readFileSync(limits, 'utf8'))?.[1];
    if (soft !== undefined) byFiles = Math.floor(Number(soft) * DEFAULT_SHARE_OF_OPEN_FILES);
  } catch {
    // Not Linux: the memory alone bounds it.
  }
  return Math.min(byFiles, byMemory);
}

export class ConnectionCap {
  private total = 0;
  /** Open connections per address key; an entry lives while its address has one. */
  private readonly open = new Map<string, number>();

  /** `refused` is called for each connection closed at once, with the limit it met. */
  constructor(
    private readonly limits: ConnectionLimits,
    private readonly refused: (why: ConnectionRefusal) => void,
  ) {}

  /**
   * Count `server`'s connections with every other server watched by this cap,
   * and its requests and upgrades in the bucket of their kind.
   */
  watch(server: Server, opts: { requests: RequestKind }): void {
    const book = opts.requests === 'web' ? this.limits.webRequests : this.limits.requests.book;
    const why: ConnectionRefusal = opts.requests === 'web' ? 'web-requests' : 'requests';
    server.on('connection', (socket: Socket) => {
      this.admit(socket, book, why);
      if (!socket.destroyed) this.screenChunkedBodies(socket);
    });
    this.refuseChunkedBodies(server);
    this.paceRequests(server, book, why);
    this.timeUpgrades(server);
  }

  /**
   * A request whose body comes in chunks (Transfer-Encoding) is answered 411
   * and its connection closed, before any of it is read: Node's parser took
   * some 2.5 µs a chunk, so a 16 KB body in one-byte chunks (96 KB sent in
   * one write) cost 40 ms of the one thread, and connections streaming
   * one-byte chunks without end kept it busy (fifth review, finding H3).
   * Dyad's clients send every body with its Content-Length.
   */
  private refuseChunkedBodies(server: Server): void {
    const handlers = server.listeners('request') as ((...args: unknown[]) => void)[];
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.headers['transfer-encoding'] === undefined) {
        for (const handler of handlers) handler.call(server, req, res);
        return;
      }
      this.refused('chunked');
      // Written on the connection itself, which is then read no more: through
      // `res`, Node would read (and parse) the rest of the body to keep the
      // connection alive, or close it with the body unread, which resets it
      // before the client has read the answer.
      const socket = req.socket;
      socket.pause();
      socket.end(LENGTH_REQUIRED);
      setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
    });
  }

  /**
   * Ahead of Node's parser: a connection whose bytes name a chunked body
   * (a `Transfer-Encoding` header line) is answered 411 and closed before
   * the parser reads them. By the time a request reaches a handler (see
   * refuseChunkedBodies), Node has parsed the rest of the read its headers
   * came in: up to 64 KiB of one-byte chunks, 11-23 ms of the one thread
   * (fifth review, H3, found by a check of the first fix). Runs after Node's
   * own connection listener: its data listener is taken off and called from
   * here (Node then parses from `data` events, as for TLS), until the
   * connection is a WebSocket (the parser is gone). A header line cut across
   * two reads is found with the end of the one before.
   */
  private screenChunkedBodies(socket: Socket): void {
    const parse = socket.listeners('data') as ((chunk: Buffer) => void)[];
    if (parse.length === 0) return;
    for (const listener of parse) socket.removeListener('data', listener);
    let tail = '';
    const screen = (chunk: Buffer): void => {
      // An upgraded connection: the WebSocket reads it from now on.
      if ((socket as Socket & { parser?: unknown }).parser == null) {
        socket.removeListener('data', screen);
        return;
      }
      const text = tail + chunk.toString('latin1');
      if (CHUNKED_HEADER.test(text)) {
        socket.removeListener('data', screen);
        this.refused('chunked');
        socket.pause();
        socket.end(LENGTH_REQUIRED);
        setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
        return;
      }
      tail = text.slice(-HEADER_TAIL_CHARS);
      for (const listener of parse) listener.call(socket, chunk);
    };
    socket.on('data', screen);
  }

  /** In front of the handlers the server has: a request over the rate reaches none of them. */
  private paceRequests(server: Server, book: PaceBook, why: ConnectionRefusal): void {
    for (const event of ['request', 'upgrade'] as const) {
      const handlers = server.listeners(event) as ((...args: unknown[]) => void)[];
      // A server without upgrade handlers (the web role without go-megle) is left without: Node then answers an upgrade as a plain request.
      if (handlers.length === 0) continue;
      server.removeAllListeners(event);
      server.on(event, (req: IncomingMessage, out: ServerResponse | Duplex, head?: Buffer) => {
        if (book.takeOnce(this.limits.requests.keyOf(req), performance.now())) {
          for (const handler of handlers) handler.call(server, req, out, head);
          return;
        }
        this.refused(why);
        const body = slowDown('too many requests from this address, slow down', 1_000);
        if (event === 'upgrade') refuseUpgrade(out as Duplex, 429, body);
        else sendJson(out as ServerResponse, 429, body, { Connection: 'close' });
      });
    }
  }

  /**
   * A refused upgrade is answered and ended, and one being served waits for
   * the store: a client that kept either open and silent held its connection
   * for good (fourth review, finding F5). Ahead of every other handler, so the
   * requests refused for their rate are timed too. A server without upgrade
   * handlers (the web role without go-megle) gets none: Node then answers an
   * upgrade request as a plain request.
   */
  private timeUpgrades(server: Server): void {
    if (server.listenerCount('upgrade') === 0) return;
    server.prependListener('upgrade', (_req: IncomingMessage, socket: Socket) => {
      socket.setTimeout(this.limits.upgradeIdleMs, () => socket.destroy());
    });
  }

  private admit(socket: Socket, book: PaceBook, why: ConnectionRefusal): void {
    if (this.total >= this.limits.total) return this.refuse(socket, 'process');
    const per = this.limits.perAddress;
    const key = per?.keyOf(socket);
    if (per && key !== undefined) {
      const count = (this.open.get(key) ?? 0) + 1;
      if (count > per.max) return this.refuse(socket, 'address');
      // An address whose requests are spent gets no new connection to send more on.
      if (!book.ready(key, performance.now())) return this.refuse(socket, why);
      this.open.set(key, count);
    }
    this.total += 1;
    socket.once('close', () => {
      this.total -= 1;
      if (key === undefined) return;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    });
  }

  /** Nothing is read or written: the client sees its connection closed. */
  private refuse(socket: Socket, why: ConnectionRefusal): void {
    socket.destroy();
    this.refused(why);
  }
}
