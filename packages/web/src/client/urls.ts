// Where the client connects: the one-trip start and the resume URLs, and the
// preferences they carry, cleaned to what the contract accepts.
import { MAX_INTEREST_CHARS, MAX_INTERESTS, RegisterRequest, codePoints, normalizeInterests, parseObject } from '@dyad/protocol';
import type { Mode, Region } from '@dyad/protocol';
import { toWebSocketUrl } from './config.js';

export interface Preferences {
  readonly mode: Mode;
  readonly interests: readonly string[];
  /** A BCP 47 tag, or null for any language. */
  readonly lang: string | null;
  /** Whom to prefer by place (issue 17); absent: anywhere. */
  readonly region?: Region;
  /** Show this person's country's flag to the stranger; absent: no. */
  readonly showCountry?: boolean;
}

/** Interests as the contract accepts them: trimmed, no commas (the query separator), at most 10 of ≤ 32 chars. */
export function cleanInterests(list: readonly string[]): string[] {
  return normalizeInterests(list.map((s) => s.replace(/,/g, ' ')))
    .filter((s) => codePoints(s) <= MAX_INTEREST_CHARS)
    .slice(0, MAX_INTERESTS);
}

/** The one-trip start URL: registering and opening the matching socket in one request (with a solved proof of work when asked). */
export function oneTripUrl(matchingUrl: string, prefs: Preferences, altcha?: string): string {
  const query: string[] = [`mode=${prefs.mode}`];
  const interests = cleanInterests(prefs.interests);
  // Items are encoded one by one so the separating commas stay literal.
  if (interests.length > 0) query.push(`interests=${interests.map(encodeURIComponent).join(',')}`);
  const body = { mode: prefs.mode, interests, ...(prefs.lang ? { lang: prefs.lang } : {}) };
  if (prefs.lang && parseObject(RegisterRequest, body).ok) query.push(`lang=${encodeURIComponent(prefs.lang)}`);
  if (prefs.region && prefs.region !== 'anywhere') query.push(`region=${encodeURIComponent(prefs.region)}`);
  if (prefs.showCountry) query.push('show_country=true');
  // A solved proof of work, when the server asks for one (GET /pow).
  if (altcha) query.push(`altcha=${encodeURIComponent(altcha)}`);
  return `${toWebSocketUrl(matchingUrl)}/ws?${query.join('&')}`;
}

/** A socket of an existing session (matching or signalling), opened or reopened with its id and token. */
/** The matching socket of a session, reopened; `seen`: the room and seq of the stranger's last line shown (chat_seen), not sent again. */
export function resumeUrl(baseUrl: string, id: string, token: string, seen?: { room: string; seq: number }): string {
  const url = `${toWebSocketUrl(baseUrl)}/ws/${encodeURIComponent(id)}?token=${encodeURIComponent(token)}`;
  return seen && seen.seq > 0 ? `${url}&chat_seen=${encodeURIComponent(`${seen.room}:${seen.seq}`)}` : url;
}

/** Preferences that would register the same session: Start then re-queues it instead of registering anew. */
export const samePrefs = (a: Preferences, b: Preferences): boolean =>
  a.mode === b.mode &&
  (a.lang ?? '').toLowerCase() === (b.lang ?? '').toLowerCase() &&
  (a.region ?? 'anywhere') === (b.region ?? 'anywhere') &&
  (a.showCountry ?? false) === (b.showCountry ?? false) &&
  cleanInterests(a.interests).join(',') === cleanInterests(b.interests).join(',');
