// The client's session state machine, as a pure reducer: every socket event and
// every user action becomes an Action, and the screen is a function of the
// resulting state. Side effects (sockets, media) live in Session.ts.
//
//   idle ──start──▶ connecting ──session/waiting──▶ waiting ──matched──▶ matched
//     ▲                                               ▲  │                 │
//     └──────────────stop / idle──────────────────────┼──┘      peer-disconnected
//                                                     └──next── ended ◀────┘
import { DISCONNECT_MESSAGES } from '@dyad/protocol';
import type { DisconnectReason, MatchingServerMessage, Mode } from '@dyad/protocol';

export type Phase = 'idle' | 'connecting' | 'waiting' | 'matched' | 'ended';

/** How the matching socket is doing: resumption is invisible unless it takes a while. */
export type LinkState = 'offline' | 'online' | 'reconnecting';

/** State of the media connection with the current stranger (video mode). */
export type MediaState = 'none' | 'connecting' | 'connected' | 'reconnecting' | 'failed';

/** Why the last conversation ended: the stranger's reasons from the server, or ours. */
export type EndReason = DisconnectReason | 'you-skipped' | 'you-stopped' | 'lost';

export interface ChatLine {
  readonly id: number;
  readonly from: 'you' | 'stranger' | 'system';
  readonly text: string;
}

export interface Match {
  readonly roomCode: string;
  readonly peer: string;
  readonly initiator: boolean;
  readonly mode: Mode;
  readonly commonInterests: readonly string[];
}

export interface Failure {
  readonly kind: 'unreachable' | 'session-ended' | 'replaced' | 'banned';
  readonly message: string;
}

export interface SessionState {
  readonly phase: Phase;
  readonly mode: Mode;
  readonly link: LinkState;
  readonly sessionId: string | null;
  readonly match: Match | null;
  readonly lines: readonly ChatLine[];
  readonly nextLineId: number;
  readonly strangerTyping: boolean;
  /** Set in `ended`, and kept while auto-next looks for the next stranger. */
  readonly ended: EndReason | null;
  /** A `next` or `stop` we sent and the server has not confirmed yet: news of the old room is stale. */
  readonly pending: 'next' | 'stop' | null;
  readonly media: MediaState;
  readonly failure: Failure | null;
  /** A short-lived remark from the server (rate limit, undeliverable message). */
  readonly notice: string | null;
}

export type Action =
  | { type: 'start'; mode: Mode }
  | { type: 'server'; message: MatchingServerMessage }
  | { type: 'next' }
  | { type: 'stop' }
  | { type: 'chat-sent'; text: string }
  | { type: 'link'; link: LinkState }
  | { type: 'media'; media: MediaState }
  | { type: 'failed'; failure: Failure }
  | { type: 'notice'; text: string }
  | { type: 'clear-notice' };

export const initialState: SessionState = Object.freeze({
  phase: 'idle',
  mode: 'video',
  link: 'offline',
  sessionId: null,
  match: null,
  lines: [],
  nextLineId: 1,
  strangerTyping: false,
  ended: null,
  pending: null,
  media: 'none',
  failure: null,
  notice: null,
});

/** Long conversations are trimmed from the top so the DOM stays small. */
export const MAX_LINES = 500;

function addLine(state: SessionState, from: ChatLine['from'], text: string): SessionState {
  const line: ChatLine = { id: state.nextLineId, from, text };
  const lines = state.lines.length >= MAX_LINES ? [...state.lines.slice(1 - MAX_LINES), line] : [...state.lines, line];
  return { ...state, lines, nextLineId: state.nextLineId + 1 };
}

/** "music", "music and go", "music, go and art". */
export function joinList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

const END_LINES: Readonly<Record<EndReason, string>> = {
  ...DISCONNECT_MESSAGES,
  'you-skipped': 'You skipped.',
  'you-stopped': 'You left the chat.',
  lost: 'The connection was lost.',
};

function endLine(reason: EndReason): string {
  const text = END_LINES[reason];
  return text.endsWith('.') ? text : `${text}.`;
}

