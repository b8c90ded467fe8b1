// The legacy protocols Dyad can speak when the operator turns them on
// (LEGACY_PROTOCOLS; docs/LEGACY.md): random-video-chat and go-megle, as their
// existing web clients speak them. One schema per message, as for Dyad's own
// protocol; inbound ones are what the edges validate with, outbound ones what
// tests check the server against.
import { z } from 'zod';
import { MAX_CHAT_CHARS, MAX_NAME_CHARS, roomCode, signalDataProblem, signalDataSizeProblem, text } from './fields.js';
import { SignalType } from './messages.js';

export const LEGACY_PROTOCOLS = ['random-video-chat', 'go-megle'] as const;
export const LegacyProtocol = z.enum(LEGACY_PROTOCOLS);
export type LegacyProtocol = z.infer<typeof LegacyProtocol>;

// ------------------------------------------------------- random-video-chat

/**
 * A random-video-chat name: Dyad's name rule without `_`, because the client
 * finds its partner's name by splitting the room code `<name>_<name>` on `_`.
 */
export const rvcName = z
  .string()
  .regex(/^[A-Za-z0-9.-]{1,32}$/, `must be 1-${MAX_NAME_CHARS} characters of letters, digits, - and . (no _)`)
  .regex(/[A-Za-z0-9]/, 'must contain a letter or a digit');

/** `POST /registerForMatching` (and `POST /register` with just a name): exactly the name. */
export const RvcRegisterRequest = z.strictObject({ name: rvcName });
export type RvcRegisterRequest = z.infer<typeof RvcRegisterRequest>;

/** What the client reads of the answer: `queued`, `exists`, anything else is "Internal server error". */
export const RvcRegisterResponse = z.object({ status: z.enum(['queued', 'exists', 'error', 'banned']), message: z.string() });
export type RvcRegisterResponse = z.infer<typeof RvcRegisterResponse>;

/** The only message of the matching socket, client to server: chat to the partner, named. */
export const RvcChatMessage = z.object({
  event: z.literal('chat'),
  peer: z.string().max(128),
  message: text(1, MAX_CHAT_CHARS),
});
export const RvcMatchingClientMessage = z.discriminatedUnion('event', [RvcChatMessage]);
export type RvcMatchingClientMessage = z.infer<typeof RvcMatchingClientMessage>;

export const RvcRole = z.enum(['initiator', 'responder']);

export const RvcJoinMessage = z.object({
  event: z.literal('join'),
  room_code: roomCode,
  target: z.string().max(128),
  role: RvcRole,
});

/**
 * What a simple-peer signal is: an offer or answer (`{type, sdp}`), a
 * candidate (`{type:'candidate', candidate:{candidate, sdpMid, sdpMLineIndex}}`),
 * or one of simple-peer's own requests (`renegotiate`, `transceiverRequest`),
 * relayed as they are; undefined for anything else.
 */
export function rvcSignalKind(data: Record<string, unknown>): SignalType | 'request' | undefined {
  if (data.type === 'offer' || data.type === 'answer') return typeof data.sdp === 'string' ? data.type : undefined;
  const c = data.candidate;
  if (typeof c === 'object' && c !== null && !Array.isArray(c)) {
    return typeof (c as Record<string, unknown>).candidate === 'string' ? 'candidate' : undefined;
  }
  if (data.renegotiate === true) return 'request';
  const t = data.transceiverRequest;
  if (typeof t === 'object' && t !== null && !Array.isArray(t)) return 'request';
  return undefined;
}

export const RvcSignalMessage = z
  .object({
    event: z.literal('signal'),
    room_code: roomCode,
    target: z.string().max(128),
    /** The sender's own name, or empty (the server knows who sends). */
    from: z.string().max(128).optional(),
    data: z.record(z.string(), z.unknown()),
  })
  .superRefine((msg, ctx) => {
    const size = signalDataSizeProblem(msg.data);
    if (size) return ctx.addIssue({ code: 'custom', path: ['data', ...size.path], message: size.message });
    if (!rvcSignalKind(msg.data)) {
      ctx.addIssue({ code: 'custom', path: ['data'], message: 'must be an offer or answer with sdp, a candidate, or a renegotiation request' });
    }
  });

