// The pairing rules of the contract, as pure functions over plain data, so
// every store applies the same ones (PROTOCOL.md, "Pairing rules" and
// "Interest and language fallback").

export interface Candidate {
  id: string;
  interests: readonly string[];
  lang: string | undefined;
  /** Country of its address (ISO 3166-1 alpha-2), when known: only the code, never the address (issue 17). */
  country?: string;
  /** The region (continent) that country lies in. */
  area?: string;
  /**
   * The place it prefers, resolved from its `region` choice at registration:
   * a country code (`near`) or a region; absent: anywhere.
   */
  wants?: string;
  /** When it last entered the pool (first open or `next`): starts the interest timeout. */
  enteredAt: number;
  /** Since when it has waited, for fairness (a resumption keeps it). */
  waitingSince: number;
}

export interface PairingPolicy {
  interestTimeoutMs: number;
  fairWaitMs: number;
}

/** Does `c` lie in `place` (a country code or a region)? Absent: anywhere, so yes. */
export const inPlace = (place: string | undefined, c: Pick<Candidate, 'country' | 'area'>): boolean =>
  place === undefined || place === c.country || place === c.area;

/** Is `c` narrowed by something (interests, lang, region) while its timeout runs? */
export const narrows = (c: Pick<Candidate, 'interests' | 'lang' | 'wants'>): boolean =>
  c.interests.length > 0 || c.lang !== undefined || c.wants !== undefined;

/** Does `a` accept `b` now? Its interests, lang and region narrow pairing until its timeout runs out. */
export function accepts(a: Candidate, b: Candidate, now: number, policy: PairingPolicy): boolean {
  if (now - a.enteredAt >= policy.interestTimeoutMs) return true;
  if (a.lang !== undefined && a.lang !== b.lang) return false;
  if (!inPlace(a.wants, b)) return false;
  if (a.interests.length > 0 && !sharesInterest(a, b)) return false;
  return true;
}

/**
 * Do `a` and `b` share an interest? As `commonInterests(a, b).length > 0`,
 * without making a set and a list: a pairing attempt asks it of every
 * candidate it looks at (at most 10 interests a side).
 */
export function sharesInterest(a: Pick<Candidate, 'interests'>, b: Pick<Candidate, 'interests'>): boolean {
  for (const i of a.interests) if (b.interests.includes(i)) return true;
  return false;
}

export const mutuallyAccept = (a: Candidate, b: Candidate, now: number, policy: PairingPolicy): boolean =>
  accepts(a, b, now, policy) && accepts(b, a, now, policy);

export function commonInterests(a: Pick<Candidate, 'interests'>, b: Pick<Candidate, 'interests'>): string[] {
  if (a.interests.length === 0 || b.interests.length === 0) return [];
  const theirs = new Set(b.interests);
  return a.interests.filter((i) => theirs.has(i));
}

/**
 * The region both lie in, told to both on `matched`: never finer than a
 * region, so the country of someone who did not opt in to show it stays theirs.
 */
export const sharedArea = (a: Pick<Candidate, 'area'>, b: Pick<Candidate, 'area'>): string | undefined =>
  a.area !== undefined && a.area === b.area ? a.area : undefined;

/**
 * Choose a partner for `seeker` among `eligible` (already filtered for mode,
 * presence, blocks and mutual acceptance), oldest first.
 * - Those in the re-pair cooldown with the seeker count only when no one else is eligible.
 * - Fairness: the oldest one that has waited longer than FAIR_WAIT_MS goes first.
 * - Otherwise random, preferring those who share an interest with the seeker.
 */
export function choosePartner<C extends Candidate>(
  seeker: Candidate,
  eligible: readonly C[],
  inCooldown: (c: C) => boolean,
  now: number,
  policy: PairingPolicy,
  random: () => number = Math.random,
): C | undefined {
  if (eligible.length === 0) return undefined;
  const fresh = eligible.filter((c) => !inCooldown(c));
  const pool = fresh.length > 0 ? fresh : eligible;
  const oldest = pool.reduce((o, c) => (c.waitingSince < o.waitingSince ? c : o));
  if (now - oldest.waitingSince > policy.fairWaitMs) return oldest;
  const sharing = seeker.interests.length > 0 ? pool.filter((c) => sharesInterest(seeker, c)) : [];
  const from = sharing.length > 0 ? sharing : pool;
  return from[Math.floor(random() * from.length)];
}

// ------------------------------------------------------------ reports and bans
// (PROTOCOL.md "Reports"; docs/SECURITY.md "Reports and bans"). The Redis
// store's report script (store/redis/lua/transitions.ts) applies the same rules in Lua.

