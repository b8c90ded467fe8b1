// Every message of the wire contract, one schema each, grouped into
// discriminated unions on `event`. Types are inferred from the schemas, so the
// validator and the type can never disagree.
import { z } from 'zod';
import {
  areaRegion,
  countryCode,
  powPayload,
  region,
  interests,
  lang,
  mode,
  name,
  roomCode,
  signalDataProblem,
  text,
  wellFormed,
  MAX_CHAT_CHARS,
  MAX_REPORT_REASON_CHARS,
} from './fields.js';

// ---------------------------------------------------------------- HTTP bodies

export const RegisterRequest = z.object({
  name: name.optional(),
  mode: mode.optional(),
  interests: interests.optional(),
  lang: lang.optional(),
  /** Who to prefer by place, as interests and lang narrow (issue 17); absent: `anywhere`. */
  region: region.optional(),
  /** Show my country to the stranger (`country` on their `matched`); absent: false. */
  show_country: z.boolean().optional(),
  /** A solved proof-of-work challenge (GET /pow), base64 of its JSON payload, when the server asks for one. */
  altcha: powPayload.optional(),
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;

export const IceServer = z.object({
  urls: z.array(z.string()),
  username: z.string().optional(),
  credential: z.string().optional(),
});
export type IceServer = z.infer<typeof IceServer>;

export const IceServersResponse = z.object({ ice_servers: z.array(IceServer), ttl: z.number() });
export type IceServersResponse = z.infer<typeof IceServersResponse>;

/**
 * GET /online (v1.2 addition): how many people are on this deployment now,
 * aggregates only. `online`: live sessions; `waiting`: sessions in the pool, by mode.
 */
export const OnlineResponse = z.object({
  online: z.number().int().nonnegative(),
  waiting: z.object({ video: z.number().int().nonnegative(), text: z.number().int().nonnegative() }),
});
export type OnlineResponse = z.infer<typeof OnlineResponse>;

export const RegisterResponse = z.object({
  status: z.literal('queued'),
  message: z.string(),
  id: z.string(),
  token: z.string(),
});
export type RegisterResponse = z.infer<typeof RegisterResponse>;

/**
 * Why a start was refused for its proof of work (an addition to v1.2):
 * `pow-required` when none came and one is needed, `pow-invalid` when it is
 * forged, expired or already used.
 */
export const PowErrorCode = z.enum(['pow-required', 'pow-invalid']);
export type PowErrorCode = z.infer<typeof PowErrorCode>;

/**
 * GET /pow (an addition to v1.2): whether a start from this address needs a
 * solved proof of work now, and if so an ALTCHA challenge (v2: algorithm,
 * nonce, salt, cost, keyPrefix, expiresAt, signed), to send back solved as
 * `altcha`: base64 of `{"challenge":..., "solution":{"counter":N,"derivedKey":"..."}}`.
 */
export const PowResponse = z.object({
  required: z.boolean(),
  challenge: z
    .object({
      parameters: z.object({
        algorithm: z.string(),
        nonce: z.string(),
        salt: z.string(),
        cost: z.number(),
        keyLength: z.number(),
        keyPrefix: z.string(),
        keySignature: z.string().optional(),
        expiresAt: z.number().optional(),
      }),
      signature: z.string(),
    })
    .optional(),
});
export type PowResponse = z.infer<typeof PowResponse>;

/** Refusals of POST /register and of a one-trip start upgrade. */
export const HttpError = z.object({
  status: z.enum(['error', 'exists', 'banned']),
  message: z.string(),
  retry_after: z.number().optional(),
  until: z.number().optional(),
  code: PowErrorCode.optional(),
});
export type HttpError = z.infer<typeof HttpError>;

// ------------------------------------------------- matching, client -> server

export const NextMessage = z.object({ event: z.literal('next') });
export const StopMessage = z.object({ event: z.literal('stop') });
export const ChatMessage = z.object({
  event: z.literal('chat'),
  message: text(1, MAX_CHAT_CHARS).transform(wellFormed),
  peer: z.string().optional(), // accepted and ignored (the original API sent it)
});
export const TypingMessage = z.object({ event: z.literal('typing'), typing: z.boolean() });
export const ReportMessage = z.object({
  event: z.literal('report'),
  reason: text(0, MAX_REPORT_REASON_CHARS).transform(wellFormed).optional(),
});

/** End the chat and never be paired with that stranger again (an addition to v1.2); no report is made. */
export const BlockMessage = z.object({ event: z.literal('block') });

export const MatchingClientMessage = z.discriminatedUnion('event', [
  NextMessage,
  StopMessage,
  ChatMessage,
  TypingMessage,
  ReportMessage,
  BlockMessage,
]);
export type MatchingClientMessage = z.infer<typeof MatchingClientMessage>;

// ----------------------------------------------- signalling, client -> server

export const SignalType = z.enum(['offer', 'answer', 'candidate']);
export type SignalType = z.infer<typeof SignalType>;

export const JoinMessage = z.object({
  event: z.literal('join'),
  room_code: roomCode,
  target: z.unknown().optional(), // accepted and ignored
  type: z.unknown().optional(), // accepted and ignored
});
export const SignalMessage = z
  .object({
    event: z.literal('signal'),
    room_code: roomCode,
    type: SignalType,
    data: z.record(z.string(), z.unknown()),
  })
  .superRefine((msg, ctx) => {
    const problem = signalDataProblem(msg.type, msg.data);
    if (problem) ctx.addIssue({ code: 'custom', path: ['data', ...problem.path], message: problem.message });
  });
export const LeaveMessage = z.object({ event: z.literal('leave'), room_code: roomCode });

export const SignallingClientMessage = z.discriminatedUnion('event', [JoinMessage, SignalMessage, LeaveMessage]);
export type SignallingClientMessage = z.infer<typeof SignallingClientMessage>;

// ------------------------------------------------------------ server -> client

export const DisconnectReason = z.enum(['skip', 'left', 'timeout', 'reported']);
export type DisconnectReason = z.infer<typeof DisconnectReason>;

export const ErrorCode = z.enum([
  'bad-request',
  'rate-limited',
  'no-partner',
  'buffer-full',
  'invalid-room',
  'role-mismatch',
  'unauthorized',
  'banned',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const WaitingEvent = z.object({ event: z.literal('waiting') });
export const IdleEvent = z.object({ event: z.literal('idle') });
export const SessionEvent = z.object({ event: z.literal('session'), id: z.string(), token: z.string() });
export const MatchedEvent = z.object({
  event: z.literal('matched'),
  room_code: z.string(),
  initiator: z.boolean(),
  peer: z.string(),
  common_interests: z.array(z.string()),
  /** The region both are in, when both are known and the same (never finer than a region). */
  region: areaRegion.optional(),
  /** The partner's country, only when the partner chose `show_country`. */
  country: countryCode.optional(),
  mode,
  ice_servers: z.array(IceServer),
  resumed: z.boolean().optional(),
});
export const ChatEvent = z.object({
  event: z.literal('chat'),
  sender: z.string(),
  message: z.string(),
  timestamp: z.number(),
  /** (Addition) 1, 2, 3… for each line the sender sends in this room: a resumption names the last one it has (`chat_seen`). */
  seq: z.number().int().positive().optional(),
});
/**
 * (Addition) `chat_seen` of a resuming matching socket, `<room_code>:<seq>`:
 * the last chat line the client has from its partner in that room. The lines
 * kept for it up to that one are not sent again.
 */
export const ChatSeenParam = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}:(0|[1-9][0-9]{0,14})$/, 'chat_seen must be <room_code>:<seq>')
  .transform((v) => {
    const at = v.lastIndexOf(':');
    return { room: v.slice(0, at), seq: Number(v.slice(at + 1)) };
  });
export const TypingEvent = z.object({ event: z.literal('typing'), sender: z.string(), typing: z.boolean() });
export const PeerDisconnectedEvent = z.object({
  event: z.literal('peer-disconnected'),
  message: z.string(),
  reason: DisconnectReason,
});
export const ErrorEvent = z.object({
  event: z.literal('error'),
  code: ErrorCode,
  message: z.string(),
  until: z.number().optional(),
});

/**
 * Fresh ICE servers for a session in a room, sent on its matching socket
 * before the TURN credentials it holds expire (an addition to v1.2: clients
 * that do not know it ignore it, and keep what `matched` gave them).
 */
export const IceServersEvent = z.object({
  event: z.literal('ice-servers'),
  ice_servers: z.array(IceServer),
  /** Lifetime of the credentials, seconds. */
  ttl: z.number(),
});
export type IceServersEvent = z.infer<typeof IceServersEvent>;

export const MatchingServerMessage = z.discriminatedUnion('event', [
  WaitingEvent,
  IdleEvent,
  SessionEvent,
  MatchedEvent,
  ChatEvent,
  TypingEvent,
  PeerDisconnectedEvent,
  ErrorEvent,
  IceServersEvent,
]);
export type MatchingServerMessage = z.infer<typeof MatchingServerMessage>;

export const VerifiedEvent = z.object({
  event: z.literal('verified'),
  room_code: z.string(),
  role: z.enum(['initiator', 'responder']),
  peer: z.string(),
  peer_joined: z.boolean(),
});
export const PeerJoinedEvent = z.object({ event: z.literal('peer-joined'), room_code: z.string(), peer: z.string() });
export const SignalEvent = z.object({
  event: z.literal('signal'),
  room_code: z.string(),
  from: z.string(),
  type: SignalType,
  data: z.record(z.string(), z.unknown()),
});

export const SignallingServerMessage = z.discriminatedUnion('event', [
  VerifiedEvent,
  PeerJoinedEvent,
  SignalEvent,
  PeerDisconnectedEvent,
  ErrorEvent,
]);
export type SignallingServerMessage = z.infer<typeof SignallingServerMessage>;

export type ServerMessage = MatchingServerMessage | SignallingServerMessage;
export type MatchedEvent = z.infer<typeof MatchedEvent>;
export type ChatEvent = z.infer<typeof ChatEvent>;
export type ErrorEvent = z.infer<typeof ErrorEvent>;
export type PeerDisconnectedEvent = z.infer<typeof PeerDisconnectedEvent>;
export type SignalEvent = z.infer<typeof SignalEvent>;
export type VerifiedEvent = z.infer<typeof VerifiedEvent>;

/** Human-readable text for each reason, as sent in `peer-disconnected.message`. */
export const DISCONNECT_MESSAGES: Readonly<Record<DisconnectReason, string>> = Object.freeze({
  skip: 'Stranger skipped',
  left: 'Stranger left',
  timeout: 'Stranger lost connection',
  reported: 'Stranger was removed by moderation',
});

/** WebSocket close codes used by the services. */
export const CloseCode = Object.freeze({
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  tooBig: 1009,
  /** Try Again Later: the server could not open the socket's place (its store was away); resume. */
  tryAgain: 1013,
  unauthorized: 4001,
  replaced: 4002,
  banned: 4003,
} as const);
