// One visitor's session: the matching socket, the signalling socket, the peer
// connection of the current room and the chat. Every event goes through the
// pure reducer (state.ts); `reconcile()` then makes the peer connection and the
// signalling room follow the state, so there is one place where a room's media
// is opened and one where it is closed.
import {
  ChatMessage,
  CloseCode,
  IceServersResponse,
  MAX_INTEREST_CHARS,
  MAX_INTERESTS,
  MatchingServerMessage,
  RegisterRequest,
  codePoints,
  normalizeInterests,
  parseMessage,
  parseObject,
} from '@dyad/protocol';
import type { IceServer, MatchingClientMessage, Mode, SignalEvent, SignalType } from '@dyad/protocol';
import { ProofCache } from './pow.js';
import { toWebSocketUrl } from './config.js';
import type { ClientConfig } from './config.js';
import type { LocalMedia } from './LocalMedia.js';
import { PeerLink } from './PeerLink.js';
import type { LinkState as PeerState, PeerLinkOptions, RoomInfo } from './PeerLink.js';
import { ResumableSocket } from './ResumableSocket.js';
import type { SocketState, WebSocketFactory } from './ResumableSocket.js';
import { SignallingChannel } from './SignallingChannel.js';
import { initialState, reduce } from './state.js';
import type { Action, Failure, SessionState } from './state.js';
import { Store } from './Store.js';

export interface Preferences {
  readonly mode: Mode;
  readonly interests: readonly string[];
  /** A BCP 47 tag, or null for any language. */
  readonly lang: string | null;
}

/** What Session needs of a peer link; PeerLink in the browser, a stand-in in tests. */
export interface PeerLinkLike {
  /** Null until begin(). */
  readonly roomCode: string | null;
  /** The stranger's media; null where there is none to show (tests). */
  readonly remoteStream: MediaStream | null;
  begin(room: RoomInfo): void;
  /** Offer and answer have been exchanged at least once. */
  readonly negotiated: boolean;
  handleSignal(type: SignalType, data: Record<string, unknown>): void;
  /** Fresh ICE servers for the room (renewed TURN credentials); the connection keeps its candidates. */
  updateIceServers(servers: RTCIceServer[]): void;
  replaceTrack(kind: 'audio' | 'video', track: MediaStreamTrack): void;
  signallingResumed(): void;
  networkChanged(): void;
  close(): void;
}

export interface SessionDeps {
  readonly config: ClientConfig;
  readonly media: LocalMedia;
  readonly createSocket?: WebSocketFactory;
  readonly createPeerLink?: (opts: PeerLinkOptions) => PeerLinkLike;
  readonly fetch?: typeof fetch;
  /** @default 15_000 */
  readonly graceMs?: number;
}

/** No keystroke for this long means the stranger should stop seeing "typing…". */
export const TYPING_IDLE_MS = 4_000;
/** Messages written while the socket is coming back; beyond this the oldest matter least. */
const MAX_OUTBOX = 32;
const ICE_FETCH_TIMEOUT_MS = 3_000;

/** Interests as the contract accepts them: trimmed, no commas (the query separator), at most 10 of ≤ 32 chars. */
export function cleanInterests(list: readonly string[]): string[] {
  return normalizeInterests(list.map((s) => s.replace(/,/g, ' ')))
    .filter((s) => codePoints(s) <= MAX_INTEREST_CHARS)
    .slice(0, MAX_INTERESTS);
}

/** The one-trip start URL: registering and opening the matching socket in one request (with a solved proof of work when asked). */
export function oneTripUrl(matchingUrl: string, prefs: Preferences, altcha?: string): string {
  const query: string[] = [`mode=${prefs.mode}`];
  const interests = cleanInterests(prefs.interests);
  // Items are encoded one by one so the separating commas stay literal.
  if (interests.length > 0) query.push(`interests=${interests.map(encodeURIComponent).join(',')}`);
  const body = { mode: prefs.mode, interests, ...(prefs.lang ? { lang: prefs.lang } : {}) };
  if (prefs.lang && parseObject(RegisterRequest, body).ok) query.push(`lang=${encodeURIComponent(prefs.lang)}`);
  if (altcha) query.push(`altcha=${encodeURIComponent(altcha)}`);
  return `${toWebSocketUrl(matchingUrl)}/ws?${query.join('&')}`;
}

