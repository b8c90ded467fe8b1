import { beforeEach, describe, expect, it } from 'vitest';
import { FakeDevices, settle } from '../test-support/FakeDevices.js';
import { LocalMedia } from './LocalMedia.js';
import { PeerLink } from './PeerLink.js';
import type { LinkState, PeerLinkOptions } from './PeerLink.js';
import { MAX_LINK_REPLACEMENTS, PeerLinks } from './PeerLinks.js';

/** What Chromium says when it refuses an offer it made itself. */
const REFUSED = 'Failed to set local offer sdp: max-bundle configured but session description has no BUNDLE group';

/**
 * A stand-in RTCPeerConnection: signalling states as in the spec, no media.
 * As Chromium with max-bundle: new ICE servers bring negotiationneeded even
 * with no transceivers, an offer without any is refused, and a connection
 * that has refused an offer refuses every later one. The first `broken`
 * connections made refuse every offer.
 */
class FakePC {
  static all: FakePC[] = [];
  static broken = 0;
  signalingState: RTCSignalingState = 'stable';
  readonly connectionState: RTCPeerConnectionState = 'new';
  localDescription: RTCSessionDescriptionInit | null = null;
  onnegotiationneeded: (() => void) | null = null;
  onicecandidate: ((ev: { candidate: unknown }) => void) | null = null;
  ontrack: ((ev: unknown) => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;
  closed = false;
  offersRefused = 0;
  /** Set: the next setLocalDescription waits for the test to settle it. */
  hold: { resolve(): void; reject(err: Error): void } | null = null;
  /** Set: the next answer cannot be made. */
  refuseAnswer = false;
  private readonly transceivers: { receiver: { track: { kind: string } }; direction: string }[] = [];
  private refusesOffers: boolean;

  constructor(public config: RTCConfiguration) {
    FakePC.all.push(this);
    this.refusesOffers = FakePC.all.length <= FakePC.broken;
  }
  getConfiguration() {
    return this.config;
  }
  setConfiguration(config: RTCConfiguration) {
    this.config = config;
    setTimeout(() => this.onnegotiationneeded?.(), 0);
  }
  getTransceivers() {
    return this.transceivers;
  }
  getReceivers() {
    return [];
  }
  addTransceiver(kind: string, init?: { direction?: string }) {
    this.transceivers.push({ receiver: { track: { kind } }, direction: init?.direction ?? 'sendrecv' });
  }
  addTrack(track: { kind: string }) {
    this.addTransceiver(track.kind);
    return { track };
  }
  async setLocalDescription(): Promise<void> {
    if (this.hold) {
      const held = this.hold;
      await new Promise<void>((resolve, reject) => {
        held.resolve = resolve;
        held.reject = reject;
      });
    }
    const type = this.signalingState === 'have-remote-offer' ? 'answer' : 'offer';
    if (type === 'offer' && (this.refusesOffers || this.transceivers.length === 0)) {
      this.refusesOffers = true;
      this.offersRefused++;
      throw new DOMException(REFUSED, 'OperationError');
    }
    if (type === 'answer' && this.refuseAnswer) throw new DOMException('no answer', 'OperationError');
    this.localDescription = { type, sdp: `${type} of pc${FakePC.all.indexOf(this) + 1}` };
    this.signalingState = type === 'offer' ? 'have-local-offer' : 'stable';
  }
  async setRemoteDescription(d: RTCSessionDescriptionInit): Promise<void> {
    // An offer in have-local-offer rolls ours back first (perfect negotiation's implicit rollback).
    this.signalingState = d.type === 'offer' ? 'have-remote-offer' : 'stable';
  }
  async addIceCandidate(): Promise<void> {}
  restartIce() {}
  close() {
    this.closed = true;
    this.signalingState = 'closed';
  }
}

function options(over: Partial<PeerLinkOptions> = {}) {
  const sent: [string, Record<string, unknown>][] = [];
  const states: LinkState[] = [];
  const opts: PeerLinkOptions = {
    certificate: null,
    localStream: Promise.resolve(null),
    sendSignal: (type, data) => sent.push([type, data]),
    onState: (state) => states.push(state),
    createPeerConnection: (config) => new FakePC(config) as unknown as RTCPeerConnection,
    ...over,
  };
  return { opts, sent, states };
}

const ICE = [{ urls: ['stun:127.0.0.1:3478'] }];

beforeEach(() => {
  FakePC.all = [];
  FakePC.broken = 0;
});

describe('PeerLink', () => {
  it('the initiator offers on begin', async () => {
    const { opts, sent } = options();
    new PeerLink(opts).begin({ roomCode: 'R1', initiator: true, iceServers: ICE });
    await settle();
    expect(sent.map(([type]) => type)).toEqual(['offer']);
  });

  it('an initiator whose camera is still opening does not offer on the negotiationneeded new ICE servers bring', async () => {
    let grant: (stream: MediaStream | null) => void = () => undefined;
    const { opts, sent } = options({ localStream: new Promise((resolve) => (grant = resolve)) });
    new PeerLink(opts).begin({ roomCode: 'R1', initiator: true, iceServers: ICE });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(FakePC.all[0]!.offersRefused).toBe(0);
    grant(null);
    await settle();
    expect(FakePC.all[0]!.offersRefused).toBe(0);
    expect(sent.map(([type]) => type)).toEqual(['offer']);
  });

  it('an initiator whose first offer the browser refuses says so (onOfferRefused), or reports failed without a handler', async () => {
    FakePC.broken = 2;
    let refused = 0;
    const first = options({ onOfferRefused: () => refused++ });
    new PeerLink(first.opts).begin({ roomCode: 'R1', initiator: true, iceServers: ICE });
    await settle();
    expect(refused).toBe(1);
    expect(first.sent).toEqual([]);
    expect(first.states).toEqual([]);

    const second = options();
    new PeerLink(second.opts).begin({ roomCode: 'R1', initiator: true, iceServers: ICE });
    await settle();
    expect(second.states).toEqual(['failed']);
    expect(second.sent).toEqual([]);
  });

  it('an offer lost to a collision (polite side) is no refusal: the stranger\'s offer is answered', async () => {
    let refused = 0;
    const { opts, sent, states } = options({ onOfferRefused: () => refused++ });
    const link = new PeerLink(opts);
    link.begin({ roomCode: 'R1', initiator: false, iceServers: ICE });
    link.handleSignal('offer', { type: 'offer', sdp: 'o1' });
    await settle();
    expect(sent.map(([type]) => type)).toEqual(['answer']);

    // Both ends renegotiate at once: ours is held in the browser while the stranger's lands and rolls it back.
    const pc = FakePC.all[0]!;
    const held = { resolve() {}, reject(_: Error) {} };
    pc.hold = held;
    pc.onnegotiationneeded?.();
    await settle();
    pc.hold = null;
    link.handleSignal('offer', { type: 'offer', sdp: 'o2' });
    await settle();
    held.reject(new DOMException('rolled back', 'InvalidStateError'));
    await settle();
    expect(refused).toBe(0);
    expect(states).toEqual([]);
    expect(sent.map(([type]) => type)).toEqual(['answer', 'answer']);
  });

  it('a renegotiation offer refused after the first exchange is no reason to start over', async () => {
    let refused = 0;
    const { opts, sent } = options({ onOfferRefused: () => refused++ });
    const link = new PeerLink(opts);
    link.begin({ roomCode: 'R1', initiator: true, iceServers: ICE });
    await settle();
    link.handleSignal('answer', { type: 'answer', sdp: 'a1' });
    await settle();
    expect(sent.map(([type]) => type)).toEqual(['offer']);
    const pc = FakePC.all[0]!;
    pc.setLocalDescription = () => Promise.reject(new DOMException(REFUSED, 'OperationError'));
    pc.onnegotiationneeded?.();
    await settle();
    expect(refused).toBe(0);
  });

  it('a responder that cannot answer the first offer reports failed instead of waiting for ever', async () => {
    const { opts, sent, states } = options();
    const link = new PeerLink(opts);
    link.begin({ roomCode: 'R1', initiator: false, iceServers: ICE });
    FakePC.all[0]!.refuseAnswer = true;
    link.handleSignal('offer', { type: 'offer', sdp: 'o1' });
    await settle();
    expect(sent).toEqual([]);
    expect(states).toEqual(['failed']);
  });
});

describe('PeerLinks: a connection that cannot make its first offer', () => {
  function links() {
    const devices = new FakeDevices();
    const media = new LocalMedia(devices.asMediaDevices());
    const sent: [string, Record<string, unknown>][] = [];
    const states: LinkState[] = [];
    const peers = new PeerLinks({
      media,
      createPeerLink: (opts) =>
        new PeerLink({ ...opts, createPeerConnection: (config) => new FakePC(config) as unknown as RTCPeerConnection }),
      sendSignal: (type, data) => sent.push([type, data]),
      onState: (state) => states.push(state),
      onNegotiated: () => undefined,
      refreshIceServers: async () => null,
    });
    return { peers, devices, sent, states };
  }

  it('is replaced by a fresh one for the same room, whose offer goes to the stranger', async () => {
    FakePC.broken = 1;
    const { peers, devices, sent, states } = links();
    peers.prepareSpare();
    peers.enter({ roomCode: 'R1', initiator: true }, ICE);
    devices.asks[0]!.grant();
    await settle();

    expect(FakePC.all).toHaveLength(2);
    const [broken, fresh] = FakePC.all as [FakePC, FakePC];
    expect(broken.offersRefused).toBe(1);
    expect(broken.closed).toBe(true);
    // The same room, ICE servers and tracks (one camera request); only the new connection's offer is sent.
    expect(peers.current?.roomCode).toBe('R1');
    expect(fresh.config.iceServers).toEqual(ICE);
    expect(fresh.getTransceivers().map((t) => t.direction)).toEqual(['sendrecv', 'sendrecv']);
    expect(devices.asks).toHaveLength(1);
    expect(sent).toEqual([['offer', { type: 'offer', sdp: 'offer of pc2' }]]);
    expect(states).toEqual([]);
  });

  it(`gives up after ${MAX_LINK_REPLACEMENTS} replacements and reports failed`, async () => {
    FakePC.broken = 100;
    const { peers, devices, sent, states } = links();
    peers.enter({ roomCode: 'R1', initiator: true }, ICE);
    devices.asks[0]!.grant();
    await settle();
    expect(FakePC.all).toHaveLength(1 + MAX_LINK_REPLACEMENTS);
    expect(sent).toEqual([]);
    expect(states).toEqual(['failed']);

    // The next room starts with a full allowance again.
    peers.leaveAllBut(null);
    peers.enter({ roomCode: 'R2', initiator: true }, ICE);
    await settle();
    expect(FakePC.all).toHaveLength(2 * (1 + MAX_LINK_REPLACEMENTS));
  });

  it('renewed ICE servers reach the replacement', async () => {
    FakePC.broken = 1;
    const { peers, devices } = links();
    peers.enter({ roomCode: 'R1', initiator: true }, ICE);
    const renewed = [{ urls: ['turn:127.0.0.1:3478'], username: 'u', credential: 'c' }];
    peers.updateIceServers(renewed);
    devices.asks[0]!.grant();
    await settle();
    expect(FakePC.all).toHaveLength(2);
    expect(FakePC.all[1]!.config.iceServers).toEqual(renewed);
  });
});
