// Open TCP connections, counted over every port of the process as they are
// accepted, before a byte is read: per client address, so that a few
// addresses cannot hold the process's file descriptors (idle or slow
// connections, renewed as timeouts close them); and in all, so that many
// addresses together leave the process the descriptors it needs for itself
// (its Redis connections, its files) and for the visitors it already has.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  /** MAX_CONNECTIONS: connections open at once in the process. */
  total: number;
  /** MAX_CONNECTIONS_PER_ADDR, and what an address counts as (its keyed hash); none behind a trusted proxy. */
  perAddress?: { max: number; keyOf: (address: string) => string };
}

/** Which limit closed a connection. */
export type ConnectionRefusal = 'address' | 'process';

/** Share of the open-file limit that MAX_CONNECTIONS takes by default: the rest stays for the process's own files and Redis. */
const DEFAULT_SHARE_OF_OPEN_FILES = 0.9;

/** MAX_CONNECTIONS when unset: most of the process's open-file limit, read at start (Linux); unlimited where it cannot be read. */
export function defaultMaxConnections(limits = '/proc/self/limits'): number {
  try {
    const soft = /^Max open files\s+(\d+)/m.exec(readFileSync(limits, 'utf8'))?.[1];
    return soft === undefined ? Number.POSITIVE_INFINITY : Math.floor(Number(soft) * DEFAULT_SHARE_OF_OPEN_FILES);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
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

  /** Count `server`'s connections with every other server watched by this cap. */
  watch(server: Server): void {
    server.on('connection', (socket: Socket) => this.admit(socket));
  }

  private admit(socket: Socket): void {
    if (this.total >= this.limits.total) return this.refuse(socket, 'process');
    const per = this.limits.perAddress;
    const key = per?.keyOf(socket.remoteAddress ?? '');
    if (per && key !== undefined) {
      const count = (this.open.get(key) ?? 0) + 1;
      if (count > per.max) return this.refuse(socket, 'address');
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
