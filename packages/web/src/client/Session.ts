// One visitor's session: the matching socket, the signalling socket, the peer
// connection of the current room and the chat. Every event goes through the
// pure reducer (state.ts); `reconcile()` then makes the peer connection and the
// signalling room follow the state, so there is one place where a room's media
// is opened and one where it is closed.
//
// The jobs it hands out, each in its own module: where to connect (urls.ts),
// the current and the spare peer connection (PeerLinks.ts), what goes out on
// the matching socket while it is away (Outbox.ts), our typing indicator
// (TypingIndicator.ts) and the wait for a session ready to be paired
// (Readiness.ts). What is left here is the order in which they are used.
import { ChatMessage, CloseCode, MatchingServerMessage, parseMessage } from '@dyad/protocol';
import type { MatchingClientMessage, SignalEvent } from '@dyad/protocol';
import type { ClientConfig } from './config.js';
import { fetchIceServers, toRtcIceServers } from './iceServers.js';
import type { LocalMedia } from './LocalMedia.js';
import { Outbox } from './Outbox.js';
import type { PeerLinkOptions } from './PeerLink.js';
import { PeerLinks } from './PeerLinks.js';
import type { PeerLinkLike } from './PeerLinks.js';
import { Readiness } from './Readiness.js';
import { ResumableSocket } from './ResumableSocket.js';
import type { SocketState, WebSocketFactory } from './ResumableSocket.js';
import { SignallingChannel } from './SignallingChannel.js';
import { initialState, reduce } from './state.js';
import type { Action, Failure, SessionState } from './state.js';
import { Store } from './Store.js';
import { TypingIndicator } from './TypingIndicator.js';
import { ProofCache } from './pow.js';
import { oneTripUrl, resumeUrl, samePrefs } from './urls.js';
import type { Preferences } from './urls.js';

export { cleanInterests, oneTripUrl, resumeUrl } from './urls.js';
export type { Preferences } from './urls.js';
export type { PeerLinkLike } from './PeerLinks.js';
export { TYPING_IDLE_MS } from './TypingIndicator.js';

export interface SessionDeps {
  readonly config: ClientConfig;
  readonly media: LocalMedia;
  readonly createSocket?: WebSocketFactory;
  readonly createPeerLink?: (opts: PeerLinkOptions) => PeerLinkLike;
  readonly fetch?: typeof fetch;
  /** @default 15_000 */
  readonly graceMs?: number;
}

/**
 * A start that fails before its session exists is tried again this many
 * times with a new proof of work. The page cannot tell a refused proof (an
 * expired or spent challenge: 403, none: 428) from a lost connection, since
 * both end the WebSocket before it opens.
 */
const START_RETRIES = 2;

/** How long "Stranger skipped" stays before auto-next looks for the next one, so the change of face is not a surprise. */
const AUTO_NEXT_PAUSE_MS = 300;

export class Session {
  readonly store = new Store<SessionState>(initialState);
  /** The stranger's media, separate from the reducer's plain data. */
  readonly remote: Store<MediaStream | null>;
  /** When the stranger leaves, look for the next one without being asked. */
  autoNext = false;

  private matching: ResumableSocket | null = null;
  private signalling: SignallingChannel | null = null;
  private credentials: { id: string; token: string } | null = null;
  private prefs: Preferences | null = null;
  private iceServers: RTCIceServer[] = [];
  /** The visitor is about to start a video chat: keep a spare link ready. */
  private warm = false;
  private autoNextTimer: ReturnType<typeof setTimeout> | null = null;
  /** The state as of now; the store (what React sees) catches up after the effects. */
  private current: SessionState = initialState;

  private readonly peers: PeerLinks;
  private readonly outbox = new Outbox(() => this.matching);
  private readonly typing = new TypingIndicator((typing) => this.outbox.sendNow({ event: 'typing', typing }));
  private readonly readiness = new Readiness(() => this.isReady());
  private readonly stopWatchingMedia: () => void;
  /** Proofs of work for starts, one solved ahead. */
  private readonly proofs: ProofCache;
  /** What is left of START_RETRIES for the current start. */
  private startRetries = 0;

