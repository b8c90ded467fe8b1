// Messages received and not handled yet wait in their socket's queue behind
// the store's answers. Each socket holds at most MESSAGE_BURST of them; this
// bounds them in all (MESSAGE_BYTES_WAITING_TOTAL): past it, the socket that
// sent the last one is read no more (TCP then holds its client back) until
// what waits has been handled down to half the total. With the embedded store
// they are handled as they come; with Redis, a slow or stalled Redis made every
// socket's queue fill (security review, finding X1: a flood of large signals
// from 16 addresses held gigabytes while Redis fell behind).

/** A socket that can stop being read for a while. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

export class WaitingMessages {
  private bytes = 0;
  private readonly paused = new Set<Pausable>();

  constructor(private readonly maxBytes: number) {}

  /** A message of `n` bytes from `socket` waits: true when that stops the socket's reads for now. */
  add(n: number, socket: Pausable): boolean {
    this.bytes += n;
    if (this.bytes <= this.maxBytes) return false;
    // Paused again even if already listed: something else (the byte limit's timer) may have resumed it.
    socket.pause();
    if (this.paused.has(socket)) return false;
    this.paused.add(socket);
    return true;
  }

  /** A message of `n` bytes has been handled: the sockets paused are read again once half the total is left. */
  done(n: number): void {
    this.bytes -= n;
    if (this.paused.size === 0 || this.bytes > this.maxBytes / 2) return;
    const paused = [...this.paused];
    this.paused.clear();
    for (const s of paused) s.resume();
  }

  /** A socket that has closed is not resumed. */
  forget(socket: Pausable): void {
    this.paused.delete(socket);
  }

  /** Bytes waiting now, and sockets paused (for /metrics and tests). */
  get state(): { bytes: number; paused: number } {
    return { bytes: this.bytes, paused: this.paused.size };
  }
}
