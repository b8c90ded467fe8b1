// The embedded store's waiting sessions of one mode, indexed by what narrows
// each (its interests, lang and wanted place), so that a pairing attempt reads
// only where a partner can be: the Redis store's index (lua/sessions.ts, "pool
// index") in memory. A crowd that accepts nobody (each narrowed by interests
// no one else names) is then read by nobody's attempt but its own members',
// and each of those reads the few sessions that share its interests (fourth
// review, finding P1).
import { narrows, type Candidate } from '../core/rules.js';

/** A waiting session as the index sees it: its place in pool order is `poolSeq` (set on entry). */
export interface Pooled extends Candidate {
  poolSeq: number;
}

/** Sets of ids under keys, a key gone with its last id. */
class Keyed {
  private readonly sets = new Map<string, Set<string>>();

  add(key: string, id: string): void {
    let ids = this.sets.get(key);
    if (!ids) this.sets.set(key, (ids = new Set()));
    ids.add(id);
  }

  delete(key: string, id: string): void {
    const ids = this.sets.get(key);
    if (ids?.delete(id) && ids.size === 0) this.sets.delete(key);
  }

  get(key: string | undefined): Set<string> | undefined {
    return key === undefined ? undefined : this.sets.get(key);
  }

  /** The sum of the sizes of the sets under `keys`. */
  count(keys: readonly string[]): number {
    let n = 0;
    for (const k of keys) n += this.sets.get(k)?.size ?? 0;
    return n;
  }
}

/**
 * Where a seeker's partners can be: each set in pool order (ids are added as
 * sessions enter the pool, and taken out as they leave it). `runOut`: the
 * set of narrowed sessions, of which only the front ones, whose narrowing has
 * run out, accept anyone (the caller stops reading it at the first that has not).
 */
export interface Sources {
  sets: Set<string>[];
  runOut?: Set<string>;
}

/**
 * Each waiting session is in:
 * - `plain` if nothing narrows it (it accepts anyone), or `narrowing` if
 *   something does (in the order they entered: those whose narrowing has run
 *   out are at the front);
 * - one set per interest, its lang's and its wanted place's, if it names them;
 * - its country's and its region's, if they are known.
 * A session's entry in these never changes while it waits: what narrows it is
 * fixed at registration, and only whether that still holds changes with time.
 */
export class PoolIndex {
  /** Every waiting session of the mode, in pool order. */
  readonly all = new Set<string>();
  private readonly plain = new Set<string>();
  private readonly narrowing = new Set<string>();
  private readonly interest = new Keyed();
  private readonly lang = new Keyed();
  private readonly wants = new Keyed();
  private readonly place = new Keyed();

  add(c: Pooled): void {
    this.all.add(c.id);
    if (!narrows(c)) this.plain.add(c.id);
    else this.narrowing.add(c.id);
    for (const i of c.interests) this.interest.add(i, c.id);
    if (c.lang !== undefined) this.lang.add(c.lang, c.id);
    if (c.wants !== undefined) this.wants.add(c.wants, c.id);
    if (c.country !== undefined) this.place.add(c.country, c.id);
    if (c.area !== undefined) this.place.add(c.area, c.id);
  }

  /** Take `c` out; false when it was not in. */
  delete(c: Pooled): boolean {
    if (!this.all.delete(c.id)) return false;
    if (!this.plain.delete(c.id)) this.narrowing.delete(c.id);
    for (const i of c.interests) this.interest.delete(i, c.id);
    if (c.lang !== undefined) this.lang.delete(c.lang, c.id);
    if (c.wants !== undefined) this.wants.delete(c.wants, c.id);
    if (c.country !== undefined) this.place.delete(c.country, c.id);
    if (c.area !== undefined) this.place.delete(c.area, c.id);
    return true;
  }

  /**
   * The sets that hold every waiting session that `seeker` and that accept each
   * other (core/rules.ts `accepts`), and few others; `narrowed`: whether the
   * seeker's own narrowing still holds.
   */
  sources(seeker: Candidate, narrowed: boolean): Sources {
    const sets: (Set<string> | undefined)[] = [];
    if (!narrowed) {
      // It accepts anyone. Those nothing narrows, those whose narrowing ran
      // out, and of the narrowed ones those whose narrowing it passes: each of
      // those shares one of its interests if it names any, else has its lang
      // if it names one, else wants a place the seeker is in.
      sets.push(this.plain);
      for (const i of seeker.interests) sets.push(this.interest.get(i));
      sets.push(this.lang.get(seeker.lang), this.wants.get(seeker.country), this.wants.get(seeker.area));
      return { sets: present(sets), runOut: this.narrowing };
    }
    // Narrowed: whoever it accepts shares one of its interests, has its lang and
    // is in its place, each that it names, so lies in every one of these
    // families; the smallest is read.
    const families: { keyed: Keyed; keys: string[] }[] = [];
    if (seeker.interests.length > 0) families.push({ keyed: this.interest, keys: [...seeker.interests] });
    if (seeker.lang !== undefined) families.push({ keyed: this.lang, keys: [seeker.lang] });
    if (seeker.wants !== undefined) families.push({ keyed: this.place, keys: [seeker.wants] });
    let best = families[0];
    if (best === undefined) return { sets: [] };
    let least = families.length > 1 ? best.keyed.count(best.keys) : 0;
    for (const f of families.slice(1)) {
      const n = f.keyed.count(f.keys);
      if (n < least) [best, least] = [f, n];
    }
    const keyed = best.keyed;
    return { sets: present(best.keys.map((k) => keyed.get(k))) };
  }
}

const present = (sets: (Set<string> | undefined)[]): Set<string>[] => sets.filter((s): s is Set<string> => s !== undefined && s.size > 0);

/**
 * The ids of `sources` in pool order, each once, for as long as the caller
 * reads: a merge of sets that are each in pool order. `order` gives an id's
 * place (undefined: not waiting, skipped); `runOut` is read only while `hasRunOut`
 * says yes of its front.
 */
export function* inPoolOrder(
  sources: Sources,
  order: (id: string) => number | undefined,
  hasRunOut: (id: string) => boolean,
): Generator<string> {
  const its: { it: Iterator<string>; id: string; seq: number; runOut: boolean }[] = [];
  const next = (h: (typeof its)[number]): boolean => {
    for (;;) {
      const r = h.it.next();
      if (r.done) return false;
      const seq = order(r.value);
      if (seq === undefined) continue;
      if (h.runOut && !hasRunOut(r.value)) return false;
      h.id = r.value;
      h.seq = seq;
      return true;
    }
  };
  const open = (set: Set<string>, runOut: boolean): void => {
    const h = { it: set.values(), id: '', seq: 0, runOut };
    if (next(h)) its.push(h);
  };
  for (const s of sources.sets) open(s, false);
  if (sources.runOut) open(sources.runOut, true);
  let last = -Infinity;
  while (its.length > 0) {
    let at = 0;
    for (let k = 1; k < its.length; k++) if (its[k]!.seq < its[at]!.seq) at = k;
    const h = its[at]!;
    const { id, seq } = h;
    if (!next(h)) its.splice(at, 1);
    // The same id in two sets comes out of both at once, in order: once.
    if (seq === last) continue;
    last = seq;
    yield id;
  }
}
