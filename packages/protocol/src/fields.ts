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
  .transform((s) => s.trim())
  .pipe(text(1, MAX_INTEREST_CHARS));

export const interests = z.array(interest).max(MAX_INTERESTS, `at most ${MAX_INTERESTS} interests`);

export const roomCode = z.string().min(1).max(128);

/** Interests compare case-insensitively: the canonical form is trimmed and lower-cased, duplicates dropped. */
export const normalizeInterests = (list: readonly string[]): string[] => [
  ...new Set(list.map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0)),
];

export const normalizeLang = (tag: string | undefined): string | undefined => tag?.toLowerCase();
