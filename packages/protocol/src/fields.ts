// Field rules of the wire contract (PROTOCOL.md, "Common rules"). Lengths count
// Unicode code points, not UTF-16 units, so every length check goes through
// codePoints().
import { z } from 'zod';

export const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/** A string whose length in code points is within [min, max]. */
export const text = (min: number, max: number) =>
  z.string().refine((s) => {
    const n = codePoints(s);
    return n >= min && n <= max;
  }, `must be ${min === max ? `${min}` : `${min}-${max}`} characters long`);

/**
 * Lone UTF-16 surrogates (a JSON `\ud800` escape can carry one) replaced by
 * U+FFFD, as UTF-8 encoding would: text a server relays or compares is the
 * same whichever store holds it (Redis scripts cannot carry lone surrogates).
 */
export const wellFormed = (s: string): string => s.replace(/\p{Surrogate}/gu, '\uFFFD');

/**
 * Cuts every run of combining marks in a text to its first `kept`: no script
 * stacks more than a few, and a longer run costs Unicode normalization time
 * that grows with its square and stacks into a glyph no line can wrap.
 */
export function markRunCutter(kept: number): (text: string) => string {
  const run = new RegExp(`(\\p{M}{${kept}})\\p{M}+`, 'gu');
  return (text) => text.replace(run, '$1');
}

export const MAX_NAME_CHARS = 32;
export const MAX_INTERESTS = 10;
export const MAX_INTEREST_CHARS = 32;
export const MAX_CHAT_CHARS = 2000;
export const MAX_REPORT_REASON_CHARS = 200;

/** Display name and session id: 1-32 of [A-Za-z0-9_.-], at least one letter or digit. */
export const name = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,32}$/, 'must be 1-32 characters of letters, digits, _ - .')
  .regex(/[A-Za-z0-9]/, 'must contain a letter or a digit');

export const mode = z.enum(['video', 'text']);
export type Mode = z.infer<typeof mode>;

/** A BCP 47-like tag, not trimmed, compared case-insensitively. */
export const lang = z.string().regex(/^[A-Za-z0-9-]{2,35}$/, 'must be 2-35 characters of letters, digits and -');

/** One interest: 1-32 characters after trimming. */
export const interest = z
  .string()
  .transform((s) => wellFormed(s.trim()))
  .pipe(text(1, MAX_INTEREST_CHARS));

/**
 * Regions a person may prefer beside "anywhere" and "near" (issue 17): continents,
 * as the server maps each country to one (packages/server/src/geo/regions.ts).
 */
export const REGIONS = ['africa', 'asia', 'europe', 'north-america', 'south-america', 'oceania'] as const;
export const areaRegion = z.enum(REGIONS);
export type AreaRegion = z.infer<typeof areaRegion>;

/**
 * The region a person prefers to meet someone from: `anywhere` (the default),
 * `near` (the same country as their own address), or one of REGIONS.
 */
export const REGION_CHOICES = ['anywhere', 'near', ...REGIONS] as const;
export const region = z.enum(REGION_CHOICES);
export type Region = z.infer<typeof region>;

/** An ISO 3166-1 alpha-2 country code, upper case. */
export const countryCode = z.string().regex(/^[A-Z]{2}$/, 'must be two capital letters (ISO 3166-1 alpha-2)');

export const interests = z.array(interest).max(MAX_INTERESTS, `at most ${MAX_INTERESTS} interests`);

export const roomCode = z.string().min(1).max(128);

/** Levels signal `data` may nest, `data` itself being the first (PROTOCOL.md, "Signal data"). */
export const MAX_SIGNAL_DATA_DEPTH = 8;
/** Values signal `data` may hold in all: object members and array elements, at every level. */
export const MAX_SIGNAL_DATA_VALUES = 256;

/** The field each signal type's `data` must carry, a string (a candidate's may be empty: the end of candidates). */
const REQUIRED_DATA_FIELD = { offer: 'sdp', answer: 'sdp', candidate: 'candidate' } as const;

/**
 * Why a signal's `data` breaks the contract, or undefined when it keeps it:
 * the required field of its type, at most MAX_SIGNAL_DATA_DEPTH levels and
 * MAX_SIGNAL_DATA_VALUES values. The walk keeps its own stack and stops at the
 * first broken rule, so it never descends past the limits: a value nested
 * thousands of levels deep (which JSON.stringify cannot even encode) or one
 * of thousands of empty objects costs no more to refuse than a legal one.
 */
export function signalDataProblem(
  type: keyof typeof REQUIRED_DATA_FIELD,
  data: Record<string, unknown>,
): { path: string[]; message: string } | undefined {
  const field = REQUIRED_DATA_FIELD[type];
  if (typeof data[field] !== 'string') return { path: [field], message: `${type === 'candidate' ? 'a' : 'an'} ${type}'s data must carry ${field} (a string)` };
  return signalDataSizeProblem(data);
}

/**
 * Why a signal's `data` is too deep or too large (MAX_SIGNAL_DATA_DEPTH
 * levels, MAX_SIGNAL_DATA_VALUES values), or undefined when it is within
 * both. The shape rules of a type are signalDataProblem's; this is the part
 * every signal obeys, the legacy protocols' included.
 */
export function signalDataSizeProblem(data: Record<string, unknown>): { path: string[]; message: string } | undefined {
  let values = 0;
  const stack: { value: object; depth: number }[] = [{ value: data, depth: 1 }];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const children: unknown[] = [];
    if (Array.isArray(top.value)) {
      values += top.value.length;
      if (values > MAX_SIGNAL_DATA_VALUES) break;
      children.push(...(top.value as unknown[]));
    } else {
      for (const key in top.value) {
        if (++values > MAX_SIGNAL_DATA_VALUES) break;
        children.push((top.value as Record<string, unknown>)[key]);
      }
      if (values > MAX_SIGNAL_DATA_VALUES) break;
    }
    for (const child of children) {
      if (typeof child !== 'object' || child === null) continue;
      if (top.depth >= MAX_SIGNAL_DATA_DEPTH) return { path: [], message: `must not nest deeper than ${MAX_SIGNAL_DATA_DEPTH} levels` };
      stack.push({ value: child, depth: top.depth + 1 });
    }
  }
  if (values > MAX_SIGNAL_DATA_VALUES) return { path: [], message: `must hold at most ${MAX_SIGNAL_DATA_VALUES} values in all` };
  return undefined;
}

/** Interests compare case-insensitively: the canonical form is trimmed and lower-cased, duplicates dropped. */
export const normalizeInterests = (list: readonly string[]): string[] => [
  ...new Set(list.map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0)),
];

export const normalizeLang = (tag: string | undefined): string | undefined => tag?.toLowerCase();

/** Longest proof-of-work payload accepted (base64 of the solved challenge's JSON). */
export const MAX_POW_PAYLOAD_CHARS = 4096;
export const powPayload = z.string().min(1).max(MAX_POW_PAYLOAD_CHARS).regex(/^[A-Za-z0-9+/=_-]+$/, 'must be base64');