function onServer(state: SessionState, msg: MatchingServerMessage): SessionState {
  switch (msg.event) {
    case 'session':
      return { ...state, sessionId: msg.id, link: 'online', failure: null };

    case 'waiting':
      if (state.pending === 'stop') return state; // a `waiting` sent before our stop was processed
      return {
        ...state,
        phase: 'waiting',
        pending: null,
        match: null,
        strangerTyping: false,
        media: 'none',
        link: 'online',
      };

    case 'matched': {
      if (state.pending === 'stop') return state;
      const resumed = msg.resumed === true && state.match?.roomCode === msg.room_code;
      if (resumed) return { ...state, phase: 'matched', pending: null, link: 'online' };
      const match: Match = {
        roomCode: msg.room_code,
        peer: msg.peer,
        initiator: msg.initiator,
        mode: msg.mode,
        commonInterests: msg.common_interests,
      };
      let next: SessionState = {
        ...state,
        phase: 'matched',
        pending: null,
        match,
        lines: [],
        strangerTyping: false,
        ended: null,
        media: msg.mode === 'video' ? 'connecting' : 'none',
        link: 'online',
        notice: null,
      };
      next = addLine(next, 'system', "You're now chatting with a random stranger. Say hi!");
      if (match.commonInterests.length > 0) {
        next = addLine(next, 'system', `You both like ${joinList(match.commonInterests)}.`);
      }
      return next;
    }

    case 'chat':
      // Only the current stranger's words belong in this conversation.
      if (state.phase !== 'matched' || state.pending !== null || msg.sender !== state.match?.peer) return state;
      return addLine({ ...state, strangerTyping: false }, 'stranger', msg.message);

    case 'typing':
      if (state.phase !== 'matched' || state.pending !== null || msg.sender !== state.match?.peer) return state;
      return { ...state, strangerTyping: msg.typing };

    case 'peer-disconnected':
      // After our own next/stop the old room is gone on our side already.
      if (state.pending !== null || state.phase !== 'matched') return state;
      return addLine(
        { ...state, phase: 'ended', ended: msg.reason, strangerTyping: false, media: 'none' },
        'system',
        endLine(msg.reason),
      );

    case 'idle':
      if (state.pending === 'stop' || state.phase === 'connecting' || state.phase === 'waiting') {
        return { ...state, phase: 'idle', pending: null, match: null, strangerTyping: false, media: 'none' };
      }
      if (state.phase === 'matched') {
        // Our own grace period ran out and ended the room while we were away.
        return addLine(
          { ...state, phase: 'ended', ended: 'lost', pending: null, strangerTyping: false, media: 'none' },
          'system',
          endLine('lost'),
        );
      }
      return { ...state, pending: state.pending === 'next' ? state.pending : null };

    case 'ice-servers':
      // Fresh credentials for the peer connection (Session hands them on); nothing on screen changes.
      return state;

    case 'error':
      switch (msg.code) {
        case 'rate-limited':
          return { ...state, notice: 'Slow down a little.' };
        case 'no-partner':
          return state.phase === 'matched' ? state : { ...state, notice: 'Nobody is there to receive that.' };
        case 'banned':
          return {
            ...state,
            phase: 'idle',
            match: null,
            media: 'none',
            failure: { kind: 'banned', message: bannedText(msg.until) },
          };
        case 'unauthorized':
          return {
            ...state,
            phase: 'idle',
            match: null,
            media: 'none',
            sessionId: null,
            link: 'offline',
            failure: { kind: 'session-ended', message: 'Your session ended. Start again to meet someone new.' },
          };
        default:
          return state;
      }
  }
}

function bannedText(until: number | undefined): string {
  if (until === undefined) return 'You have been removed for breaking the rules.';
  return `You have been removed for breaking the rules until ${new Date(until * 1000).toLocaleString()}.`;
}

export function reduce(state: SessionState, action: Action): SessionState {
  switch (action.type) {
    case 'start':
      return {
        ...initialState,
        mode: action.mode,
        phase: 'connecting',
        link: state.link,
        sessionId: state.sessionId,
        nextLineId: state.nextLineId,
      };

    case 'server':
      // A message from the server is proof the matching socket is up.
      return onServer(state.link === 'online' ? state : { ...state, link: 'online' }, action.message);

    case 'next': {
      const base: SessionState =
        state.phase === 'matched'
          ? addLine({ ...state, ended: 'you-skipped' }, 'system', endLine('you-skipped'))
          : state;
      return { ...base, phase: 'waiting', pending: 'next', match: null, strangerTyping: false, media: 'none', notice: null };
    }

    case 'stop': {
      const base = state.phase === 'matched' ? addLine(state, 'system', endLine('you-stopped')) : state;
      return {
        ...base,
        phase: 'idle',
        pending: 'stop',
        ended: state.phase === 'matched' ? 'you-stopped' : state.ended,
        match: null,
        strangerTyping: false,
        media: 'none',
        notice: null,
      };
    }

    case 'chat-sent':
      if (state.phase !== 'matched') return state;
      return addLine(state, 'you', action.text);

    case 'link':
      return { ...state, link: action.link };

    case 'media':
      if (state.phase !== 'matched' || state.match?.mode !== 'video') return state;
      return { ...state, media: action.media };

    case 'failed':
      return {
        ...state,
        phase: 'idle',
        pending: null,
        match: null,
        strangerTyping: false,
        media: 'none',
        link: 'offline',
        sessionId: null,
        failure: action.failure,
      };

    case 'notice':
      return { ...state, notice: action.text };

    case 'clear-notice':
      return { ...state, notice: null };
  }
}

/** The one-line status shown above the conversation. */
export function statusText(state: SessionState): string {
  if (state.failure) return state.failure.message;
  if (state.link === 'reconnecting' && state.phase !== 'idle') return 'Reconnecting…';
  switch (state.phase) {
    case 'idle':
      return state.ended === 'you-stopped' || state.pending === 'stop' ? 'You left the chat' : 'Ready when you are';
    case 'connecting':
      return 'Connecting…';
    case 'waiting':
      // Auto-next keeps the reason visible while it looks for the next stranger.
      return state.ended && state.ended !== 'you-skipped' && state.ended !== 'you-stopped'
        ? `${END_LINES[state.ended].replace(/\.$/, '')}. Looking for someone…`
        : 'Looking for someone…';
    case 'matched':
      if (state.mode === 'video' && state.media === 'connecting') return 'Connecting video…';
      if (state.media === 'reconnecting') return 'Connection unstable, reconnecting video…';
      if (state.media === 'failed') return 'Video connection failed';
      return 'Connected';
    case 'ended':
      return END_LINES[state.ended ?? 'left'].replace(/\.$/, '');
  }
}
