// Where the services live. The web role serves /config.json with http(s) URLs;
// sockets use the same host with the ws(s) scheme.

export interface ClientConfig {
  /** Base URL of the matching service, e.g. http://127.0.0.1:8000 (no trailing slash). */
  readonly matchingUrl: string;
  /** Base URL of the signalling service (no trailing slash). */
  readonly signallingUrl: string;
  /** When the matching service asks for a proof of work (absent from an older server: ask it, GET /pow says). */
  readonly pow?: 'always' | 'above-rate' | 'off';
}

const CONFIG_TIMEOUT_MS = 5_000;

const trimSlash = (url: string): string => url.replace(/\/+$/, '');

/** http → ws, https → wss; anything else is returned unchanged. */
export function toWebSocketUrl(httpUrl: string): string {
  return trimSlash(httpUrl).replace(/^http(s?):\/\//i, (_m, s: string) => `ws${s}://`);
}

/** Used when /config.json is missing (the Vite dev server): the services on their default ports of this host. */
export function defaultConfig(location: Pick<Location, 'protocol' | 'hostname'>): ClientConfig {
  const scheme = location.protocol === 'https:' ? 'https' : 'http';
  const host = location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname;
  return { matchingUrl: `${scheme}://${host}:8000`, signallingUrl: `${scheme}://${host}:8001` };
}

export function parseConfig(body: unknown): ClientConfig | null {
  if (typeof body !== 'object' || body === null) return null;
  const { matching_url, signalling_url, pow } = body as Record<string, unknown>;
  if (typeof matching_url !== 'string' || typeof signalling_url !== 'string') return null;
  if (!/^https?:\/\//i.test(matching_url) || !/^https?:\/\//i.test(signalling_url)) return null;
  const mode = pow === 'always' || pow === 'above-rate' || pow === 'off' ? { pow: pow as NonNullable<ClientConfig['pow']> } : {};
  return { matchingUrl: trimSlash(matching_url), signallingUrl: trimSlash(signalling_url), ...mode };
}

export async function loadConfig(fetchImpl: typeof fetch = fetch): Promise<ClientConfig> {
  const fallback = defaultConfig(window.location);
  try {
    const res = await fetchImpl('/config.json', {
      cache: 'no-store',
      signal: AbortSignal.timeout(CONFIG_TIMEOUT_MS),
    });
    if (!res.ok) return fallback;
    return parseConfig(await res.json()) ?? fallback;
  } catch {
    return fallback;
  }
}
