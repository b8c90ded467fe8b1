// HTTP/1.1 over a bare node:net socket, for requests that node:http refuses to
// send (broken framing, bytes not allowed in headers, broken WebSocket
// handshakes) and to read the answer exactly as the server wrote it.
import net from 'node:net';

const EXCHANGE_TIMEOUT_MS = 3_000;
const HEAD_END = Buffer.from('\r\n\r\n');

export interface RawResponse {
  statusLine: string;
  status: number;
  /** Header lines as sent, in order. */
  headerLines: string[];
  /** Lower-cased name -> values, in order. */
  headers: Map<string, string[]>;
  body: Buffer;
}

/**
 * A response, or a connection the server closed having sent `received` (no
 * complete response; an interim 100 Continue not counted), with a reset
 * (RST) or not.
 */
export type RawOutcome = { kind: 'response'; response: RawResponse } | { kind: 'closed'; received: Buffer; reset: boolean };

export interface RawOptions {
  /** The answer to HEAD has no body whatever its Content-Length says. */
  head?: boolean;
  /** Half-close after writing, for a request left incomplete on purpose. */
  endAfterWrite?: boolean;
  timeoutMs?: number;
}

/** Sends `bytes` to host:port of `url` and reads one response (a 100 Continue is passed over). */
export function rawExchange(url: string, bytes: Buffer, opts: RawOptions = {}): Promise<RawOutcome> {
  const { hostname, port } = new URL(url);
  const timeoutMs = opts.timeoutMs ?? EXCHANGE_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    let settled = false;
    const socket = net.connect(Number(port), hostname, () => {
      socket.write(bytes);
      if (opts.endAfterWrite) socket.end();
    });
    const finish = (outcome: RawOutcome | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const timer = setTimeout(
      () => finish(new Error(`no complete answer within ${timeoutMs} ms; got ${JSON.stringify(received.toString('latin1').slice(0, 200))}`)),
      timeoutMs,
    );
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const response = parseResponse(received, opts.head ?? false, false);
      if (response) finish({ kind: 'response', response });
    });
    let reset = false;
    // A reset after the server answered is still an answer.
    socket.on('error', (err: NodeJS.ErrnoException) => (reset ||= err.code === 'ECONNRESET'));
    socket.on('close', () => {
      const response = parseResponse(received, opts.head ?? false, true);
      finish(response ? { kind: 'response', response } : { kind: 'closed', received: withoutContinues(received), reset });
    });
  });
}

/** One complete response at the start of `buf`, or undefined while incomplete (or malformed). */
function parseResponse(buf: Buffer, head: boolean, closed: boolean): RawResponse | undefined {
  let start = 0;
  for (;;) {
    const end = buf.indexOf(HEAD_END, start);
    if (end < 0) return undefined;
    const [statusLine = '', ...headerLines] = buf.subarray(start, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (!m) return undefined;
    const status = Number(m[1]);
    const headers = new Map<string, string[]>();
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      if (colon <= 0) return undefined;
      const name = line.slice(0, colon).toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
    }
    const bodyStart = end + HEAD_END.length;
    if (status === 100) {
      start = bodyStart;
      continue;
    }
    const response = (body: Buffer): RawResponse => ({ statusLine, status, headerLines, headers, body });
    if (head || (status >= 101 && status < 200) || status === 204 || status === 304) return response(Buffer.alloc(0));
    const length = headers.get('content-length');
    if (length) {
      const n = Number(length[0]);
      if (!Number.isInteger(n) || n < 0) return undefined;
      return buf.length - bodyStart >= n ? response(buf.subarray(bodyStart, bodyStart + n)) : undefined;
    }
    if (headers.get('transfer-encoding')?.some((v) => v.toLowerCase() === 'chunked')) {
      const body = dechunk(buf.subarray(bodyStart));
      return body ? response(body) : undefined;
    }
    return closed ? response(buf.subarray(bodyStart)) : undefined;
  }
}

/** `buf` without the interim `100 Continue` responses it starts with. */
function withoutContinues(buf: Buffer): Buffer {
  let rest = buf;
  while (/^HTTP\/1\.[01] 100 /.test(rest.subarray(0, 16).toString('latin1'))) {
    const end = rest.indexOf(HEAD_END);
    if (end < 0) break;
    rest = rest.subarray(end + HEAD_END.length);
  }
  return rest;
}

/** A complete chunked body, decoded, or undefined while incomplete. */
function dechunk(buf: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isInteger(size)) return undefined;
    if (size === 0) return buf.indexOf(HEAD_END, eol) === eol ? Buffer.concat(parts) : undefined;
    if (buf.length < eol + 2 + size + 2) return undefined;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}
