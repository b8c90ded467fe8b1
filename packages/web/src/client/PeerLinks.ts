// The peer connection of the current room and the spare one made ahead (on
// the landing screen, or while we wait), so `matched` finds the connection
// and our tracks ready. Only the current link's callbacks reach the session.
import type { SignalType } from '@dyad/protocol';
import type { LocalMedia } from './LocalMedia.js';
import { PeerLink } from './PeerLink.js';
import type { LinkState, PeerLinkOptions, RoomInfo } from './PeerLink.js';
import { Store } from './Store.js';

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

export interface PeerLinksDeps {
  readonly media: LocalMedia;
  readonly createPeerLink?: (opts: PeerLinkOptions) => PeerLinkLike;
  /** The current link's signals, for the signalling room. */
  sendSignal(type: SignalType, data: Record<string, unknown>): void;
  /** The current link's media state. */
  onState(state: LinkState): void;
  /** The current link finished its first offer/answer. */
  onNegotiated(): void;
  refreshIceServers(): Promise<RTCIceServer[] | null>;
}

/**
 * How many fresh connections a room gets when the browser refuses the
 * initiator's first offer (Chromium then refuses every later one on that
 * connection). A safety net: the cause we know of is avoided in PeerLink.begin.
 * One fresh connection is nearly always enough, a second covers bad luck
 * twice; after that the room shows "video failed" rather than "Connecting
 * video…" for ever.
 */
export const MAX_LINK_REPLACEMENTS = 2;

export class PeerLinks {
  /** The stranger's media, for the screen. */
  readonly remote = new Store<MediaStream | null>(null);
  private link: PeerLinkLike | null = null;
  private spare: PeerLinkLike | null = null;
  /** What the current link began with (ICE servers kept up to date), for a replacement. */
  private room: RoomInfo | null = null;
  /** Links the current room has had replaced (MAX_LINK_REPLACEMENTS). */
  private replacements = 0;
  private certificate: RTCCertificate | null = null;
  private readonly stopSwapping: () => void;

  constructor(private readonly deps: PeerLinksDeps) {
    // A new camera or microphone goes to the call and to the spare alike.
    this.stopSwapping = deps.media.onTrackSwap((kind, track) => {
      this.link?.replaceTrack(kind, track);
      this.spare?.replaceTrack(kind, track);
    });
    // A DTLS certificate made ahead of time takes its generation off the path to the first frame.
    if (typeof RTCPeerConnection !== 'undefined' && RTCPeerConnection.generateCertificate) {
      RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams).then(
        (cert) => (this.certificate = cert),
        () => undefined,
      );
    }
  }

  /** The link of the current room, if any. */
  get current(): PeerLinkLike | null {
    return this.link;
  }

  /** The current link when it belongs to `roomCode`. */
  inRoom(roomCode: string): PeerLinkLike | null {
    return this.link?.roomCode === roomCode ? this.link : null;
  }

  /** Close the link unless it belongs to `roomCode`. */
  leaveAllBut(roomCode: string | null): void {
    if (!this.link || this.link.roomCode === roomCode) return;
    this.link.close();
    this.link = null;
    this.room = null;
    this.remote.set(null);
  }

  /** Begin the room's link, with the spare when there is one. */
  enter(room: { roomCode: string; initiator: boolean }, iceServers: RTCIceServer[]): void {
    if (this.link) return;
    this.room = { roomCode: room.roomCode, initiator: room.initiator, iceServers };
    this.replacements = 0;
    this.link = this.spare ?? this.make();
    this.spare = null;
    this.link.begin(this.room);
    this.remote.set(this.link.remoteStream);
  }

  /** Renewed ICE servers for the current room, kept for a replacement link too. */
  updateIceServers(iceServers: RTCIceServer[]): void {
    if (this.room) this.room = { ...this.room, iceServers };
    this.link?.updateIceServers(iceServers);
  }

  prepareSpare(): void {
    if (!this.spare) this.spare = this.make();
  }

  closeSpare(): void {
    this.spare?.close();
    this.spare = null;
  }

  /** Close the current link and the spare (the session ended). */
  closeAll(): void {
    this.link?.close();
    this.link = null;
    this.room = null;
    this.closeSpare();
    this.remote.set(null);
  }

  dispose(): void {
    this.closeAll();
    this.stopSwapping();
  }

  /**
   * The current link cannot make its first offer: a fresh one begins the same
   * room in its place (nothing has reached the stranger, who waits for our
   * offer), a bounded number of times.
   */
  private replaceCurrent(): void {
    const room = this.room;
    if (!this.link || !room) return;
    if (this.replacements >= MAX_LINK_REPLACEMENTS) {
      this.deps.onState('failed');
      return;
    }
    this.replacements++;
    this.link.close();
    this.link = this.make();
    this.link.begin(room);
    this.remote.set(this.link.remoteStream);
  }

  private make(): PeerLinkLike {
    let link: PeerLinkLike | null = null;
    const isCurrent = () => link !== null && this.link === link;
    const opts: PeerLinkOptions = {
      certificate: this.certificate,
      localStream: this.deps.media.acquire(),
      sendSignal: (type, data) => {
        if (isCurrent()) this.deps.sendSignal(type, data);
      },
      onState: (state) => {
        if (isCurrent()) this.deps.onState(state);
      },
      onNegotiated: () => {
        if (isCurrent()) this.deps.onNegotiated();
      },
      onOfferRefused: () => {
        if (isCurrent()) this.replaceCurrent();
      },
      refreshIceServers: () => this.deps.refreshIceServers(),
    };
    link = this.deps.createPeerLink ? this.deps.createPeerLink(opts) : new PeerLink(opts);
    return link;
  }
}
