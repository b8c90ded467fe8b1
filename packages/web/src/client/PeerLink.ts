// One RTCPeerConnection with one stranger, negotiated with the "perfect
// negotiation" pattern (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example):
// the initiator from `matched` is impolite, the other side polite, so offer
// collisions (ICE restarts from both ends at once) resolve themselves.
//
// The contract adds one rule: the first offer of a room must come from the
// initiator (else `role-mismatch`), so the responder makes no offer of its own
// until it has answered once.
import type { SignalType } from '@dyad/protocol';

export type LinkState = 'connecting' | 'connected' | 'reconnecting' | 'failed';

export interface PeerLinkOptions {
  readonly certificate: RTCCertificate | null;
  /** Tracks are added once this settles; signals wait for it, so they are never answered without our media. */
  readonly localStream: Promise<MediaStream | null>;
  sendSignal(type: SignalType, data: Record<string, unknown>): void;
  onState(state: LinkState): void;
  /** The first offer/answer exchange is complete. */
  onNegotiated?(): void;
  /**
   * The browser refused the initiator's first offer on a connection that was
   * not in a collision: this connection cannot go on, but nothing has reached
   * the stranger yet, so a fresh one may take its place. Without it the link
   * reports 'failed'.
   */
  onOfferRefused?(): void;
  /** Fresh ICE servers (TURN credentials expire) before an ICE restart; null keeps the current ones. */
  refreshIceServers?(): Promise<RTCIceServer[] | null>;
  createPeerConnection?(config: RTCConfiguration): RTCPeerConnection;
}

/** What `matched` tells a link: which room, which side, which ICE servers. */
export interface RoomInfo {
  readonly roomCode: string;
  readonly initiator: boolean;
  readonly iceServers: RTCIceServer[];
}

/** Chrome reports `disconnected` on a short blip; restart ICE only if it lasts. */
const DISCONNECTED_RESTART_MS = 3_000;
/** At most one ICE restart in this time, so a dead network is not flooded with offers. */
const RESTART_INTERVAL_MS = 8_000;

/**
 * A link is made before its room is known (while we wait for a stranger), so
 * the connection and our tracks are ready when `matched` arrives; `begin()`
 * then gives it the room and, for the initiator, sends the offer.
 */
export class PeerLink {
  roomCode: string | null = null;
  private readonly pc: RTCPeerConnection;
  private initiator = false;
  private polite = true;
  private makingOffer = false;
  private ignoreOffer = false;
  private settingRemoteAnswer = false;
  /**
   * The responder may not offer before its first answer (contract rule); the
   * initiator not before begin() has put its transceivers in place.
   */
  private mayOffer = false;
  /** Local candidates wait until the description they belong to has been sent. */
  private heldCandidates: Record<string, unknown>[] | null = null;
  private chain: Promise<void>;
  private closed = false;
  private everConnected = false;
  private negotiatedOnce = false;
  /** An offer or answer of ours has gone to the stranger. */
  private described = false;
  private lastRestart = 0;
  private disconnectedTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly senders = new Map<'audio' | 'video', RTCRtpSender>();
  /**
   * The stranger's tracks, gathered in a stream made up front: a video element
   * given it at `matched` has its player ready (tens of milliseconds of main
   * thread) before the offer and answer need that thread.
   */
  readonly remoteStream: MediaStream = new MediaStream();

  constructor(private readonly opts: PeerLinkOptions) {
    const config: RTCConfiguration = {
      iceServers: [],
      // Gather while we wait for a stranger, so the offer's candidates are ready at once.
      iceCandidatePoolSize: 1,
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
      ...(opts.certificate ? { certificates: [opts.certificate] } : {}),
    };
    this.pc = opts.createPeerConnection ? opts.createPeerConnection(config) : new RTCPeerConnection(config);
    this.pc.onnegotiationneeded = () => void this.negotiate();
    this.pc.onicecandidate = ({ candidate }) => {
      // A null or empty candidate only marks the end of gathering; the contract has no message for it.
      if (!candidate || !candidate.candidate) return;
      const data = candidate.toJSON() as Record<string, unknown>;
      if (this.heldCandidates) this.heldCandidates.push(data);
      else this.opts.sendSignal('candidate', data);
    };
    this.pc.ontrack = (ev) => this.onTrack(ev);
    this.pc.onconnectionstatechange = () => this.onConnectionState();
    this.chain = opts.localStream.then(
      (stream) => this.addLocal(stream),
      () => this.addLocal(null),
    );
  }

