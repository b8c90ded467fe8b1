// Where the services live. The web role serves /config.json with http(s) URLs;
// sockets use the same host with the ws(s) scheme.

export type NudityMode = 'off' | 'blur-until-checked' | 'blur-on-detect';

/** How this browser guards its viewer against nudity in the stranger's video (issue 13); the operator's NUDITY_* settings. */
export interface NuditySettings {
  readonly mode: NudityMode;
  /** A frame whose nudity score (0-1) is at least this is flagged. */
  readonly threshold: number;
  /** At most one frame classified per this many ms (more when the device is slow). */
  readonly intervalMs: number;
}

/** The server's defaults, for a /config.json that lacks (or garbles) the fields. */
export const DEFAULT_NUDITY: NuditySettings = Object.freeze({ mode: 'blur-on-detect', threshold: 0.7, intervalMs: 500 });
const NUDITY_MODES: ReadonlySet<unknown> = new Set<NudityMode>(['off', 'blur-until-checked', 'blur-on-detect']);
const MIN_CHECK_INTERVAL_MS = 100;

export interface ClientConfig {
  /** Base URL of the matching service, e.g. http://127.0.0.1:8000 (no trailing slash). */
  readonly matchingUrl: string;
  /** Base URL of the signalling service (no trailing slash). */
  readonly signallingUrl: string;
  /** When the matching service asks for a proof of work (absent from an older server: ask it, GET /pow says). */
  readonly pow?: 'always' | 'above-rate' | 'off';
  /** Whether the server pairs by region (REGION_FILTER); absent (an older server): true, the choice costs nothing there. */
  readonly regionFilter?: boolean;
  /** Always set by loadConfig(); absent (a session made by hand, as in tests): DEFAULT_NUDITY. */
  readonly nudity?: NuditySettings;
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
  return { matchingUrl: `${scheme}://${host}:8000`, signallingUrl: `${scheme}://${host}:8001`, nudity: DEFAULT_NUDITY };
}

/** Each field on its own: one the client does not understand falls back to the default, not the whole filter to off. */
function parseNudity(body: Record<string, unknown>): NuditySettings {
  const { nudity_filter, nudity_threshold, nudity_check_interval_ms } = body;
  return {
    mode: NUDITY_MODES.has(nudity_filter) ? (nudity_filter as NudityMode) : DEFAULT_NUDITY.mode,
    threshold:
      typeof nudity_threshold === 'number' && nudity_threshold >= 0 && nudity_threshold <= 1
        ? nudity_threshold
        : DEFAULT_NUDITY.threshold,
    intervalMs:
      typeof nudity_check_interval_ms === 'number' && nudity_check_interval_ms >= MIN_CHECK_INTERVAL_MS
        ? nudity_check_interval_ms
        : DEFAULT_NUDITY.intervalMs,
  };
}

export function parseConfig(body: unknown): ClientConfig | null {
  if (typeof body !== 'object' || body === null) return null;
  const fields = body as Record<string, unknown>;
  const { matching_url, signalling_url, pow, region_filter } = fields;
  if (typeof matching_url !== 'string' || typeof signalling_url !== 'string') return null;
  if (!/^https?:\/\//i.test(matching_url) || !/^https?:\/\//i.test(signalling_url)) return null;
  const mode = pow === 'always' || pow === 'above-rate' || pow === 'off' ? { pow: pow as NonNullable<ClientConfig['pow']> } : {};
  const region = typeof region_filter === 'boolean' ? { regionFilter: region_filter } : {};
  return { matchingUrl: trimSlash(matching_url), signallingUrl: trimSlash(signalling_url), ...mode, ...region, nudity: parseNudity(fields) };
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
