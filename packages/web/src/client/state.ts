// The client's session state machine, as a pure reducer: every socket event and
// every user action becomes an Action, and the screen is a function of the
// resulting state. Side effects (sockets, media) live in Session.ts.
//
//   idle ──start──▶ connecting ──session/waiting──▶ waiting ──matched──▶ matched
//     ▲                                               ▲  │                 │
//     └──────────────stop / idle──────────────────────┼──┘      peer-disconnected
//                                                     └──next── ended ◀────┘
//
// The state holds what happened, never words: the screen puts it into the
// visitor's language (lineText, statusText, failureText, noticeText).
import type { TFunction } from 'i18next';
import type { DisconnectReason, MatchingServerMessage, Mode } from '@dyad/protocol';
import { displayText } from './text.js';

export type Phase = 'idle' | 'connecting' | 'waiting' | 'matched' | 'ended';

/** How the matching socket is doing: resumption is invisible unless it takes a while. */
export type LinkState = 'offline' | 'online' | 'reconnecting';

/** State of the media connection with the current stranger (video mode). */
export type MediaState = 'none' | 'connecting' | 'connected' | 'reconnecting' | 'failed';

/** Why the last conversation ended: the stranger's reasons from the server, or ours. */
export type EndReason = DisconnectReason | 'you-skipped' | 'you-stopped' | 'lost';

/** What the conversation itself says between the two people's lines. */
export type Note =
  | { readonly kind: 'matched' }
  | { readonly kind: 'common'; readonly interests: readonly string[] }
  | { readonly kind: 'ended'; readonly reason: EndReason };

export type ChatLine =
  | { readonly id: number; readonly from: 'you' | 'stranger'; readonly text: string }
  | { readonly id: number; readonly from: 'system'; readonly note: Note };

/** A short-lived remark: the server's (rate limit, undeliverable message) or ours. */
export type Notice = 'rate-limited' | 'no-partner' | 'reported' | 'blocked';

export interface Match {
  readonly roomCode: string;
  readonly peer: string;
  readonly initiator: boolean;
  readonly mode: Mode;
  readonly commonInterests: readonly string[];
  /** The stranger's country (ISO 3166-1 alpha-2), only when the stranger chose to show it. */
  readonly country?: string;
}

export interface Failure {
  readonly kind: 'unreachable' | 'session-ended' | 'replaced' | 'banned';
  /** The end of a ban (Unix seconds), when the server said. */
  readonly until?: number;
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
  /**
   * The `seq` of the stranger's last line in this conversation (0: none yet).
   * A resumption names it (`chat_seen`), so the server does not send those
   * lines again; one that comes again anyway (the server could not know the
   * line had arrived) is not shown twice.
   */
  readonly chatSeen: number;
  /** Set in `ended`, and kept while auto-next looks for the next stranger. */
  readonly ended: EndReason | null;
  /** A `next` or `stop` we sent and the server has not confirmed yet: news of the old room is stale. */
  readonly pending: 'next' | 'stop' | null;
  readonly media: MediaState;
  readonly failure: Failure | null;
  readonly notice: Notice | null;
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
  | { type: 'notice'; notice: Notice }
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
  chatSeen: 0,
  ended: null,
  pending: null,
  media: 'none',
  failure: null,
  notice: null,
});

/** Long conversations are trimmed from the top so the DOM stays small. */
export const MAX_LINES = 500;

function addLine(state: SessionState, from: 'you' | 'stranger', text: string): SessionState {
  return append(state, { id: state.nextLineId, from, text });
}

function addNote(state: SessionState, note: Note): SessionState {
  return append(state, { id: state.nextLineId, from: 'system', note });
}

function append(state: SessionState, line: ChatLine): SessionState {
  const lines = state.lines.length >= MAX_LINES ? [...state.lines.slice(1 - MAX_LINES), line] : [...state.lines, line];
  return { ...state, lines, nextLineId: state.nextLineId + 1 };
}

