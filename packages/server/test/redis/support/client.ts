// A small WebSocket client for multi-process tests: it keeps every message,
// and waits (bounded) for the next one matching a condition.
import assert from 'node:assert/strict';
import WebSocket from 'ws';

export type Msg = Record<string, unknown> & { event: string };

export const WAIT_MS = 5_000;

export class Sock {
  readonly msgs: Msg[] = [];
  /** Index of the first message not yet consumed by `next`/`waitFor`. */
  private cursor = 0;
  closed: { code: number; reason: string } | undefined;
  private wake: (() => void) | undefined;

  private constructor(
    readonly ws: WebSocket,
    readonly label: string,
  ) {
    ws.on('message', (data) => {
      this.msgs.push(JSON.parse(data.toString()) as Msg);
      this.poke();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.poke();
    });
    ws.on('error', () => undefined);
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Open a socket; an HTTP refusal rejects with its status in the message. */
  static open(url: string, label = url.replace(/token=[^&]*/, 'token=…')): Promise<Sock> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: WAIT_MS });
      const sock = new Sock(ws, label);
      ws.once('open', () => resolve(sock));
      ws.once('unexpected-response', (_req, res) => {
        reject(new Error(`${label}: upgrade refused with HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.once('error', (err) => reject(new Error(`${label}: ${err.message}`)));
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(msg: object): void {
    this.ws.send(JSON.stringify(msg));
  }

  /** The next unconsumed message that satisfies `pred` (others before it are skipped). */
  async waitFor(pred: (m: Msg) => boolean, what: string, timeoutMs = WAIT_MS): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.msgs.length) {
        const m = this.msgs[this.cursor++] as Msg;
        if (pred(m)) return m;
      }
      if (this.closed) assert.fail(`${this.label}: expected ${what}, the socket closed (${this.closed.code}) after ${JSON.stringify(this.msgs.slice(-5))}`);
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`${this.label}: expected ${what} within ${timeoutMs} ms; last messages ${JSON.stringify(this.msgs.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** The next unconsumed message must be `event`. */
  async next(event: string, timeoutMs = WAIT_MS): Promise<Msg> {
    const m = await this.waitFor(() => true, `"${event}"`, timeoutMs);
    assert.equal(m.event, event, `${this.label}: expected "${event}", got ${JSON.stringify(m)}`);
    return m;
  }

  async event(event: string, timeoutMs = WAIT_MS): Promise<Msg> {
    return this.waitFor((m) => m.event === event, `"${event}"`, timeoutMs);
  }

  /** Resolves with the close, failing if none comes in time. */
  async closedWith(timeoutMs = WAIT_MS): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) assert.fail(`${this.label}: expected a close within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.closed;
  }

  close(code = 1000): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
  }

  terminate(): void {
    this.ws.terminate();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `check` until it returns a value other than undefined, or fail after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = WAIT_MS, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`expected ${what} within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
