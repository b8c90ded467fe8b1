// A bench client socket: open a WebSocket and await its events by name, each
// within a bounded wait (an event that came earlier is found at once).
import WebSocket from 'ws';

export type Msg = { event: string; [k: string]: unknown };

export interface EventSocket {
  ws: WebSocket;
  /** Resolves on open; rejects when the upgrade is refused. */
  opened: Promise<void>;
  when(event: string): Promise<Msg>;
}

export function eventSocket(url: string, waitMs: number): EventSocket {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const got: Msg[] = [];
  const waiters: { event: string; resolve: (m: Msg) => void }[] = [];
  ws.on('error', () => undefined);
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as Msg;
    got.push(msg);
    for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i]?.event === msg.event) waiters.splice(i, 1)[0]?.resolve(msg);
  });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`${url}: HTTP ${res.statusCode}`)));
  });
  opened.catch(() => undefined);
  const when = (event: string): Promise<Msg> => {
    const seen = got.find((m) => m.event === event);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${url}: no ${event} within ${waitMs} ms`)), waitMs);
      waiters.push({
        event,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
      });
    });
  };
  return { ws, opened, when };
}

/** Close with 1000 and resolve once the socket is closed (at once when it already is). */
export const closeSocket = (ws: WebSocket): Promise<void> =>
  new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    ws.close(1000);
  });