const ended = (reason: EndReason): Note => ({ kind: 'ended', reason });

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
        ...(msg.country ? { country: msg.country } : {}),
      };
      let next: SessionState = {
        ...state,
        phase: 'matched',
        pending: null,
        match,
        lines: [],
        strangerTyping: false,
        chatSeen: 0,
        ended: null,
        media: msg.mode === 'video' ? 'connecting' : 'none',
        link: 'online',
        notice: null,
      };
      next = addNote(next, { kind: 'matched' });
      if (match.commonInterests.length > 0) next = addNote(next, { kind: 'common', interests: match.commonInterests });
      return next;
    }

    case 'chat':
      // Only the current stranger's words belong in this conversation.
      if (state.phase !== 'matched' || state.pending !== null || msg.sender !== state.match?.peer) return state;
      // A line with a seq at or below the last shown is one told twice, not a new one.
      if (msg.seq !== undefined && msg.seq <= state.chatSeen) return state;
      return addLine({ ...state, strangerTyping: false, chatSeen: msg.seq ?? state.chatSeen }, 'stranger', msg.message);

    case 'typing':
      if (state.phase !== 'matched' || state.pending !== null || msg.sender !== state.match?.peer) return state;
      return { ...state, strangerTyping: msg.typing };

    case 'peer-disconnected':
      // After our own next/stop the old room is gone on our side already.
      if (state.pending !== null || state.phase !== 'matched') return state;
      return addNote({ ...state, phase: 'ended', ended: msg.reason, strangerTyping: false, media: 'none' }, ended(msg.reason));

    case 'idle':
      if (state.pending === 'stop' || state.phase === 'connecting' || state.phase === 'waiting') {
        return { ...state, phase: 'idle', pending: null, match: null, strangerTyping: false, media: 'none' };
      }
      if (state.phase === 'matched') {
        // Our own grace period ran out and ended the room while we were away.
        return addNote(
          { ...state, phase: 'ended', ended: 'lost', pending: null, strangerTyping: false, media: 'none' },
          ended('lost'),
        );
      }
      return { ...state, pending: state.pending === 'next' ? state.pending : null };

    case 'ice-servers':
      // Fresh credentials for the peer connection (Session hands them on); nothing on screen changes.
      return state;

    case 'error':
      switch (msg.code) {
        case 'rate-limited':
          return { ...state, notice: 'rate-limited' };
        case 'no-partner':
          return state.phase === 'matched' ? state : { ...state, notice: 'no-partner' };
        case 'banned':
          return {
            ...state,
            phase: 'idle',
            match: null,
            media: 'none',
            failure: msg.until === undefined ? { kind: 'banned' } : { kind: 'banned', until: msg.until },
          };
        case 'unauthorized':
          return {
            ...state,
            phase: 'idle',
            match: null,
            media: 'none',
            sessionId: null,
            link: 'offline',
            failure: { kind: 'session-ended' },
          };
        default:
          return state;
      }
  }
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
          ? addNote({ ...state, ended: 'you-skipped' }, ended('you-skipped'))
          : state;
      return { ...base, phase: 'waiting', pending: 'next', match: null, strangerTyping: false, media: 'none', notice: null };
    }

    case 'stop': {
      const base = state.phase === 'matched' ? addNote(state, ended('you-stopped')) : state;
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
      return { ...state, notice: action.notice };

    case 'clear-notice':
      return { ...state, notice: null };
  }
}

const ENDED_KEY = {
  skip: 'ended.skip',
  left: 'ended.left',
  timeout: 'ended.timeout',
  reported: 'ended.reported',
  'you-skipped': 'ended.youSkipped',
  'you-stopped': 'ended.youStopped',
  lost: 'ended.lost',
} as const satisfies Record<EndReason, string>;

/** Why a conversation ended, in a few words without a full stop. */
export const endText = (reason: EndReason, t: TFunction): string => t(ENDED_KEY[reason]);

/** A line of the conversation as shown. */
export function lineText(line: ChatLine, t: TFunction): string {
  if (line.from !== 'system') return displayText(line.text);
  switch (line.note.kind) {
    case 'matched':
      return t('line.matched');
    case 'common':
      return t('line.common', { list: line.note.interests });
    case 'ended':
      return t('line.ended', { reason: endText(line.note.reason, t) });
  }
}

export function failureText(failure: Failure, t: TFunction): string {
  switch (failure.kind) {
    case 'unreachable':
      return t('failure.unreachable');
    case 'session-ended':
      return t('failure.sessionEnded');
    case 'replaced':
      return t('failure.replaced');
    case 'banned':
      return failure.until === undefined
        ? t('failure.banned')
        : t('failure.bannedUntil', {
            until: new Date(failure.until * 1000),
            formatParams: { until: { dateStyle: 'medium', timeStyle: 'short' } },
          });
  }
}

const NOTICE_KEY = {
  'rate-limited': 'notice.rateLimited',
  'no-partner': 'notice.noPartner',
  reported: 'notice.reported',
  blocked: 'notice.blocked',
} as const satisfies Record<Notice, string>;

export const noticeText = (notice: Notice, t: TFunction): string => t(NOTICE_KEY[notice]);

/** The one-line status shown above the conversation. */
export function statusText(state: SessionState, t: TFunction): string {
  if (state.failure) return failureText(state.failure, t);
  if (state.link === 'reconnecting' && state.phase !== 'idle') return t('status.reconnecting');
  switch (state.phase) {
    case 'idle':
      return state.ended === 'you-stopped' || state.pending === 'stop' ? t('status.youLeft') : t('status.ready');
    case 'connecting':
      return t('status.connecting');
    case 'waiting':
      // Auto-next keeps the reason visible while it looks for the next stranger.
      return state.ended && state.ended !== 'you-skipped' && state.ended !== 'you-stopped'
        ? t('status.lookingAfter', { reason: endText(state.ended, t) })
        : t('status.looking');
    case 'matched':
      if (state.mode === 'video' && state.media === 'connecting') return t('status.connectingVideo');
      if (state.media === 'reconnecting') return t('status.unstable');
      if (state.media === 'failed') return t('status.videoFailed');
      return t('status.connected');
    case 'ended':
      return endText(state.ended ?? 'left', t);
  }
}