export function resumeUrl(baseUrl: string, id: string, token: string): string {
  return `${toWebSocketUrl(baseUrl)}/ws/${encodeURIComponent(id)}?token=${encodeURIComponent(token)}`;
}

const toRtcIceServers = (list: readonly IceServer[]): RTCIceServer[] =>
  list.map((s) => ({
    urls: s.urls,
    ...(s.username !== undefined ? { username: s.username } : {}),
    ...(s.credential !== undefined ? { credential: s.credential } : {}),
  }));

const samePrefs = (a: Preferences, b: Preferences): boolean =>
  a.mode === b.mode &&
  (a.lang ?? '').toLowerCase() === (b.lang ?? '').toLowerCase() &&
  cleanInterests(a.interests).join(',') === cleanInterests(b.interests).join(',');

export class Session {
  readonly store = new Store<SessionState>(initialState);
  /** The stranger's media, separate from the reducer's plain data. */
  readonly remote = new Store<MediaStream | null>(null);
  /** When the stranger leaves, look for the next one without being asked. */
  autoNext = false;

  private matching: ResumableSocket | null = null;
  private signalling: SignallingChannel | null = null;
  private credentials: { id: string; token: string } | null = null;
  private prefs: Preferences | null = null;
  private link: PeerLinkLike | null = null;
  /** A link made ahead (on the landing screen, or while we wait), so `matched` finds the connection and our tracks ready. */
  private spare: PeerLinkLike | null = null;
  /** Callbacks of whenReady(), run once the session can be paired without waiting on us. */
  private readyWaiters: (() => void)[] = [];
  /** The visitor is about to start a video chat: keep a spare link ready. */
  private warm = false;
  private readonly stopWatchingMedia: () => void;
  private iceServers: RTCIceServer[] = [];
  private outbox: MatchingClientMessage[] = [];
  private typing = false;
  private typingTimer: ReturnType<typeof setTimeout> | null = null;
  private autoNextTimer: ReturnType<typeof setTimeout> | null = null;
  private certificate: RTCCertificate | null = null;
  private readonly stopSwapping: () => void;
  /** The state as of now; the store (what React sees) catches up after the effects. */
  private current: SessionState = initialState;
  /** Proofs of work for starts, one solved ahead. */
  private readonly proofs: ProofCache;

