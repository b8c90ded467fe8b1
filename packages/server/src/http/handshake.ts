// The checks `ws` makes of a WebSocket upgrade request (RFC 6455 section 4.2.1),
// made before a service does any work for it: a one-trip start must not
// create a session for a handshake that is bound to fail, and the refusal
// should be the contract's JSON like every other.

/** A Sec-WebSocket-Key is 16 random bytes in base64 (RFC 6455 section 4.1). */
const KEY = /^[+/0-9A-Za-z]{22}==$/;
const VERSIONS: ReadonlySet<string> = new Set(['13', '8']);
/** What a refusal of any other version names (RFC 6455 section 4.2.2: 426 and the versions understood). */
const VERSIONS_UNDERSTOOD = [...VERSIONS].join(', ');
/** A subprotocol name is an RFC 9110 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A Sec-WebSocket-Protocol list as `ws` accepts it: tokens, comma-separated, no repeats. */
const validProtocols = (value: string): boolean => {
  const names = value.split(',').map((s) => s.replace(/^[ \t]+|[ \t]+$/g, ''));
  return names.every((n) => TOKEN.test(n)) && new Set(names).size === names.length;
};

export interface HandshakeRequest {
  method?: string | undefined;
  headers: Record<string, string | string[] | undefined>;
}

/** Why an upgrade request cannot become a WebSocket: the status, message and any headers of its refusal. */
export interface HandshakeProblem {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/** Why this upgrade request cannot become a WebSocket, or undefined when it can. */
export function handshakeProblem(req: HandshakeRequest): HandshakeProblem | undefined {
  const header = (name: string): string | undefined => {
    const v = req.headers[name];
    return Array.isArray(v) ? undefined : v;
  };
  if (req.method !== 'GET') return { status: 400, message: 'a WebSocket upgrade must use GET' };
  if (header('upgrade')?.toLowerCase() !== 'websocket') return { status: 400, message: 'invalid Upgrade header' };
  if (!KEY.test(header('sec-websocket-key') ?? '')) return { status: 400, message: 'missing or invalid Sec-WebSocket-Key header' };
  const version = header('sec-websocket-version')?.trim() ?? '';
  if (!VERSIONS.has(version)) {
    // A version given that this server does not speak is answered as RFC 6455 asks: 426, naming the ones it does.
    return /^\d+$/.test(version)
      ? { status: 426, message: `this Sec-WebSocket-Version is not supported (${VERSIONS_UNDERSTOOD} are)`, headers: { 'Sec-WebSocket-Version': VERSIONS_UNDERSTOOD } }
      : { status: 400, message: 'missing or invalid Sec-WebSocket-Version header' };
  }
  const protocols = header('sec-websocket-protocol');
  if (protocols !== undefined && !validProtocols(protocols)) return { status: 400, message: 'invalid Sec-WebSocket-Protocol header' };
  return undefined;
}
