// The pairing rules of the contract, as pure functions over plain data, so
// every store applies the same ones (PROTOCOL.md, "Pairing rules" and
// "Interest and language fallback").

export interface Candidate {
  id: string;
  interests: readonly string[];
  lang: string | undefined;
  /** When it last entered the pool (first open or `next`): starts the interest timeout. */
  enteredAt: number;
  /** Since when it has waited, for fairness (a resumption keeps it). */
  waitingSince: number;
}

export interface PairingPolicy {
  interestTimeoutMs: number;
  fairWaitMs: number;
}

/** Does `a` accept `b` now? Its interests and lang narrow pairing until its timeout runs out. */
export function accepts(a: Candidate, b: Candidate, now: number, policy: PairingPolicy): boolean {
  if (now - a.enteredAt >= policy.interestTimeoutMs) return true;
  if (a.lang !== undefined && a.lang !== b.lang) return false;
  if (a.interests.length > 0 && commonInterests(a, b).length === 0) return false;
  return true;
}

export const mutuallyAccept = (a: Candidate, b: Candidate, now: number, policy: PairingPolicy): boolean =>
  accepts(a, b, now, policy) && accepts(b, a, now, policy);

export function commonInterests(a: Pick<Candidate, 'interests'>, b: Pick<Candidate, 'interests'>): string[] {
  if (a.interests.length === 0 || b.interests.length === 0) return [];
  const theirs = new Set(b.interests);
  return a.interests.filter((i) => theirs.has(i));
}

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
  const sharing = seeker.interests.length > 0 ? pool.filter((c) => commonInterests(seeker, c).length > 0) : [];
  const from = sharing.length > 0 ? sharing : pool;
  return from[Math.floor(random() * from.length)];
}
