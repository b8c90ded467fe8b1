// ICE servers as the contract sends them, in the shape RTCPeerConnection takes,
// and the authenticated fetch of fresh ones (TURN credentials expire).
import { IceServersResponse, parseObject } from '@dyad/protocol';
import type { IceServer } from '@dyad/protocol';

const ICE_FETCH_TIMEOUT_MS = 3_000;

export const toRtcIceServers = (list: readonly IceServer[]): RTCIceServer[] =>
  list.map((s) => ({
    urls: s.urls,
    ...(s.username !== undefined ? { username: s.username } : {}),
    ...(s.credential !== undefined ? { credential: s.credential } : {}),
  }));

/** GET /ice-servers with the session's token; null when it cannot be had (the link keeps its servers). */
export async function fetchIceServers(
  matchingUrl: string,
  token: string,
  doFetch: typeof fetch = fetch,
): Promise<RTCIceServer[] | null> {
  try {
    const res = await doFetch(`${matchingUrl}/ice-servers`, {
      headers: { Authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(ICE_FETCH_TIMEOUT_MS),
    });
    if (!res.ok) return null;
    const parsed = parseObject(IceServersResponse, await res.json());
    return parsed.ok ? toRtcIceServers(parsed.value.ice_servers) : null;
  } catch {
    return null;
  }
}