export const RvcSignallingClientMessage = z.discriminatedUnion('event', [RvcJoinMessage, RvcSignalMessage]);
export type RvcSignallingClientMessage = z.infer<typeof RvcSignallingClientMessage>;

// Server to client.
export const RvcMatchedEvent = z.object({ event: z.literal('matched'), room_code: z.string(), initiator: z.boolean() });
export const RvcChatEvent = z.object({ event: z.literal('chat'), sender: z.string(), message: z.string(), timestamp: z.number() });
export const RvcVerifiedEvent = z.object({ event: z.literal('verified'), room_code: z.string(), role: RvcRole });
export const RvcSignalEvent = z.object({
  event: z.literal('signal'),
  room_code: z.string(),
  from: z.string(),
  type: z.null(),
  data: z.record(z.string(), z.unknown()),
});
export const RvcPeerDisconnectedEvent = z.object({ event: z.literal('peer-disconnected'), message: z.string() });
export const RvcErrorEvent = z.object({ event: z.literal('error'), message: z.string() });
/** Sent on the matching socket and ignored by the client. */
export const RvcWaitingEvent = z.object({ event: z.literal('waiting') });

export const RvcMatchingServerMessage = z.discriminatedUnion('event', [
  RvcMatchedEvent,
  RvcChatEvent,
  RvcWaitingEvent,
  RvcPeerDisconnectedEvent,
  RvcErrorEvent,
]);
export type RvcMatchingServerMessage = z.infer<typeof RvcMatchingServerMessage>;
export const RvcSignallingServerMessage = z.discriminatedUnion('event', [
  RvcVerifiedEvent,
  RvcSignalEvent,
  RvcPeerDisconnectedEvent,
  RvcErrorEvent,
]);
export type RvcSignallingServerMessage = z.infer<typeof RvcSignallingServerMessage>;

/** The messages the original sends in `error`, which its client shows. */
export const RVC_INVALID_ROOM = 'Invalid room or role';
export const RVC_NOT_CONNECTED = 'Peer not connected';

// ---------------------------------------------------------------- go-megle

/** A partner id as go-megle clients send it back. */
const gmId = z.string().min(1).max(128);

export const GmFindMatchMessage = z.object({ event: z.literal('find_match'), data: z.object({}).optional() });
export const GmLeaveMessage = z.object({ event: z.literal('leave'), data: z.object({ target_id: gmId }) });
export const GmSignalMessage = z.object({
  event: z.literal('signal'),
  data: z
    .object({ target_id: gmId, type: SignalType, payload: z.record(z.string(), z.unknown()) })
    .superRefine((d, ctx) => {
      // The payload is what Dyad's own clients send as `data`: the same rules.
      const problem = signalDataProblem(d.type, d.payload);
      if (problem) ctx.addIssue({ code: 'custom', path: ['payload', ...problem.path], message: problem.message });
    }),
});
export const GmClientMessage = z.discriminatedUnion('event', [GmFindMatchMessage, GmLeaveMessage, GmSignalMessage]);
export type GmClientMessage = z.infer<typeof GmClientMessage>;

// Server to client: every frame is `{event, data}`.
export const GmWaitingEvent = z.object({ event: z.literal('waiting'), data: z.object({ message: z.string() }) });
export const GmMatchFoundEvent = z.object({
  event: z.literal('match_found'),
  data: z.object({ partner_id: z.string(), initiator: z.boolean(), match_id: z.string() }),
});
export const GmSignalEvent = z.object({
  event: z.literal('signal'),
  data: z.object({ sender_id: z.string(), type: SignalType, payload: z.record(z.string(), z.unknown()) }),
});
export const GmPartnerLeftEvent = z.object({ event: z.literal('partner_left'), data: z.object({ from: z.string() }) });
/** Not in the original (its client ignores it): why a message was refused. */
export const GmErrorEvent = z.object({ event: z.literal('error'), data: z.object({ code: z.string(), message: z.string() }) });

export const GmServerMessage = z.discriminatedUnion('event', [GmWaitingEvent, GmMatchFoundEvent, GmSignalEvent, GmPartnerLeftEvent, GmErrorEvent]);
export type GmServerMessage = z.infer<typeof GmServerMessage>;

export const GM_SEARCHING = 'Searching for partner...';