  constructor(private readonly deps: SessionDeps) {
    this.proofs = new ProofCache(deps.config.matchingUrl, deps.config.pow ?? 'off', deps.fetch ?? ((...a) => fetch(...a)));
    this.stopSwapping = deps.media.onTrackSwap((kind, track) => {
      this.link?.replaceTrack(kind, track);
      this.spare?.replaceTrack(kind, track);
    });
    // A spare holds the tracks it was made with; a released camera makes it useless.
    let stream = deps.media.state.stream;
    this.stopWatchingMedia = deps.media.store.subscribe(() => {
      const next = deps.media.state.stream;
      if (next === stream) return;
      stream = next;
      // Not remade here, nor later while we are not looking: that would ask for
      // the camera again (warmUp and the next search do).
      if (next === null) {
        this.warm = false;
        this.closeSpare();
      }
    });
    // A DTLS certificate made ahead of time takes its generation off the path to the first frame.
    if (typeof RTCPeerConnection !== 'undefined' && RTCPeerConnection.generateCertificate) {
      RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams).then(
        (cert) => (this.certificate = cert),
        () => undefined,
      );
    }
  }

  get state(): SessionState {
    return this.current;
  }

  get sessionId(): string | null {
    return this.credentials?.id ?? null;
  }

  /** Start looking. Re-uses a live session when the preferences are unchanged (no new registration). */
  start(prefs: Preferences): void {
    const live = this.matching !== null && this.credentials !== null;
    if (live && this.prefs && samePrefs(this.prefs, prefs)) {
      this.prefs = prefs;
      this.next();
      return;
    }
    if (this.matching) this.endSession();
    this.prefs = prefs;
    this.outbox = [];
    this.dispatch({ type: 'start', mode: prefs.mode });
    // The camera warms up while the socket opens; both are needed by `matched`.
    // Text has no camera or microphone: one prepared for video is released.
    if (prefs.mode === 'video') void this.deps.media.acquire();
    else this.deps.media.release();
    let altcha: string | undefined;
    const socket: ResumableSocket = new ResumableSocket({
      url: (resume) =>
        resume && this.credentials
          ? resumeUrl(this.deps.config.matchingUrl, this.credentials.id, this.credentials.token)
          : oneTripUrl(this.deps.config.matchingUrl, prefs, altcha),
      canResume: () => this.credentials !== null,
      onOpen: (resumed) => this.onMatchingOpen(socket, resumed),
      onMessage: (raw) => this.matching === socket && this.onMatchingMessage(raw),
      onState: (state) => this.matching === socket && this.onMatchingState(state),
      onFinal: (code) => this.matching === socket && this.onMatchingFinal(code),
      ...(this.deps.createSocket ? { createSocket: this.deps.createSocket } : {}),
      ...(this.deps.graceMs !== undefined ? { graceMs: this.deps.graceMs } : {}),
    });
    this.matching = socket;
    // From here the search keeps the spare (warmed on the landing screen, or made now).
    this.warm = false;
    if ((this.deps.config.pow ?? 'off') === 'off') socket.connect();
    else {
      // The proof was solved ahead (warmUp) in most cases; the next one is started once this is sent.
      void this.proofs.take().then((proof) => {
        if (this.matching !== socket) return;
        altcha = proof;
        socket.connect();
        this.proofs.prefetch();
      });
    }
    // The spare peer connection is made while the socket opens, after this
    // click's task, so the socket's first events are not kept waiting.
    setTimeout(() => this.reconcile(), 0);
  }

  /**
   * The visitor has chosen video and confirmed the terms: make the peer
   * connection now, so that Start costs only sockets. Undone by coolDown().
   */
  warmUp(): void {
    this.proofs.prefetch();
    this.warm = true;
    this.reconcile();
  }

  coolDown(): void {
    this.warm = false;
    this.reconcile();
  }

  /**
   * Resolves when the chat screen may take the main thread: the session
   * exists and, for video, the signalling socket is open and, if a stranger
   * is already there, offer and answer have been exchanged (or the attempt
   * failed). Until then a slow phone spends its main thread on the sockets
   * and the peer connection, which are what the first frame waits for.
   */
  whenReady(): Promise<void> {
    if (this.isReady()) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private isReady(): boolean {
    if (!this.matching) return true;
    if (!this.credentials) return false;
    if (this.prefs?.mode !== 'video') return true;
    if (this.signalling?.isOpen !== true) return false;
    return this.state.phase !== 'matched' || (this.link?.negotiated ?? true);
  }

  private checkReady(): void {
    if (this.readyWaiters.length === 0 || !this.isReady()) return;
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Leave the current stranger (or the end screen) and look for another. */
  next(): void {
    this.cancelAutoNext();
    const { phase } = this.state;
    if (!this.matching || !this.credentials) {
      if (this.prefs && phase !== 'connecting') this.start(this.prefs);
      return;
    }
    if (phase === 'connecting') return;
    if (this.prefs?.mode === 'video') void this.deps.media.acquire();
    this.dispatch({ type: 'next' });
    this.send({ event: 'next' });
  }

  /**
   * Stop looking or talking; the session stays connected and idle, the camera
   * goes off. Pressed while still connecting (no `session` yet), the screen
   * goes idle at once and the stop is sent as soon as `session` arrives: the
   * socket is not cut mid-opening, which would leave the server holding a
   * dropped session in the queue for its grace period.
   */
  stop(): void {
    this.cancelAutoNext();
    if (!this.matching) return;
    if (this.state.phase === 'idle') return;
    this.dispatch({ type: 'stop' });
    if (this.credentials) this.send({ event: 'stop' });
    this.deps.media.release();
  }

  /** The page is going away or the visitor went home: a clean leave (stop, then close 1000). */
  leave(): void {
    this.cancelAutoNext();
    if (this.matching && this.credentials && this.matching.isOpen) this.send({ event: 'stop' });
    this.endSession();
    this.current = { ...initialState, nextLineId: this.current.nextLineId };
    this.store.set(this.current);
    this.deps.media.release();
  }

  sendChat(text: string): boolean {
    if (this.state.phase !== 'matched' || text.trim() === '') return false;
    const msg: MatchingClientMessage = { event: 'chat', message: text };
    if (!ChatMessage.safeParse(msg).success) return false;
    if (!this.send(msg)) return false;
    // The stranger's client clears "typing…" when the message lands; no need to send typing:false.
    this.typing = false;
    this.clearTypingTimer();
    this.dispatch({ type: 'chat-sent', text });
    return true;
  }

  /** Called on every keystroke (true) and when the input is emptied (false). Sends only changes. */
  setTyping(active: boolean): void {
    if (this.state.phase !== 'matched') return;
    this.clearTypingTimer();
    if (active) {
      this.typingTimer = setTimeout(() => this.setTyping(false), TYPING_IDLE_MS);
      if (!this.typing) {
        this.typing = true;
        this.sendNow({ event: 'typing', typing: true });
      }
    } else if (this.typing) {
      this.typing = false;
      this.sendNow({ event: 'typing', typing: false });
    }
  }

  /** Report the current (or last) stranger, then move on from them. */
  report(reason: string): void {
    if (!this.credentials) return;
    const msg: MatchingClientMessage = reason ? { event: 'report', reason: reason.slice(0, 200) } : { event: 'report' };
    this.send(msg);
    if (this.state.phase === 'matched') this.next();
    // After next(), which clears remarks about the old conversation.
    this.dispatch({ type: 'notice', text: 'Thanks. The stranger has been reported.' });
  }

  /**
   * Block the current (or last) stranger: the chat ends as with next, and
   * the two are never paired again (the server keeps them apart); no report.
   */
  block(): void {
    if (!this.credentials) return;
    this.cancelAutoNext();
    const matched = this.state.phase === 'matched';
    this.send({ event: 'block' });
    // The server queues us again itself after a block in a room (as after next).
    if (matched) {
      if (this.prefs?.mode === 'video') void this.deps.media.acquire();
      this.dispatch({ type: 'next' });
    }
    this.dispatch({ type: 'notice', text: 'Blocked. You will not meet this stranger again.' });
  }

  /** The browser's network came back: do not wait for the backoff, and re-check the media path. */
  networkChanged(): void {
    // A socket that still looks open may be dead after a network change; the server resumes a replaced one.
    this.matching?.nudge();
    this.matching?.replace();
    this.signalling?.nudge();
    this.link?.networkChanged();
  }

  clearNotice(): void {
    this.dispatch({ type: 'clear-notice' });
  }

  dispose(): void {
    this.warm = false;
    this.leave();
    this.stopSwapping();
    this.stopWatchingMedia();
  }

  // ------------------------------------------------------------------ internals

  /**
   * Effects first, then the screen: a re-render queued ahead of the offer
   * would hold it back by a frame's work on a slow phone.
   */
  private dispatch(action: Action): void {
    this.current = reduce(this.current, action);
    this.reconcile();
    this.store.set(this.current);
    this.checkReady();
  }

  /** Make the peer connection and the signalling room match the state. */
  private reconcile(): void {
    const s = this.state;
    const room = s.phase === 'matched' && s.match?.mode === 'video' ? s.match : null;
    if (this.link && this.link.roomCode !== room?.roomCode) {
      this.link.close();
      this.link = null;
      this.remote.set(null);
    }
    // The room is set before the link begins, so the link's first signals follow the join.
    this.signalling?.setRoom(room?.roomCode ?? null);
    if (room && !this.link) {
      this.link = this.spare ?? this.makeLink();
      this.spare = null;
      this.link.begin({ roomCode: room.roomCode, initiator: room.initiator, iceServers: this.iceServers });
      this.remote.set(this.link.remoteStream);
    }
    const looking = (s.phase === 'connecting' || s.phase === 'waiting') && s.mode === 'video' && this.matching !== null;
    const keepSpare = looking || (this.warm && this.matching === null);
    if (keepSpare && !this.spare) this.spare = this.makeLink();
    else if (!keepSpare && !room && this.spare) this.closeSpare();
    if (s.phase !== 'matched') {
      this.typing = false;
      this.clearTypingTimer();
    }
  }

  private makeLink(): PeerLinkLike {
    let link: PeerLinkLike | null = null;
    const isCurrent = () => link !== null && this.link === link;
    const opts: PeerLinkOptions = {
      certificate: this.certificate,
      localStream: this.deps.media.acquire(),
      sendSignal: (type, data) => {
        if (isCurrent()) this.signalling?.signal(type, data);
      },
      onState: (state: PeerState) => {
        if (isCurrent()) this.dispatch({ type: 'media', media: state });
      },
      onNegotiated: () => {
        if (isCurrent()) this.checkReady();
      },
      refreshIceServers: () => this.fetchIceServers(),
    };
    link = this.deps.createPeerLink ? this.deps.createPeerLink(opts) : new PeerLink(opts);
    return link;
  }

  private closeSpare(): void {
    this.spare?.close();
    this.spare = null;
  }

  private openSignalling(): void {
    if (this.signalling || !this.credentials) return;
    const { id, token } = this.credentials;
    const channel = new SignallingChannel(
      resumeUrl(this.deps.config.signallingUrl, id, token),
      {
        onSignal: (msg: SignalEvent) => {
          if (this.signalling === channel && this.link?.roomCode === msg.room_code) {
            this.link.handleSignal(msg.type, msg.data);
          }
        },
        onJoined: (roomCode, resumed) => {
          if (resumed && this.signalling === channel && this.link?.roomCode === roomCode) this.link.signallingResumed();
        },
        onState: () => this.checkReady(),
        onFinal: () => {
          // The matching socket is told too and ends the session; nothing more to resume here.
          if (this.signalling === channel) this.signalling = null;
          this.checkReady();
        },
      },
      {
        ...(this.deps.createSocket ? { createSocket: this.deps.createSocket } : {}),
        ...(this.deps.graceMs !== undefined ? { graceMs: this.deps.graceMs } : {}),
      },
    );
    this.signalling = channel;
    channel.connect();
    const room = this.state.phase === 'matched' ? this.state.match?.roomCode : undefined;
    if (room) channel.setRoom(room);
  }

  private onMatchingOpen(socket: ResumableSocket, resumed: boolean): void {
    if (this.matching !== socket) return;
    if (resumed) {
      const held = this.outbox;
      this.outbox = [];
      for (const msg of held) this.sendNow(msg);
    }
  }

  private onMatchingMessage(raw: string): void {
    const parsed = parseMessage(MatchingServerMessage, raw);
    if (!parsed.ok) return; // the contract lets servers add events; ignore what we do not know
    const msg = parsed.value;
    if (msg.event === 'session') {
      this.credentials = { id: msg.id, token: msg.token };
      // Stop was pressed before the server knew us: tell it now (a `waiting` or
      // `matched` sent meanwhile is ignored while the stop is pending).
      if (this.current.pending === 'stop') this.sendNow({ event: 'stop' });
      // Opened now, while we wait, so that `matched` costs only a `join`.
      if (this.prefs?.mode === 'video') this.openSignalling();
    } else if (msg.event === 'matched') {
      this.iceServers = toRtcIceServers(msg.ice_servers);
    } else if (msg.event === 'ice-servers') {
      // Fresh TURN credentials before the ones of `matched` expire: a relay
      // allocation refreshes with them, and an ICE restart later uses them.
      this.iceServers = toRtcIceServers(msg.ice_servers);
      this.link?.updateIceServers(this.iceServers);
      return;
    }
    const before = this.state;
    this.dispatch({ type: 'server', message: msg });
    const after = this.state;
    if (msg.event === 'peer-disconnected' && before.phase === 'matched' && after.phase === 'ended' && this.autoNext) {
      // A moment on "Stranger skipped" first, so the change of face is not a surprise.
      this.autoNextTimer = setTimeout(() => {
        this.autoNextTimer = null;
        if (this.state.phase === 'ended') this.next();
      }, 300);
    }
  }

  private onMatchingState(state: SocketState): void {
    if (state === 'reconnecting') this.dispatch({ type: 'link', link: 'reconnecting' });
    else if (state === 'open') this.dispatch({ type: 'link', link: 'online' });
  }

  private onMatchingFinal(code: number): void {
    const hadSession = this.credentials !== null;
    this.endSession();
    if (this.state.failure?.kind === 'banned') return;
    let failure: Failure;
    if (code === CloseCode.replaced) {
      failure = { kind: 'replaced', message: 'Dyad was opened in another tab, so this one was disconnected.' };
    } else if (code === CloseCode.banned) {
      failure = { kind: 'banned', message: 'You have been removed for breaking the rules.' };
    } else if (!hadSession) {
      failure = { kind: 'unreachable', message: 'Can’t reach Dyad right now. Check your connection and try again.' };
    } else {
      failure = { kind: 'session-ended', message: 'The connection was lost. Start again to meet someone new.' };
    }
    this.dispatch({ type: 'failed', failure });
  }

  /** Close both sockets and forget the session (the server ends it on a 1000 close). */
  private endSession(): void {
    const matching = this.matching;
    const signalling = this.signalling;
    this.matching = null;
    this.signalling = null;
    this.credentials = null;
    this.outbox = [];
    this.link?.close();
    this.link = null;
    this.closeSpare();
    this.remote.set(null);
    this.clearTypingTimer();
    this.typing = false;
    signalling?.close(CloseCode.normal);
    matching?.close(CloseCode.normal);
    this.checkReady();
  }

  /** Send now, or hold while the socket is coming back (the server keeps our place meanwhile). */
  private send(msg: MatchingClientMessage): boolean {
    if (this.sendNow(msg)) return true;
    if (this.matching?.currentState !== 'reconnecting') return false;
    if (this.outbox.length >= MAX_OUTBOX) this.outbox.shift();
    this.outbox.push(msg);
    return true;
  }

  private sendNow(msg: MatchingClientMessage): boolean {
    return this.matching?.send(JSON.stringify(msg)) ?? false;
  }

  private async fetchIceServers(): Promise<RTCIceServer[] | null> {
    if (!this.credentials) return null;
    const doFetch = this.deps.fetch ?? fetch;
    try {
      const res = await doFetch(`${this.deps.config.matchingUrl}/ice-servers`, {
        headers: { Authorization: `Bearer ${this.credentials.token}` },
        signal: AbortSignal.timeout(ICE_FETCH_TIMEOUT_MS),
      });
      if (!res.ok) return null;
      const parsed = parseObject(IceServersResponse, await res.json());
      return parsed.ok ? toRtcIceServers(parsed.value.ice_servers) : null;
    } catch {
      return null;
    }
  }

  private clearTypingTimer(): void {
    if (this.typingTimer !== null) clearTimeout(this.typingTimer);
    this.typingTimer = null;
  }

  private cancelAutoNext(): void {
    if (this.autoNextTimer !== null) clearTimeout(this.autoNextTimer);
    this.autoNextTimer = null;
  }
}