  /** The room is known: take its ICE servers and role; the initiator offers at once. */
  begin(room: RoomInfo): void {
    if (this.closed || this.roomCode !== null) return;
    this.roomCode = room.roomCode;
    this.initiator = room.initiator;
    this.polite = !room.initiator;
    // Chromium fires negotiationneeded for new ICE servers even on a connection
    // with no transceivers yet (our camera may still be opening). Offering then
    // would make an offer without m-lines, which max-bundle refuses ("no BUNDLE
    // group") and which leaves the connection refusing every later offer too.
    // So the initiator may offer only once its transceivers are in (below).
    if (room.iceServers.length > 0) this.setIceServers(room.iceServers);
    this.chain = this.chain.then(() => {
      if (this.closed || !this.initiator) return;
      // Without a camera or microphone the initiator still asks for the stranger's;
      // the responder's transceivers come from the offer.
      const have = new Set(this.pc.getTransceivers().map((t) => t.receiver.track.kind));
      for (const kind of ['audio', 'video'] as const) {
        if (!have.has(kind)) this.pc.addTransceiver(kind, { direction: 'recvonly' });
      }
      this.mayOffer = true;
      // negotiationneeded for our tracks fired before this and was held back; offer now.
      void this.negotiate();
    });
  }

  get negotiated(): boolean {
    return this.negotiatedOnce;
  }

  /** Apply one signal from the stranger. Signals are applied one at a time, in arrival order. */
  handleSignal(type: SignalType, data: Record<string, unknown>): void {
    this.chain = this.chain.then(() => this.apply(type, data)).catch(() => {
      // A bad or stale signal must not block the ones after it.
    });
  }

  /** Renewed ICE servers (TURN credentials expire): applied with setConfiguration, nothing restarts. */
  updateIceServers(iceServers: RTCIceServer[]): void {
    if (!this.closed && iceServers.length > 0) this.setIceServers(iceServers);
  }

  replaceTrack(kind: 'audio' | 'video', track: MediaStreamTrack): void {
    const sender = this.senders.get(kind);
    if (sender && !this.closed) void sender.replaceTrack(track).catch(() => undefined);
  }

  /** After our signalling socket came back, the network may have changed under us. */
  signallingResumed(): void {
    if (this.closed) return;
    const state = this.pc.connectionState;
    if (state === 'disconnected' || state === 'failed') this.restartIce(true);
  }

  /** The browser reports the network changed (online event). */
  networkChanged(): void {
    if (!this.closed && this.pc.connectionState !== 'connected') this.restartIce(true);
  }

  /** Idempotent. Local tracks are left running (they belong to LocalMedia); remote ones end here. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearDisconnectedTimer();
    const pc = this.pc;
    pc.onnegotiationneeded = null;
    pc.onicecandidate = null;
    pc.ontrack = null;
    pc.onconnectionstatechange = null;
    for (const r of pc.getReceivers()) r.track?.stop();
    pc.close();
    this.senders.clear();
  }

  private addLocal(stream: MediaStream | null): void {
    if (this.closed) return;
    for (const track of stream?.getTracks() ?? []) {
      const kind = track.kind === 'audio' ? 'audio' : 'video';
      if (this.senders.has(kind)) continue;
      this.senders.set(kind, this.pc.addTrack(track, stream!));
    }
  }

  private async negotiate(): Promise<void> {
    // One offer at a time, and only from a stable state (an explicit call and the event may meet).
    if (this.closed || !this.mayOffer || this.makingOffer || this.pc.signalingState !== 'stable') return;
    try {
      this.makingOffer = true;
      this.heldCandidates ??= [];
      await this.pc.setLocalDescription();
      if (this.closed) return;
      this.sendDescription();
    } catch {
      // Still stable with nothing sent yet: no collision (the stranger may not offer first), the browser refused it.
      // Otherwise a collision rolled our offer back; perfect negotiation carries on from the stranger's.
      if (this.initiator && !this.described && !this.closed && this.pc.signalingState === 'stable') this.offerRefused();
    } finally {
      this.makingOffer = false;
      this.flushCandidates();
    }
  }

  /**
   * Our first offer failed with nobody else's in flight (the stranger may not
   * offer first). Chromium, once it has refused an offer, refuses every later
   * one on the same connection, so trying again here would be in vain.
   */
  private offerRefused(): void {
    // Candidates of this connection are of no use to the stranger.
    this.heldCandidates = null;
    if (this.opts.onOfferRefused) this.opts.onOfferRefused();
    else this.opts.onState('failed');
  }

