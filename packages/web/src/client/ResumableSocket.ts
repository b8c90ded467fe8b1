// A WebSocket that comes back by itself. The services keep a dropped socket's
// place for a grace period (15 s by default), so a socket that ends in any way
// but our own clean close is reopened with backoff until that time is up; the
// server then re-sends the current state. Close codes that mean "this session
// is over here" are final.
import { CloseCode } from '@dyad/protocol';

export type SocketState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export type WebSocketFactory = (url: string) => WebSocket;

export interface ResumableSocketOptions {
  /** URL of the next attempt; `resume` is true for every attempt after a drop. */
  url(resume: boolean): string;
  onOpen(resumed: boolean): void;
  onMessage(raw: string): void;
  onState(state: SocketState): void;
  /** The socket is gone for good: a final close code, or the grace period ran out. */
  onFinal(code: number): void;
  /** True once there is something to resume (a one-trip start is not resumable before `session`). */
  canResume(): boolean;
  /** @default 15_000, the services' default GRACE_MS */
  graceMs?: number;
  createSocket?: WebSocketFactory;
  /** Injected for tests. */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  now?: () => number;
}

/** Close codes after which reopening cannot succeed. */
const FINAL_CODES: ReadonlySet<number> = new Set([CloseCode.unauthorized, CloseCode.replaced, CloseCode.banned]);

/** First retry fast (a blip), then back off; never longer than this between tries. */
const RETRY_DELAYS_MS = [0, 250, 500, 1_000, 2_000] as const;
/** An attempt that neither opens nor fails in this time is abandoned and retried. */
const OPEN_TIMEOUT_MS = 5_000;
/** A code from 4000-4999 is ours to use: unlike 1000 it does not end the session on the server. */
export const CLIENT_RETRY_CLOSE = 4000;
// readyState values, spelled out so that stand-in sockets in tests need no globals.
const WS_CONNECTING = 0;
const WS_OPEN = 1;

export class ResumableSocket {
  private ws: WebSocket | null = null;
  private state: SocketState = 'closed';
  private retry = 0;
  private droppedAt = 0;
  private retryTimer: unknown = null;
  private openTimer: unknown = null;
  private everOpened = false;
  private readonly graceMs: number;
  private readonly createSocket: WebSocketFactory;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly now: () => number;

  constructor(private readonly opts: ResumableSocketOptions) {
    this.graceMs = opts.graceMs ?? 15_000;
    this.createSocket = opts.createSocket ?? ((url) => new WebSocket(url));
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.now = opts.now ?? (() => Date.now());
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get currentState(): SocketState {
    return this.state;
  }

  connect(): void {
    if (this.state !== 'closed') return;
    this.everOpened = false;
    this.setState('connecting');
    this.attempt(false);
  }

  /** Returns false when the frame could not be sent (socket not open). */
  send(frame: string): boolean {
    if (!this.ws || this.ws.readyState !== WS_OPEN) return false;
    this.ws.send(frame);
    return true;
  }

  /** Retry now instead of waiting for the backoff (the network came back). */
  nudge(): void {
    if (this.state !== 'reconnecting' || this.ws) return;
    this.cancelRetry();
    this.attempt(true);
  }

  /** A socket that looks open may be dead after a network change: replace it. */
  replace(): void {
    if (this.state !== 'open' || !this.ws) return;
    this.drop(this.ws, CLIENT_RETRY_CLOSE);
  }

  /** Our own close: 1000 means "I left" to the server. Idempotent. */
  close(code: number = CloseCode.normal): void {
    this.cancelRetry();
    this.clearOpenTimer();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      if (ws.readyState === WS_OPEN || ws.readyState === WS_CONNECTING) ws.close(code);
    }
    if (this.state !== 'closed') this.setState('closed');
  }

  private attempt(resume: boolean): void {
    this.retryTimer = null;
    let ws: WebSocket;
    try {
      ws = this.createSocket(this.opts.url(resume));
    } catch {
      this.afterDrop(1006);
      return;
    }
    this.ws = ws;
    this.openTimer = this.setTimer(() => {
      this.openTimer = null;
      if (this.ws === ws && ws.readyState !== WS_OPEN) this.drop(ws, CLIENT_RETRY_CLOSE);
    }, OPEN_TIMEOUT_MS);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.clearOpenTimer();
      this.retry = 0;
      const resumed = this.everOpened;
      this.everOpened = true;
      this.setState('open');
      this.opts.onOpen(resumed);
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.ws !== ws) return;
      if (typeof ev.data === 'string') this.opts.onMessage(ev.data);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      detach(ws);
      this.clearOpenTimer();
      this.afterDrop(ev.code);
    };
    // An error is always followed by close; nothing to do here.
    ws.onerror = () => undefined;
  }

  private drop(ws: WebSocket, code: number): void {
    this.ws = null;
    detach(ws);
    this.clearOpenTimer();
    try {
      ws.close(code);
    } catch {
      // already closing
    }
    this.afterDrop(1006);
  }

  private afterDrop(code: number): void {
    if (FINAL_CODES.has(code) || !this.opts.canResume()) {
      this.setState('closed');
      this.opts.onFinal(code);
      return;
    }
    if (this.state !== 'reconnecting') {
      this.droppedAt = this.now();
      this.retry = 0;
      this.setState('reconnecting');
    }
    const elapsed = this.now() - this.droppedAt;
    if (elapsed >= this.graceMs) {
      this.setState('closed');
      this.opts.onFinal(code);
      return;
    }
    const delay = RETRY_DELAYS_MS[Math.min(this.retry, RETRY_DELAYS_MS.length - 1)] ?? 2_000;
    this.retry++;
    this.retryTimer = this.setTimer(() => this.attempt(true), Math.min(delay, this.graceMs - elapsed));
  }

  private cancelRetry(): void {
    if (this.retryTimer !== null) this.clearTimer(this.retryTimer);
    this.retryTimer = null;
  }

  private clearOpenTimer(): void {
    if (this.openTimer !== null) this.clearTimer(this.openTimer);
    this.openTimer = null;
  }

  private setState(state: SocketState): void {
    if (this.state === state) return;
    this.state = state;
    this.opts.onState(state);
  }
}

function detach(ws: WebSocket): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}
