// What the process holds for clients that do not read, per client address and
// in all (SOCKET_SEND_BUFFER_PER_ADDR_BYTES, SOCKET_SEND_BUFFER_TOTAL_BYTES).
//
// One socket holds at most SOCKET_SEND_BUFFER_BYTES (http/socket.ts). An
// address may open MAX_SOCKETS_PER_ADDR of them and pair them with each other,
// one member sending, the other not reading: a few addresses doing so made
// the process hold hundreds of megabytes. Here every socket whose unwritten
// bytes reach BACKLOG_FLOOR is counted, under its address and in all, with
// what it held when last looked at; it leaves the count once it has drained
// ('drain') or closed. A socket looked at while its address or the process is
// past its budget is dropped by the edge, as a socket past its own cap is.

/** Sockets holding less than this are not counted: a reader keeping up holds a write or two. */
export const BACKLOG_FLOOR = 64 * 1024;

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
