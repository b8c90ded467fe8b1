// Chat from one client address (issue 13, "Bots and spam"): a machine's pace
// (CHAT_RATE_PER_MIN) and the same message pasted into room after room
// (CHAT_REPEAT_MAX within CHAT_REPEAT_WINDOW_MS) are refused with
// `rate-limited`, and the operator's words (CHAT_MASK_WORDS) are masked
// before the message is relayed. Counts are per address hash and, on Redis,
// shared by every process; what is counted of a message is a keyed digest of
// its folded text, never the text.
import { createHmac, randomBytes } from 'node:crypto';
import type { Limiter, LimiterFactory } from '../store/store.js';
import { takePoint } from '../http/context.js';
import { codePoints, markRunCutter } from '@dyad/protocol';
import type { Settings } from '../config.js';

export type ChatVerdict = { ok: true; message: string } | { ok: false; message: string };

/**
 * What of a message is compared for repeats: its first FOLD_UNITS UTF-16 units, once runs of
 * combining marks are cut to four. Unicode normalization puts each run of combining marks
 * in order, in time that grows with the square of the run, and may make a character 18: folded
 * whole, a 2,000-character message of marks cost 9 ms of the process's one thread (found
 * 2026-12-07), now at most some 0.2 ms. A message pasted room after room is the same in its
 * first 256 units.
 */
export const FOLD_UNITS = 256;
const cutMarkRuns = markRunCutter(4);

/** Folded for comparison: case, spacing and punctuation do not make a pasted message new (see FOLD_UNITS). */
export const fold = (text: string): string =>
  cutMarkRuns(text).slice(0, FOLD_UNITS).normalize('NFKC').toLowerCase().replace(/[\s\p{P}\p{S}]+/gu, ' ').trim();

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** One regular expression for every masked word: whole words (letters and digits around do not match), any case. */
export function maskPattern(words: readonly string[]): RegExp | undefined {
  if (words.length === 0) return undefined;
  const alternatives = [...words].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|');
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${alternatives})(?![\\p{L}\\p{N}])`, 'giu');
}

/** Each masked word becomes as many `*` as it has characters. */
export const mask = (text: string, pattern: RegExp | undefined): string =>
  pattern ? text.replace(pattern, (w) => '*'.repeat(codePoints(w))) : text;

export class ChatGuard {
  private readonly pace: Limiter;
  /** The same pace per session: a session's socket may be opened from any address, and each would bring a pace of its own. */
  private readonly sessionPace: Limiter;
  private readonly repeats: Limiter;
  private readonly pattern: RegExp | undefined;
  /** Keys the digest of repeated messages, so the limiter's keys say nothing of what was written. */
  private readonly digestKey = randomBytes(16);

  constructor(
    private readonly settings: Pick<Settings, 'chatRatePerMin' | 'chatRepeatMax' | 'chatRepeatWindowMs' | 'chatRepeatMinChars' | 'chatMaskWords'>,
    limiter: LimiterFactory,
    /** Processes sharing a Redis must digest alike to count one message together (ADDRESS_HASH_KEY). */
    sharedKey?: string,
  ) {
    this.pace = limiter('chat', settings.chatRatePerMin, 60);
    this.sessionPace = limiter('chat-session', settings.chatRatePerMin, 60);
    this.repeats = limiter('chat-repeat', settings.chatRepeatMax, Math.max(1, Math.ceil(settings.chatRepeatWindowMs / 1000)));
    this.pattern = maskPattern(settings.chatMaskWords);
    if (sharedKey) this.digestKey = createHmac('sha256', sharedKey).update('dyad chat repeats').digest();
  }

  /** The message to relay (masked), or why it is refused: `addr` the sending socket's address, `session` its session. */
  async check(addr: string, session: string, text: string): Promise<ChatVerdict> {
    // The two paces at once: with Redis stalled, each count waits REDIS_CALL_TIMEOUT_MS before its stand-in answers.
    const paced = await Promise.all([takePoint(this.pace, addr), takePoint(this.sessionPace, session)]);
    if (!paced[0] || !paced[1]) return { ok: false, message: `more than ${this.settings.chatRatePerMin} chat messages a minute` };
    // Folded only within the pace: a refused message costs no normalization.
    const folded = fold(text);
    const repeat =
      codePoints(folded) >= this.settings.chatRepeatMinChars
        ? `${addr}:${createHmac('sha256', this.digestKey).update(folded).digest('base64url').slice(0, 22)}`
        : undefined;
    // Only a message within the pace is counted as a repeat: each distinct message is a key kept for
    // CHAT_REPEAT_WINDOW_MS, and counting the refused ones too let one address make a thousand keys a
    // second (its sockets' message rate), some 600 bytes each in the process, instead of CHAT_RATE_PER_MIN.
    if (repeat !== undefined && !(await takePoint(this.repeats, repeat))) {
      return { ok: false, message: `the same message more than ${this.settings.chatRepeatMax} times; write something new` };
    }
    return { ok: true, message: mask(text, this.pattern) };
  }
}
