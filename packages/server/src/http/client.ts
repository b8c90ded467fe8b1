// Who is asking, and may they: client address (as a keyed hash only) and the
// Origin allow-list.
import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';

/** What a socket whose peer address is gone (closed already) counts as. */
export const UNKNOWN_ADDRESS = 'unknown';

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
  return req.socket.remoteAddress ?? UNKNOWN_ADDRESS;
}

/**
 * What an address counts as for every per-address limit, ban, report and
 * block: an IPv4 address itself (also when written IPv4-mapped, ::ffff:a.b.c.d,
 * as a dual-stack listener sees it); an IPv6 address as its network of
 * `ipv6PrefixLength` bits (IPV6_PREFIX_LENGTH). One subscriber holds a whole
 * /64 (often a /56 or /48), 2^64 addresses, so keyed by the address itself an
 * attacker would get endless allowances and walk past any ban; a /64 is what
 * one IPv4 address is for a household behind NAT. A forwarded entry written
 * with a port (a.b.c.d:port, [v6]:port) or in brackets counts as its address:
 * some proxies write the client's port, which would otherwise make each
 * connection an address of its own. Anything else that is not an address
 * counts as one address, UNKNOWN_ADDRESS.
 */
export function addressKey(address: string, ipv6PrefixLength: number): string {
  if (isIPv4(address)) return address;
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.process(withoutPort(address));
  } catch {
    return UNKNOWN_ADDRESS;
  }
  if (ip.kind() === 'ipv4') return ip.toString();
  const bytes = ip.toByteArray().map((byte, i) => byte & (0xff00 >> Math.min(8, Math.max(0, ipv6PrefixLength - 8 * i))));
  const network = ipaddr.fromByteArray(bytes).toString();
  return ipv6PrefixLength >= 128 ? network : `${network}/${ipv6PrefixLength}`;
}

/** `a.b.c.d:port` → `a.b.c.d`; `[v6]:port` and `[v6]` → `v6`; anything else as it is. */
function withoutPort(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed) return bracketed[1]!;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(address);
  return v4 ? v4[1]! : address;
}

/**
 * Addresses are kept only as keyed hashes, of their key above (an IPv6
 * address: of its network). The key is per process unless ADDRESS_HASH_KEY
 * is given (processes sharing a Redis must share it, and IPV6_PREFIX_LENGTH).
 */
export class AddressHasher {
  private readonly key: Buffer;
  constructor(
    key: string | undefined,
    private readonly ipv6PrefixLength: number,
  ) {
    this.key = key ? Buffer.from(key) : randomBytes(32);
  }
  /** The keyed hash of a client address (its key: addressKey). */
  hash(address: string): string {
    return this.hashText(addressKey(address, this.ipv6PrefixLength));
  }
  /** The keyed hash of any other text (a legacy protocol's token or match id, made of an address hash and names). */
  hashText(text: string): string {
    return createHmac('sha256', this.key).update(text).digest('base64url').slice(0, 22);
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
