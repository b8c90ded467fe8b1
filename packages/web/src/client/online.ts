// How many people are on the deployment (GET /online on the matching service):
// aggregates only, for the landing and waiting screens.
import { OnlineResponse, parseObject } from '@dyad/protocol';

/** How often an open landing or waiting screen asks again; the server keeps its answer about a second. */
export const ONLINE_POLL_MS = 15_000;
const ONLINE_FETCH_TIMEOUT_MS = 3_000;

/** The counts, or null when they cannot be had (the screen then shows none). */
export async function fetchOnline(matchingUrl: string, doFetch: typeof fetch = fetch): Promise<OnlineResponse | null> {
  try {
    const res = await doFetch(`${matchingUrl}/online`, { signal: AbortSignal.timeout(ONLINE_FETCH_TIMEOUT_MS) });
    if (!res.ok) return null;
    const parsed = parseObject(OnlineResponse, await res.json());
    return parsed.ok ? parsed.value : null;
  } catch {
    return null;
  }
}