  constructor(private readonly deps: SessionDeps) {
    this.proofs = new ProofCache(deps.config.matchingUrl, deps.config.pow ?? 'off', deps.fetch ?? ((...a) => fetch(...a)));
    this.peers = new PeerLinks({
      media: deps.media,
      ...(deps.createPeerLink ? { createPeerLink: deps.createPeerLink } : {}),
      sendSignal: (type, data) => this.signalling?.signal(type, data),
      onState: (media) => this.dispatch({ type: 'media', media }),
      onNegotiated: () => this.readiness.check(),
      refreshIceServers: async () =>
        this.credentials ? fetchIceServers(deps.config.matchingUrl, this.credentials.token, deps.fetch) : null,
    });
    this.remote = this.peers.remote;
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
        this.peers.closeSpare();
      }
    });
  }

  get state(): SessionState {
    return this.current;
  }

  get sessionId(): string | null {
    return this.credentials?.id ?? null;
  }

  // ------------------------------------------------------------ what the visitor does

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
    this.outbox.clear();
    this.dispatch({ type: 'start', mode: prefs.mode });
    // The camera warms up while the socket opens; both are needed by `matched`.
    // Text has no camera or microphone: one prepared for video is released.
    if (prefs.mode === 'video') void this.deps.media.acquire();
    else this.deps.media.release();
    this.startRetries = START_RETRIES;
    this.connectStart(prefs);
    // From here the search keeps the spare (warmed on the landing screen, or made now).
    this.warm = false;
    // The spare peer connection is made while the socket opens, after this
    // click's task, so the socket's first events are not kept waiting.
    setTimeout(() => this.reconcile(), 0);
  }

  /**
   * Open the one-trip start, with a proof of work when the server asks for
   * one. The proof goes in the first URL only: a solution is good for one
   * session, and sent again it would only be refused.
   */
  private connectStart(prefs: Preferences): void {
    let altcha: string | undefined;
    const socket = this.openMatching(() => {
      const url = oneTripUrl(this.deps.config.matchingUrl, prefs, altcha);
      altcha = undefined;
      return url;
    });
    this.matching = socket;
    if (!this.proofs.enabled) {
      socket.connect();
      return;
    }
    // The proof was solved ahead (warmUp) in most cases; the next one is started once this is sent.
    void this.proofs.take().then((proof) => {
      if (this.matching !== socket) return;
      altcha = proof;
      socket.connect();
      this.proofs.prefetch();
    });
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
    return this.readiness.when();
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
    this.outbox.send({ event: 'next' });
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
    if (this.credentials) this.outbox.send({ event: 'stop' });
    this.deps.media.release();
  }

  /** The page is going away or the visitor went home: a clean leave (stop, then close 1000). */
  leave(): void {
    this.cancelAutoNext();
    if (this.matching && this.credentials && this.matching.isOpen) this.outbox.send({ event: 'stop' });
    this.endSession();
    this.current = { ...initialState, nextLineId: this.current.nextLineId };
    this.store.set(this.current);
    this.deps.media.release();
  }

  sendChat(text: string): boolean {
    if (this.state.phase !== 'matched' || text.trim() === '') return false;
    const msg: MatchingClientMessage = { event: 'chat', message: text };
    if (!ChatMessage.safeParse(msg).success) return false;
    if (!this.outbox.send(msg)) return false;
    // The stranger's client clears "typing…" when the message lands; no need to send typing:false.
    this.typing.reset();
    this.dispatch({ type: 'chat-sent', text });
    return true;
  }

  /** Called on every keystroke (true) and when the input is emptied (false). Sends only changes. */
  setTyping(active: boolean): void {
    if (this.state.phase === 'matched') this.typing.set(active);
  }

  /** Report the current (or last) stranger, then move on from them. */
  report(reason: string): void {
    if (!this.credentials) return;
    const msg: MatchingClientMessage = reason ? { event: 'report', reason: reason.slice(0, 200) } : { event: 'report' };
    this.outbox.send(msg);
    if (this.state.phase === 'matched') this.next();
    // After next(), which clears remarks about the old conversation.
    this.dispatch({ type: 'notice', notice: 'reported' });
  }

  /**
   * Block the current (or last) stranger: the chat ends as with next, and
   * the two are never paired again (the server keeps them apart); no report.
   */
  block(): void {
    if (!this.credentials) return;
    const matched = this.state.phase === 'matched';
    this.outbox.send({ event: 'block' });
    // The server queues us again itself after a block in a room (as after next).
    if (matched) {
      this.cancelAutoNext();
      if (this.prefs?.mode === 'video') void this.deps.media.acquire();
      this.dispatch({ type: 'next' });
    }
    this.dispatch({ type: 'notice', notice: 'blocked' });
  }

  /** The browser's network came back: do not wait for the backoff, and re-check the media path. */
  networkChanged(): void {
    // A socket that still looks open may be dead after a network change; the server resumes a replaced one.
    this.matching?.nudge();
    this.matching?.replace();
    this.signalling?.nudge();
    this.peers.current?.networkChanged();
  }

  clearNotice(): void {
    this.dispatch({ type: 'clear-notice' });
  }

  dispose(): void {
    this.warm = false;
    this.leave();
    this.proofs.clear();
    this.peers.dispose();
    this.stopWatchingMedia();
  }

  // ------------------------------------------------------------ state and effects

  /**
   * Effects first, then the screen: a re-render queued ahead of the offer
   * would hold it back by a frame's work on a slow phone.
   */
  private dispatch(action: Action): void {
    this.current = reduce(this.current, action);
    this.reconcile();
    this.store.set(this.current);
    this.readiness.check();
  }

  /** Make the peer connection and the signalling room match the state. */
  private reconcile(): void {
    const s = this.state;
    const room = s.phase === 'matched' && s.match?.mode === 'video' ? s.match : null;
    this.peers.leaveAllBut(room?.roomCode ?? null);
    // The room is set before the link begins, so the link's first signals follow the join.
    this.signalling?.setRoom(room?.roomCode ?? null);
    if (room) this.peers.enter(room, this.iceServers);
    const looking = (s.phase === 'connecting' || s.phase === 'waiting') && s.mode === 'video' && this.matching !== null;
    if (looking || (this.warm && this.matching === null)) this.peers.prepareSpare();
    else if (!room) this.peers.closeSpare();
    if (s.phase !== 'matched') this.typing.reset();
  }

  private isReady(): boolean {
    if (!this.matching) return true;
    if (!this.credentials) return false;
    if (this.prefs?.mode !== 'video') return true;
    if (this.signalling?.isOpen !== true) return false;
    // A failed video is as far as this room's connection goes.
    if (this.state.phase !== 'matched' || this.state.media === 'failed') return true;
    return this.peers.current?.negotiated ?? true;
  }

  // ------------------------------------------------------------ the matching socket

  /** The stranger's last line shown in this room, for a resumption (chat_seen). */
  private chatSeen(): { room: string; seq: number } | undefined {
    const { match, chatSeen } = this.state;
    return match && chatSeen > 0 ? { room: match.roomCode, seq: chatSeen } : undefined;
  }

  private openMatching(oneTrip: () => string): ResumableSocket {
    const socket: ResumableSocket = new ResumableSocket({
      url: (resume) =>
        resume && this.credentials
          ? resumeUrl(this.deps.config.matchingUrl, this.credentials.id, this.credentials.token, this.chatSeen())
          : oneTrip(),
      canResume: () => this.credentials !== null,
      onOpen: (resumed) => this.matching === socket && resumed && this.outbox.flush(),
      onMessage: (raw) => this.matching === socket && this.onMatchingMessage(raw),
      onState: (state) => this.matching === socket && this.onMatchingState(state),
      onFinal: (code) => this.matching === socket && this.onMatchingFinal(code),
      ...(this.deps.createSocket ? { createSocket: this.deps.createSocket } : {}),
      ...(this.deps.graceMs !== undefined ? { graceMs: this.deps.graceMs } : {}),
    });
    return socket;
  }

  private onMatchingMessage(raw: string): void {
    const parsed = parseMessage(MatchingServerMessage, raw);
    if (!parsed.ok) return; // the contract lets servers add events; ignore what we do not know
    const msg = parsed.value;
    if (msg.event === 'session') {
      this.credentials = { id: msg.id, token: msg.token };
      // Stop was pressed before the server knew us: tell it now (a `waiting` or
      // `matched` sent meanwhile is ignored while the stop is pending).
      if (this.current.pending === 'stop') this.outbox.sendNow({ event: 'stop' });
      // Opened now, while we wait, so that `matched` costs only a `join`.
      if (this.prefs?.mode === 'video') this.openSignalling();
    } else if (msg.event === 'matched') {
      this.iceServers = toRtcIceServers(msg.ice_servers);
    } else if (msg.event === 'ice-servers') {
      // Fresh TURN credentials before the ones of `matched` expire: a relay
      // allocation refreshes with them, and an ICE restart later uses them.
      this.iceServers = toRtcIceServers(msg.ice_servers);
      this.peers.updateIceServers(this.iceServers);
      return;
    }
    const before = this.state;
    this.dispatch({ type: 'server', message: msg });
    const after = this.state;
    if (msg.event === 'peer-disconnected' && before.phase === 'matched' && after.phase === 'ended' && this.autoNext) {
      this.autoNextTimer = setTimeout(() => {
        this.autoNextTimer = null;
        if (this.state.phase === 'ended') this.next();
      }, AUTO_NEXT_PAUSE_MS);
    }
  }

  private onMatchingState(state: SocketState): void {
    if (state === 'reconnecting') this.dispatch({ type: 'link', link: 'reconnecting' });
    else if (state === 'open') this.dispatch({ type: 'link', link: 'online' });
  }

  private onMatchingFinal(code: number): void {
    const hadSession = this.credentials !== null;
    const verdict = code === CloseCode.replaced || code === CloseCode.banned;
    if (!hadSession && !verdict && this.proofs.enabled && this.startRetries > 0 && this.prefs) {
      // The start may have been refused for its proof: solve a new one and start again.
      this.startRetries--;
      this.matching = null;
      this.connectStart(this.prefs);
      return;
    }
    this.endSession();
    if (this.state.failure?.kind === 'banned') return;
    const kind: Failure['kind'] =
      code === CloseCode.replaced
        ? 'replaced'
        : code === CloseCode.banned
          ? 'banned'
          : hadSession
            ? 'session-ended'
            : 'unreachable';
    this.dispatch({ type: 'failed', failure: { kind } });
  }

  // ------------------------------------------------------------ the signalling socket

  private openSignalling(): void {
    if (this.signalling || !this.credentials) return;
    const { id, token } = this.credentials;
    const channel = new SignallingChannel(
      resumeUrl(this.deps.config.signallingUrl, id, token),
      {
        onSignal: (msg: SignalEvent) => {
          if (this.signalling === channel) this.peers.inRoom(msg.room_code)?.handleSignal(msg.type, msg.data);
        },
        onJoined: (roomCode, resumed) => {
          if (resumed && this.signalling === channel) this.peers.inRoom(roomCode)?.signallingResumed();
        },
        onState: () => this.readiness.check(),
        onFinal: () => {
          // The matching socket is told too and ends the session; nothing more to resume here.
          if (this.signalling === channel) this.signalling = null;
          this.readiness.check();
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

  // ------------------------------------------------------------ endings

  /** Close both sockets and forget the session (the server ends it on a 1000 close). */
  private endSession(): void {
    const matching = this.matching;
    const signalling = this.signalling;
    this.matching = null;
    this.signalling = null;
    this.credentials = null;
    this.outbox.clear();
    this.peers.closeAll();
    this.typing.reset();
    signalling?.close(CloseCode.normal);
    matching?.close(CloseCode.normal);
    this.readiness.check();
  }

  private cancelAutoNext(): void {
    if (this.autoNextTimer !== null) clearTimeout(this.autoNextTimer);
    this.autoNextTimer = null;
  }
}
