// What we send on the matching socket: at once when it is open, held while it
// is coming back (the server keeps our place meanwhile) and sent on resumption.
import type { MatchingClientMessage } from '@dyad/protocol';
import type { SocketState } from './ResumableSocket.js';

/** Messages written while the socket is coming back; beyond this the oldest matter least. */
export const MAX_OUTBOX = 32;

/** What the outbox needs of the socket; a ResumableSocket. */
export interface OutboxSocket {
  readonly currentState: SocketState;
  send(frame: string): boolean;
}

export class Outbox {
  private held: MatchingClientMessage[] = [];

  constructor(
    private readonly socket: () => OutboxSocket | null,
    private readonly max = MAX_OUTBOX,
  ) {}

  /** Send now, or hold while the socket is coming back; false when it can go neither way. */
  send(msg: MatchingClientMessage): boolean {
    if (this.sendNow(msg)) return true;
    if (this.socket()?.currentState !== 'reconnecting') return false;
    if (this.held.length >= this.max) this.held.shift();
    this.held.push(msg);
    return true;
  }

  /** Send now or not at all: for what is stale once the socket is back (typing). */
  sendNow(msg: MatchingClientMessage): boolean {
    return this.socket()?.send(JSON.stringify(msg)) ?? false;
  }

  /** The socket resumed: what was held goes out, in order. */
  flush(): void {
    const held = this.held;
    this.held = [];
    for (const msg of held) this.sendNow(msg);
  }

  clear(): void {
    this.held = [];
  }
}
