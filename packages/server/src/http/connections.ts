// Open TCP connections per client address, counted over every port of the
// process before a byte is read: a few addresses must not hold the process's
// file descriptors (idle or slow connections, renewed as timeouts close them),
// which would shut out everyone else.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export class ConnectionCap {
  /** Open connections per address key; an entry lives while its address has one. */
  private readonly open = new Map<string, number>();

  /**
   * @param max MAX_CONNECTIONS_PER_ADDR
   * @param keyOf what an address counts as (an IPv6 one: its network), kept in memory only
   * @param refused called for each connection closed at once for being over `max`
   */
  constructor(
    private readonly max: number,
    private readonly keyOf: (address: string) => string,
    private readonly refused: () => void,
  ) {}

  /** Count `server`'s connections with every other server watched by this cap. */
  watch(server: Server): void {
    server.on('connection', (socket: Socket) => this.admit(socket));
  }

  private admit(socket: Socket): void {
    const key = this.keyOf(socket.remoteAddress ?? '');
    const count = (this.open.get(key) ?? 0) + 1;
    if (count > this.max) {
      // Nothing is read or written: the client sees its connection closed.
      socket.destroy();
      this.refused();
      return;
    }
    this.open.set(key, count);
    socket.once('close', () => {
      const left = (this.open.get(key) ?? 1) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    });
  }
}
