// Commands sent to Redis in one turn of the event loop leave in one write.
//
// ioredis writes every command to its socket at once, and a socket that can
// take it makes a system call per command. Under load many sockets' messages
// are read in one turn (each a store call), so the profile of held pairings
// through Redis showed 16% of the server's busy time in those writes, and Redis
// read each command on its own. Here the first write of a turn to a
// connection's socket goes at once, and a second corks it until the turn's I/O
// is done (setImmediate, the check phase right after it): everything written
// meanwhile goes in one writev, in the order it was written, and Redis reads
// it at once. A lone call waits for nothing, and nothing waits longer than the
// rest of the turn; a caller that writes from the check phase itself (which
// would wait a whole turn) calls flush.
import type { Socket } from 'node:net';
import { Redis, type Cluster } from 'ioredis';

type Write = (...args: unknown[]) => boolean;

export class WriteTurns {
  /** Sockets written to in this turn; true once corked. */
  private written = new Map<Socket, boolean>();
  private due = false;

  /** Coalesce the writes of this connection (of each of its nodes, on a Cluster) from now on. */
  watch(conn: Redis | Cluster): void {
    if (conn instanceof Redis) {
      conn.on('connect', () => this.hook(conn.stream as Socket));
      return;
    }
    conn.on('+node', (node: Redis) => node.on('connect', () => this.hook(node.stream as Socket)));
  }

  /** Send what this turn has written so far now. */
  flush(): void {
    this.due = false;
    for (const [sock, corked] of this.written) if (corked) sock.uncork();
    // A new map, not clear(), as the edges' corked sockets (http/socket.ts, flush).
    this.written = new Map();
  }

  private hook(sock: Socket): void {
    const write = sock.write.bind(sock) as Write;
    (sock as unknown as { write: Write }).write = (...args) => {
      const corked = this.written.get(sock);
      if (corked === undefined) {
        // The turn's first write to this socket goes at once: a lone call waits for nothing.
        this.written.set(sock, false);
        if (!this.due) {
          this.due = true;
          setImmediate(() => this.flush());
        }
      } else if (!corked) {
        sock.cork();
        this.written.set(sock, true);
      }
      return write(...args);
    };
  }
}
