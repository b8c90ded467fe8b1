// Who is asking, and may they: client address (as a keyed hash only) and the
// Origin allow-list.
import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Client address as seen by us, or the forwarded one behind a trusted proxy:
 * the last X-Forwarded-For entry, the one our proxy wrote. Entries before it
 * are whatever the client sent, so a proxy that appends instead of
 * overwriting cannot be used to pick a new address per request.
 */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const fwd = req.headers['x-forwarded-for'];
    const last = (Array.isArray(fwd) ? fwd.join(',') : fwd)
      ?.split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .at(-1);
    if (last) return last;
  }
  return req.socket.remoteAddress ?? 'unknown';
}

/**
 * Addresses are kept only as keyed hashes. The key is per process unless
 * ADDRESS_HASH_KEY is given (processes sharing a Redis must share it).
 */
export class AddressHasher {
  private readonly key: Buffer;
  constructor(key?: string) {
    this.key = key ? Buffer.from(key) : randomBytes(32);
  }
  hash(address: string): string {
    return createHmac('sha256', this.key).update(address).digest('base64url').slice(0, 22);
  }
}

const hostname = (hostHeader: string | undefined): string | undefined => {
  if (!hostHeader) return undefined;
  try {
    return new URL(`http://${hostHeader}`).hostname;
  } catch {
    return undefined;
  }
};

/**
 * Names that always mean this machine: `localhost` and its subdomains (RFC
 * 6761), 127.0.0.0/8 and ::1. A DNS-rebinding page has a name of its own
 * choosing, never one of these, so it cannot pass the default Origin rule.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Only web pages served over http(s) may open our sockets: not file:, extensions or other schemes. */
const WEB_SCHEMES: ReadonlySet<string> = new Set(['http:', 'https:']);

/**
 * Is this Origin allowed? Absent: yes (not a browser). With an allow-list:
 * exactly those. Without one (local development, listening on loopback only):
 * an http(s) page on the same loopback host as the request, any port.
 */
export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (allowed.length > 0) return allowed.includes(origin);
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  return WEB_SCHEMES.has(url.protocol) && isLoopbackHost(url.hostname) && url.hostname === hostname(req.headers.host);
}
