// The signalling socket. It is opened as soon as the session exists, while we
// are still waiting for a stranger, so that `matched` costs only a `join`.
// Signals follow the `join` on the same socket at once: the server handles a
// socket's frames in order (the contract's ordering guarantee), so waiting for
// `verified` would only add a round trip before the offer. Signals written
// while the socket is down are held and sent after the next `join`; anything
// about another room is stale and dropped.
import { parseMessage, SignallingServerMessage } from '@dyad/protocol';
import type { SignalEvent, SignallingClientMessage, SignalType } from '@dyad/protocol';
import { ResumableSocket } from './ResumableSocket.js';
import type { SocketState, WebSocketFactory } from './ResumableSocket.js';

export interface SignallingHandlers {
  onSignal(message: SignalEvent): void;
  /** Our join of `roomCode` was accepted; `resumed` after the socket came back. */
  onJoined(roomCode: string, resumed: boolean): void;
  onState(state: SocketState): void;
  /** The session is over for the signalling service (4001 etc.). */
  onFinal(code: number): void;
}

type SignalOut = Extract<SignallingClientMessage, { event: 'signal' }>;

/** Signals waiting for the socket; a room needs only a handful before it connects. */
const MAX_OUTBOX = 256;

export class SignallingChannel {
  private readonly socket: ResumableSocket;
  private room: string | null = null;
  /** `join` for `room` has been written on the socket that is open now. */
  private joined = false;
  private rejoining = false;
  private outbox: SignalOut[] = [];

  constructor(
    url: string,
    private readonly handlers: SignallingHandlers,
    options: { createSocket?: WebSocketFactory; graceMs?: number } = {},
  ) {
    this.socket = new ResumableSocket({
      url: () => url,
      canResume: () => true,
      onOpen: (resumed) => this.onOpen(resumed),
      onMessage: (raw) => this.onMessage(raw),
      onState: (state) => handlers.onState(state),
      onFinal: (code) => handlers.onFinal(code),
      ...options,
    });
  }

  connect(): void {
    this.socket.connect();
  }

  get isOpen(): boolean {
    return this.socket.isOpen;
  }

  get currentRoom(): string | null {
    return this.room;
  }

  /** Enter a room (or none). Joining the same room again is a no-op. */
  setRoom(room: string | null): void {
    if (room === this.room) return;
    this.room = room;
    this.joined = false;
    this.rejoining = false;
    this.outbox = [];
    if (room) this.joined = this.write({ event: 'join', room_code: room });
  }

  signal(type: SignalType, data: Record<string, unknown>): void {
    if (!this.room) return;
    const msg: SignalOut = { event: 'signal', room_code: this.room, type, data };
    if (this.joined && this.outbox.length === 0 && this.write(msg)) return;
    if (this.outbox.length < MAX_OUTBOX) this.outbox.push(msg);
  }

  nudge(): void {
    this.socket.nudge();
    this.socket.replace();
  }

  /** Code 1000 tells the server we left the room we joined. */
  close(code?: number): void {
    this.room = null;
    this.outbox = [];
    this.socket.close(code);
  }

  private write(msg: SignallingClientMessage): boolean {
    return this.socket.send(JSON.stringify(msg));
  }

  private onOpen(resumed: boolean): void {
    this.joined = false;
    this.rejoining = resumed;
    if (!this.room || !this.write({ event: 'join', room_code: this.room })) return;
    this.joined = true;
    while (this.outbox.length > 0 && this.write(this.outbox[0]!)) this.outbox.shift();
  }

  private onMessage(raw: string): void {
    const parsed = parseMessage(SignallingServerMessage, raw);
    if (!parsed.ok) return; // unknown events are allowed by the contract; ignore them
    const msg = parsed.value;
    switch (msg.event) {
      case 'verified':
        if (msg.room_code !== this.room) return;
        this.handlers.onJoined(msg.room_code, this.rejoining);
        this.rejoining = false;
        return;
      case 'signal':
        if (msg.room_code === this.room) this.handlers.onSignal(msg);
        return;
      // An ended session is followed by its close code (4001/4003), handled as final.
      case 'error':
        return;
      // The matching socket is the one authority on the room's end (its order
      // relative to `matched` is guaranteed, the signalling socket's is not).
      case 'peer-disconnected':
      case 'peer-joined':
        return;
    }
  }
}
