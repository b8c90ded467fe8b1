// Plain node:http requests, so tests control every header (fetch would refuse
// or rewrite some, such as Origin) and see the status and body as sent.
import http from 'node:http';

const REQUEST_TIMEOUT_MS = 5_000;

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON; throws with the raw text when it is not JSON. */
  json(): unknown;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  agent?: http.Agent;
  /** The address to connect from (one routed to loopback: e2e/ipv6.e2e.test.ts); default: the system's choice. */
  localAddress?: string;
}

export function request(url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  let payload: string | undefined;
  if (opts.body !== undefined) {
    payload = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json';
    }
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers, agent: opts.agent, localAddress: opts.localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          json: () => {
            try {
              return JSON.parse(text) as unknown;
            } catch {
              throw new Error(`expected a JSON body from ${opts.method ?? 'GET'} ${url}, got: ${text.slice(0, 300)}`);
            }
          },
        });
      });
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () =>
      req.destroy(new Error(`${opts.method ?? 'GET'} ${url}: no answer within ${REQUEST_TIMEOUT_MS} ms`)),
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Describes a response in one line for assertion messages (never includes tokens). */
export function describeResponse(res: HttpResponse): string {
  return `HTTP ${res.status} ${res.text.replace(/"token"\s*:\s*"[^"]*"/g, '"token":"…"').slice(0, 300)}`;
}
