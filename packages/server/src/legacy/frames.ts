// What the legacy edges read back of the frames the hub gives their sockets
// (Dyad's messages as JSON text) before they write them in their client's
// protocol.
import type { ServerMessage, SignalType } from '@dyad/protocol';

/** A Dyad message as sent to one socket; undefined for text that is none (never made by the hub). */
export function parseFrame(text: string): ServerMessage | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && typeof (value as { event?: unknown }).event === 'string' ? (value as ServerMessage) : undefined;
  } catch {
    return undefined;
  }
}

const SIGNAL_PREFIX = '{"event":"signal",';

/**
 * The parts of a relayed signal frame (core/frames.ts signalFrame), or
 * undefined for any other message. A signal is rewritten for each legacy
 * recipient, so its data is read here once, within MAX_FRAME_BYTES.
 */
export function signalFrameParts(text: string): { from: string; type: SignalType; data: Record<string, unknown> } | undefined {
  if (!text.startsWith(SIGNAL_PREFIX)) return undefined;
  const msg = parseFrame(text) as { from?: unknown; type?: unknown; data?: unknown } | undefined;
  if (!msg || typeof msg.from !== 'string' || typeof msg.type !== 'string' || typeof msg.data !== 'object' || msg.data === null) return undefined;
  return { from: msg.from, type: msg.type as SignalType, data: msg.data as Record<string, unknown> };
}

/**
 * A partner's id as a random-video-chat client can use it: its client reads
 * the partner's name out of `<name>_<name>`, so a Dyad or go-megle partner
 * whose id holds `_` is shown with `-` instead (and never as the client's own name).
 */
export function legacyName(id: string, own: string): string {
  const shown = id.replace(/_/g, '-');
  return shown === own ? `${shown}-peer` : shown;
}
