// What the process holds for clients that do not read, per client address and
// in all (SOCKET_SEND_BUFFER_PER_ADDR_BYTES, SOCKET_SEND_BUFFER_TOTAL_BYTES).
//
// One socket holds at most SOCKET_SEND_BUFFER_BYTES (http/socket.ts). An
// address may open MAX_SOCKETS_PER_ADDR of them and pair them with each other,
// one member sending, the other not reading: a few addresses doing so made
// the process hold hundreds of megabytes. Here every socket whose unwritten
// bytes, with what each queued write costs (heldBytes), reach BACKLOG_FLOOR is counted, under its address and in all, with
// what it held when last looked at; it leaves the count once it has drained
// ('drain') or closed. A socket looked at while its address or the process is
// past its budget is dropped by the edge, as a socket past its own cap is.

/**
 * Sockets holding less than this are not counted: a reader keeping up holds
 * a write or two. It was 64 KiB, until a review found sockets that do not
 * read each made to hold just under it in small replies: 6,400 of them held
 * 98 MB of writes (431 MB of heap) that no budget saw (sixth review, S1).
 * Below it, what every open connection may hold uncounted is bounded by
 * MAX_CONNECTIONS times this.
 */
export const BACKLOG_FLOOR = 8 * 1024;

/**
 * What one write waiting in a socket's queue costs the heap beyond its bytes:
 * the queue's entry, and for a WebSocket message its frame header's own
 * Buffer (each message is two writes). Measured at about 150 bytes a write
 * against some 45 bytes of small replies: counted by their bytes alone, a
 * queue of small messages held 3.5 times what the budgets saw.
 */
export const SEND_WRITE_COST_BYTES = 160;

/**
 * Writes held by the cork that coalesces a turn's writes to a socket (each
 * socket's are uncorked together when the turn ends) are written out at once
 * when they cost more than this in all. A turn can be long: with many
 * sockets readable, Node reads up to some 49,000 of them before its
 * immediates run, and each refused frame read gets its answer. Sockets that
 * never read, sending one-byte frames within every message limit, made
 * 1,920 sockets hold 78 MB in 1.8 million corked writes, none of which the
 * budgets saw (they count from the next turn), and a 256 MB heap ran out
 * (sixth review, S1). Once written out, what a socket still holds is its
 * own, counted by the budgets at its next write.
 */
export const CORKED_BYTES_MAX = 1024 * 1024;

/** Node's count of the writes waiting in a stream's queue (its writable state's own). */
interface QueuedWrites {
  _writableState?: { bufferedRequestCount?: number };
}

/**
 * What a socket holds for a client that has not taken it, as the budgets
 * count it: `unwritten` bytes (ws.bufferedAmount) and the cost of each write
 * still queued on `transport`, its TCP (or TLS) connection.
 */
export function heldBytes(unwritten: number, transport: object | undefined): number {
  const writes = (transport as QueuedWrites | undefined)?._writableState?.bufferedRequestCount ?? 0;
  return unwritten + writes * SEND_WRITE_COST_BYTES;
}

interface Held {
  addr: string;
  bytes: number;
}

export class SendBacklog {
  private readonly held = new Map<object, Held>();
  private readonly byAddr = new Map<string, number>();
  private all = 0;

  constructor(
    private readonly perAddr: number,
    private readonly total: number,
  ) {}

  /**
   * `socket` (of a client at `addr`) holds `bytes` unwritten, BACKLOG_FLOOR
   * or more: count them in place of what it held before. Says which budget
   * is then exceeded, its address's or the process's, if one is: the caller
   * drops the socket. The caller calls `drop` once the socket holds less
   * than BACKLOG_FLOOR, has drained or has closed.
   */
  note(socket: object, addr: string, bytes: number): 'address' | 'process' | undefined {
    let h = this.held.get(socket);
    if (!h) {
      h = { addr, bytes: 0 };
      this.held.set(socket, h);
    }
    const delta = bytes - h.bytes;
    h.bytes = bytes;
    this.all += delta;
    const mine = (this.byAddr.get(addr) ?? 0) + delta;
    this.byAddr.set(addr, mine);
    return mine > this.perAddr ? 'address' : this.all > this.total ? 'process' : undefined;
  }

  /** `socket` holds nothing counted any more (drained, dropped or closed). */
  drop(socket: object): void {
    const h = this.held.get(socket);
    if (!h) return;
    this.held.delete(socket);
    this.all -= h.bytes;
    const left = (this.byAddr.get(h.addr) ?? 0) - h.bytes;
    if (left > 0) this.byAddr.set(h.addr, left);
    else this.byAddr.delete(h.addr);
  }
}