export interface ReportPolicy {
  /** A report counts only if the room with the reported lasted this long. */
  reportMinRoomMs: number;
  /** Counting reports that ban an address. */
  reportBanThreshold: number;
  /** How long a report is remembered; also how long a report or a ban taints the reported's own reports. */
  reportWindowMs: number;
  /** Length of a first ban. */
  banDurationMs: number;
  /** Longest ban, however many strikes. */
  banMaxMs: number;
  /** How long after a ban ends it still counts as a strike. */
  banStrikeWindowMs: number;
}

/** One reporter address's report of one address, as remembered. */
export interface ReportEntry {
  at: number;
  /** Room code of the conversation reported. */
  room: string;
  /** Whether it counts toward a ban (decided when it was made). */
  counts: boolean;
}

/** The last ban of an address, remembered for the strike window. */
export interface Strike {
  strike: number;
  until: number;
}

const fresh = (e: ReportEntry, now: number, policy: ReportPolicy): boolean => now - e.at <= policy.reportWindowMs;

/**
 * How long the two talked: the room's age at the report, or its whole length
 * when the report is of the last partner (`endedAt` given).
 */
export const talkedMs = (openedAt: number, endedAt: number | undefined, now: number): number => (endedAt ?? now) - openedAt;

/**
 * Is a reporter address in good standing to report `target`? Not while its
 * own last ban ended less than REPORT_WINDOW_MS ago, nor while counting
 * reports by anyone but `target` stand against it (so two people reporting
 * each other in one room do not cancel each other's report).
 */
export function inGoodStanding(
  against: Iterable<[reporter: string, entry: ReportEntry]>,
  strike: Strike | undefined,
  target: string,
  now: number,
  policy: ReportPolicy,
): boolean {
  if (strike && now - strike.until <= policy.reportWindowMs) return false;
  for (const [reporter, e] of against) if (reporter !== target && e.counts && fresh(e, now, policy)) return false;
  return true;
}

/** Does a report weigh toward a ban? Only after a real conversation, from a reporter in good standing. */
export const reportCounts = (talked: number, goodStanding: boolean, policy: ReportPolicy): boolean =>
  goodStanding && talked >= policy.reportMinRoomMs;

/** A reporter reports the same address again: a report that counts is not replaced by one that does not. */
export function keptReport(old: ReportEntry | undefined, next: ReportEntry, now: number, policy: ReportPolicy): ReportEntry {
  return old && old.counts && !next.counts && fresh(old, now, policy) ? old : next;
}

/** Reports that count toward a ban: fresh, counting, one per room (entries are one per reporter address already). */
export function countingReports(entries: Iterable<ReportEntry>, now: number, policy: ReportPolicy): number {
  const rooms = new Set<string>();
  for (const e of entries) if (e.counts && fresh(e, now, policy)) rooms.add(e.room);
  return rooms.size;
}

/** The strike number of a new ban: one more than the last if that ended less than BAN_STRIKE_WINDOW_MS ago. */
export const nextStrike = (last: Strike | undefined, now: number, policy: ReportPolicy): number =>
  last && now - last.until <= policy.banStrikeWindowMs ? last.strike + 1 : 1;

/** Length of the ban of strike `n` (1, 2, ...): BAN_DURATION_MS doubled per strike, at most BAN_MAX_MS. */
export const banLengthMs = (n: number, policy: ReportPolicy): number =>
  Math.min(policy.banMaxMs, policy.banDurationMs * 2 ** Math.min(Math.max(0, n - 1), 52));

/**
 * The window the per-address rates a store counts (NEXT_RATE_PER_MIN,
 * REGISTER_RATE_PER_MIN) count in: a minute from the address's first.
 */
export const RATE_WINDOW_MS = 60_000;

/** What one address did since `until - RATE_WINDOW_MS`. */
export interface RateWindow {
  n: number;
  until: number;
}

/**
 * Count one more from an address whose window is `w` (none, or one that has
 * ended: a new one starts now). Past `max` in the window it is refused (and
 * not counted): `retryMs` is how long until the window ends.
 */
export function countRate(w: RateWindow | undefined, now: number, max: number): { w: RateWindow; retryMs?: number } {
  const win = w && now < w.until ? w : { n: 0, until: now + RATE_WINDOW_MS };
  if (win.n >= max) return { w: win, retryMs: win.until - now };
  win.n++;
  return { w: win };
}

/**
 * A session's blocked sessions (every partner it blocked or reported, or was
 * blocked or reported by) are kept for as long as it lives, and one that
 * lives long can meet a great many. Each time the set grows to a multiple of
 * this, the ids of sessions that have ended are dropped from it: an ended
 * session never comes back, so nothing it did changes, and the set is held
 * to the sessions still alive plus this many at most.
 */
export const BLOCKED_PRUNE_EVERY = 256;