  private async apply(type: SignalType, data: Record<string, unknown>): Promise<void> {
    if (this.closed) return;
    if (type === 'candidate') {
      if (typeof data.candidate !== 'string') return;
      try {
        await this.pc.addIceCandidate(data as RTCIceCandidateInit);
      } catch (err) {
        // Candidates of an offer we ignored fail to apply; that is expected.
        if (!this.ignoreOffer) throw err;
      }
      return;
    }
    if (typeof data.sdp !== 'string') return;
    const description: RTCSessionDescriptionInit = { type, sdp: data.sdp };
    const readyForOffer =
      !this.makingOffer && (this.pc.signalingState === 'stable' || this.settingRemoteAnswer);
    const collision = type === 'offer' && !readyForOffer;
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    try {
      await this.applyDescription(description);
    } catch (err) {
      // Before the first exchange is through, nothing else will come to fix it: say so rather than wait for ever.
      if (!this.closed && !this.negotiatedOnce) this.opts.onState('failed');
      throw err;
    }
    if (this.closed) return;
    if (!this.negotiatedOnce && this.pc.signalingState === 'stable') {
      this.negotiatedOnce = true;
      this.opts.onNegotiated?.();
    }
  }

  /** The stranger's offer (answered) or answer. */
  private async applyDescription(description: RTCSessionDescriptionInit): Promise<void> {
    this.settingRemoteAnswer = description.type === 'answer';
    try {
      await this.pc.setRemoteDescription(description);
    } finally {
      this.settingRemoteAnswer = false;
    }
    if (this.closed) return;
    if (description.type === 'offer') {
      this.heldCandidates ??= [];
      try {
        await this.pc.setLocalDescription();
        if (this.closed) return;
        this.sendDescription();
        this.mayOffer = true;
      } finally {
        this.flushCandidates();
      }
    } else {
      this.mayOffer = true;
    }
  }

  private sendDescription(): void {
    const desc = this.pc.localDescription;
    if (!desc) return;
    this.described = true;
    this.opts.sendSignal(desc.type === 'answer' ? 'answer' : 'offer', { type: desc.type, sdp: desc.sdp });
  }

  private flushCandidates(): void {
    const held = this.heldCandidates;
    this.heldCandidates = null;
    if (this.closed || !held) return;
    for (const c of held) this.opts.sendSignal('candidate', c);
  }

  private onTrack(ev: RTCTrackEvent): void {
    if (this.closed) return;
    // One track per kind: a renegotiation that brings a new one replaces the old.
    for (const old of this.remoteStream.getTracks()) {
      if (old.kind === ev.track.kind && old !== ev.track) this.remoteStream.removeTrack(old);
    }
    if (!this.remoteStream.getTracks().includes(ev.track)) this.remoteStream.addTrack(ev.track);
  }

  private onConnectionState(): void {
    if (this.closed) return;
    switch (this.pc.connectionState) {
      case 'connected':
        this.everConnected = true;
        this.clearDisconnectedTimer();
        this.opts.onState('connected');
        break;
      case 'disconnected':
        this.opts.onState('reconnecting');
        this.clearDisconnectedTimer();
        this.disconnectedTimer = setTimeout(() => {
          this.disconnectedTimer = null;
          this.restartIce(false);
        }, DISCONNECTED_RESTART_MS);
        break;
      case 'failed':
        this.clearDisconnectedTimer();
        this.opts.onState(this.mayOffer ? 'reconnecting' : 'failed');
        this.restartIce(false);
        break;
      case 'new':
      case 'connecting':
        this.opts.onState(this.everConnected ? 'reconnecting' : 'connecting');
        break;
      default:
        break;
    }
  }

  private restartIce(force: boolean): void {
    if (this.closed || !this.mayOffer) return;
    const now = Date.now();
    if (!force && now - this.lastRestart < RESTART_INTERVAL_MS) {
      // Try again once the interval is over, if it is still needed.
      if (this.pc.connectionState === 'failed') {
        this.clearDisconnectedTimer();
        this.disconnectedTimer = setTimeout(() => {
          this.disconnectedTimer = null;
          if (this.pc.connectionState === 'failed' || this.pc.connectionState === 'disconnected') this.restartIce(false);
        }, RESTART_INTERVAL_MS - (now - this.lastRestart));
      }
      return;
    }
    this.lastRestart = now;
    const refresh = this.opts.refreshIceServers?.() ?? Promise.resolve(null);
    void refresh
      .catch(() => null)
      .then((servers) => {
        if (this.closed) return;
        if (servers) this.setIceServers(servers);
        this.pc.restartIce();
      });
  }

  private setIceServers(iceServers: RTCIceServer[]): void {
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch {
      try {
        // Some browsers refuse their own certificates back; leaving them out keeps them.
        const { certificates: _kept, ...rest } = this.pc.getConfiguration();
        this.pc.setConfiguration({ ...rest, iceServers });
      } catch {
        // An unusable server list leaves host candidates, which still connect many pairs.
      }
    }
  }

  private clearDisconnectedTimer(): void {
    if (this.disconnectedTimer !== null) clearTimeout(this.disconnectedTimer);
    this.disconnectedTimer = null;
  }
}
