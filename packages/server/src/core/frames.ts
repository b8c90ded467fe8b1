// Signals travel as text. Their `data` is encoded once, at the edge, and from
// then on relayed, kept for an absent member and delivered as that text, never
// as a parsed tree: a tree kept for a member who never joins can cost many
// times the bytes received (docs/SECURITY.md, "What is kept for an absent
// member"), and encoding it again for every delivery costs CPU on the relay path.
import type { SignalText } from '../store/store.js';

/**
 * What one kept item counts for beyond its text (the envelope: room, sender,
 * type or timestamp, and its place in a list), so that many small items cannot
 * pass the byte caps uncounted. Both stores count the same.
 */
export const KEPT_ITEM_OVERHEAD_BYTES = 128;

const NON_ASCII = /[^\x00-\x7f]/;
const NON_ASCII_ALL = /[^\x00-\x7f]/g;
const escapeUnit = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * The JSON text of a signal's `data`, in ASCII (anything beyond as `\u`
 * escapes, the same JSON value): V8 holds such a string in one byte per
 * character, so what is kept costs its counted bytes, not twice as many.
 * `data` has passed the protocol schema, so it is shallow enough to encode.
 */
export function encodeSignalData(data: Record<string, unknown>): string {
  const text = JSON.stringify(data);
  return NON_ASCII.test(text) ? text.replace(NON_ASCII_ALL, escapeUnit) : text;
}

/** The `signal` frame its recipient gets, built around the data text without parsing it. */
export function signalFrame(s: SignalText): string {
  return `{"event":"signal","room_code":${JSON.stringify(s.room_code)},"from":${JSON.stringify(s.from)},"type":${JSON.stringify(s.type)},"data":${s.data}}`;
}

/** The bytes a kept item counts for against KEPT_BYTES_PER_ROOM and KEPT_BYTES_PER_PROCESS: its text in UTF-8 and the overhead. */
export const keptBytes = (text: string): number => Buffer.byteLength(text, 'utf8') + KEPT_ITEM_OVERHEAD_BYTES;
