import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createChallenge } from 'altcha-lib';
import { CloseCode } from '@dyad/protocol';
import { FakeDevices, settle } from '../test-support/FakeDevices.js';
import { LocalMedia } from './LocalMedia.js';
import { deriveKey } from './pow.js';
import type { PeerLinkOptions, RoomInfo } from './PeerLink.js';
import { parseConfig } from './config.js';
import { Session, cleanInterests, oneTripUrl } from './Session.js';
import type { PeerLinkLike } from './Session.js';

/** A stand-in WebSocket driven by the test. */
class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  closedWith: number | undefined;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(frame: string) {
    this.sent.push(JSON.parse(frame) as Record<string, unknown>);
  }
  close(code?: number) {
    this.closedWith = code;
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(msg: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  events() {
    return this.sent.map((m) => m.event);
  }
}

class FakeLink implements PeerLinkLike {
  static all: FakeLink[] = [];
  roomCode: string | null = null;
  readonly remoteStream = null;
  negotiated = false;
  room: RoomInfo | null = null;
  signals: [string, Record<string, unknown>][] = [];
  closed = false;
  resumed = 0;
  constructor(readonly opts: PeerLinkOptions) {
    FakeLink.all.push(this);
  }
  begin(room: RoomInfo) {
    this.room = room;
    this.roomCode = room.roomCode;
  }
  handleSignal(type: string, data: Record<string, unknown>) {
    this.signals.push([type, data]);
  }
  iceUpdates: RTCIceServer[][] = [];
  updateIceServers(servers: RTCIceServer[]) {
    this.iceUpdates.push(servers);
  }
  replaced: [string, MediaStreamTrack][] = [];
  replaceTrack(kind: string, track: MediaStreamTrack) {
    this.replaced.push([kind, track]);
  }
  signallingResumed() {
    this.resumed++;
  }
  networkChanged() {}
  close() {
    this.closed = true;
  }
}

const config = { matchingUrl: 'http://127.0.0.1:8000', signallingUrl: 'https://sig.example:8001/' };

function makeSession(media: LocalMedia = new LocalMedia(undefined)) {
  return new Session({
    config,
    media,
    createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
    createPeerLink: (opts) => new FakeLink(opts),
    graceMs: 15_000,
  });
}

const matched = (over: Record<string, unknown> = {}) => ({
  event: 'matched',
  room_code: 'R1',
  initiator: true,
  peer: 'p1',
  common_interests: [],
  mode: 'video',
  ice_servers: [{ urls: ['stun:127.0.0.1:3478'] }],
  ...over,
});

beforeEach(() => {
  FakeSocket.all = [];
  FakeLink.all = [];
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Start in video mode and receive the session; returns [matching, signalling]. */
function started(session: Session, mode: 'video' | 'text' = 'video') {
  session.start({ mode, interests: ['Music', 'go'], lang: 'en' });
  const matching = FakeSocket.all[0]!;
  matching.open();
  matching.receive({ event: 'session', id: 'me', token: 'tok/+=' });
  matching.receive({ event: 'waiting' });
  return [matching, FakeSocket.all[1]] as const;
}

describe('/config.json', () => {
  it('says whether the server pairs by region; absent or garbled: nothing said (the choice is offered)', () => {
    const urls = { matching_url: 'http://h:8000', signalling_url: 'http://h:8001' };
    expect(parseConfig({ ...urls, region_filter: false })?.regionFilter).toBe(false);
    expect(parseConfig({ ...urls, region_filter: true })?.regionFilter).toBe(true);
    expect(parseConfig({ ...urls, region_filter: 'no' })?.regionFilter).toBeUndefined();
    expect(parseConfig(urls)?.regionFilter).toBeUndefined();
  });
});

describe('one-trip URL', () => {
  it('carries mode, interests and lang, with literal commas between interests', () => {
    const url = oneTripUrl('https://dyad.example/', { mode: 'text', interests: ['Rock & Roll', 'go'], lang: 'pt-BR' });
    expect(url).toBe('wss://dyad.example/ws?mode=text&interests=rock%20%26%20roll,go&lang=pt-BR');
  });

  it('carries region unless it is anywhere, and show_country only when chosen', () => {
    expect(oneTripUrl('http://h:1', { mode: 'video', interests: [], lang: null, region: 'near', showCountry: true })).toBe(
      'ws://h:1/ws?mode=video&region=near&show_country=true',
    );
    expect(oneTripUrl('http://h:1', { mode: 'video', interests: [], lang: null, region: 'anywhere', showCountry: false })).toBe('ws://h:1/ws?mode=video');
    expect(oneTripUrl('http://h:1', { mode: 'text', interests: [], lang: null, region: 'south-america' })).toBe('ws://h:1/ws?mode=text&region=south-america');
  });

  it('drops a language the contract would refuse', () => {
    expect(oneTripUrl('http://h:1', { mode: 'video', interests: [], lang: 'x' })).toBe('ws://h:1/ws?mode=video');
  });

  it('cleans interests: lower case, no duplicates, no commas, at most 10', () => {
    expect(cleanInterests([' Music ', 'music', 'a,b', ''])).toEqual(['music', 'a b']);
    expect(cleanInterests(Array.from({ length: 15 }, (_, i) => `t${i}`))).toHaveLength(10);
  });
});

describe('Session', () => {
  it('makes the peer connection while the socket opens, and begins it on matched', () => {
    const session = makeSession();
    session.start({ mode: 'video', interests: [], lang: null });
    vi.advanceTimersByTime(0);
    expect(FakeLink.all).toHaveLength(1);
    expect(FakeLink.all[0]!.roomCode).toBeNull();
    const m = FakeSocket.all[0]!;
    m.open();
    m.receive({ event: 'session', id: 'me', token: 't' });
    m.receive({ event: 'waiting' });
    expect(FakeLink.all).toHaveLength(1);
    m.receive(matched());
    expect(FakeLink.all).toHaveLength(1);
    expect(FakeLink.all[0]!.room).toMatchObject({ roomCode: 'R1', initiator: true });
    session.stop();
    expect(FakeLink.all[0]!.closed).toBe(true);
  });

  it('warmUp makes the link on the landing screen; Start then uses it', () => {
    const session = makeSession();
    session.warmUp();
    session.warmUp();
    expect(FakeLink.all).toHaveLength(1);
    session.coolDown();
    expect(FakeLink.all[0]!.closed).toBe(true);
    session.warmUp();
    expect(FakeLink.all).toHaveLength(2);
    const [m] = started(session);
    vi.advanceTimersByTime(0);
    m.receive(matched());
    expect(FakeLink.all).toHaveLength(2);
    expect(FakeLink.all[1]!.room?.roomCode).toBe('R1');
  });

  it('whenReady waits for the session and, in video mode, the signalling socket', async () => {
    const session = makeSession();
    let ready = false;
    session.start({ mode: 'video', interests: [], lang: null });
    void session.whenReady().then(() => (ready = true));
    const m = FakeSocket.all[0]!;
    m.open();
    m.receive({ event: 'session', id: 'me', token: 't' });
    await Promise.resolve();
    expect(ready).toBe(false);
    FakeSocket.all[1]!.open();
    await Promise.resolve();
    expect(ready).toBe(true);

    // Met at once: the screen waits for offer and answer as well.
    const met = makeSession();
    let metReady = false;
    met.start({ mode: 'video', interests: [], lang: null });
    void met.whenReady().then(() => (metReady = true));
    const m2 = FakeSocket.all.at(-1)!;
    m2.open();
    m2.receive({ event: 'session', id: 'me3', token: 't' });
    m2.receive(matched());
    FakeSocket.all.at(-1)!.open();
    await Promise.resolve();
    expect(metReady).toBe(false);
    const link = FakeLink.all.find((l) => l.roomCode === 'R1' && !l.closed)!;
    link.negotiated = true;
    link.opts.onNegotiated?.();
    await Promise.resolve();
    expect(metReady).toBe(true);

    const text = makeSession();
    let textReady = false;
    text.start({ mode: 'text', interests: [], lang: null });
    void text.whenReady().then(() => (textReady = true));
    FakeSocket.all.at(-1)!.open();
    FakeSocket.all.at(-1)!.receive({ event: 'session', id: 'me2', token: 't' });
    await Promise.resolve();
    expect(textReady).toBe(true);
  });

  it('a spare link is dropped when we stop looking', () => {
    const session = makeSession();
    started(session);
    session.stop();
    expect(FakeLink.all.every((l) => l.closed)).toBe(true);
  });

  it('opens the signalling socket as soon as the session exists, before any match', () => {
    const session = makeSession();
    const [matching, signalling] = started(session);
    expect(matching.url).toBe('ws://127.0.0.1:8000/ws?mode=video&interests=music,go&lang=en');
    expect(signalling?.url).toBe('wss://sig.example:8001/ws/me?token=tok%2F%2B%3D');
    expect(session.state.phase).toBe('waiting');
  });

  it('renewed TURN credentials ("ice-servers") go to the current peer connection; the screen does not change', () => {
    const session = makeSession();
    const [m] = started(session);
    m.receive(matched());
    const link = FakeLink.all.find((l) => l.roomCode === 'R1')!;
    const before = session.state;
    const fresh = [{ urls: ['turn:127.0.0.1:3478'], username: '1900000000:me', credential: 'c2' }];
    m.receive({ event: 'ice-servers', ice_servers: fresh, ttl: 600 });
    expect(link.iceUpdates).toEqual([fresh]);
    expect(session.state).toBe(before);
    // A malformed one is ignored, as any message that breaks the schema.
    m.receive({ event: 'ice-servers', ice_servers: 'nope', ttl: 600 });
    expect(link.iceUpdates).toHaveLength(1);
  });

  it('joins on matched and sends signals right behind the join, in order', () => {
    const session = makeSession();
    const [, signalling] = started(session);
    signalling!.open();
    matching().receive(matched());
    expect(signalling!.sent).toEqual([{ event: 'join', room_code: 'R1' }]);

    const link = FakeLink.all[0]!;
    expect(link.room?.initiator).toBe(true);
    expect(link.room?.iceServers).toEqual([{ urls: ['stun:127.0.0.1:3478'] }]);
    // No round trip for `verified` before the offer: the server handles a socket's frames in order.
    link.opts.sendSignal('offer', { type: 'offer', sdp: 'v=0' });
    link.opts.sendSignal('candidate', { candidate: 'c1' });
    expect(signalling!.sent.slice(1)).toEqual([
      { event: 'signal', room_code: 'R1', type: 'offer', data: { type: 'offer', sdp: 'v=0' } },
      { event: 'signal', room_code: 'R1', type: 'candidate', data: { candidate: 'c1' } },
    ]);

    signalling!.receive({ event: 'verified', room_code: 'R1', role: 'initiator', peer: 'p1', peer_joined: false });
    signalling!.receive({ event: 'signal', room_code: 'R1', from: 'p1', type: 'answer', data: { sdp: 'x' } });
    signalling!.receive({ event: 'signal', room_code: 'OLD', from: 'p0', type: 'candidate', data: { candidate: 'c' } });
    expect(link.signals).toEqual([['answer', { sdp: 'x' }]]);
  });

  it('a link that cannot make its first offer is replaced for the same room; after that the video is reported failed', async () => {
    const session = makeSession();
    const [, signalling] = started(session);
    signalling!.open();
    matching().receive(matched());
    let ready = false;
    void session.whenReady().then(() => (ready = true));
    const first = FakeLink.all.find((l) => l.roomCode === 'R1')!;

    first.opts.onOfferRefused!();
    const second = FakeLink.all.at(-1)!;
    expect(first.closed).toBe(true);
    expect(second).not.toBe(first);
    expect(second.room).toEqual(first.room);
    // Only the current link speaks for the room.
    first.opts.sendSignal('candidate', { candidate: 'old' });
    second.opts.sendSignal('offer', { type: 'offer', sdp: 'v=0' });
    expect(signalling!.sent.slice(1)).toEqual([
      { event: 'signal', room_code: 'R1', type: 'offer', data: { type: 'offer', sdp: 'v=0' } },
    ]);
    expect(session.state.media).toBe('connecting');

    second.opts.onOfferRefused!();
    FakeLink.all.at(-1)!.opts.onOfferRefused!();
    expect(FakeLink.all.filter((l) => l.roomCode === 'R1')).toHaveLength(3);
    expect(session.state.media).toBe('failed');
    await settle();
    expect(ready).toBe(true);
  });

  it('holds signals while the signalling socket is away and sends them after the next join', () => {
    const session = makeSession();
    const [, signalling] = started(session);
    signalling!.open();
    matching().receive(matched());
    signalling!.drop(1006);
    const link = FakeLink.all[0]!;
    link.opts.sendSignal('candidate', { candidate: 'c1' });
    link.opts.sendSignal('candidate', { candidate: 'c2' });
    vi.advanceTimersByTime(0);
    const again = FakeSocket.all[2]!;
    again.open();
    expect(again.sent).toEqual([
      { event: 'join', room_code: 'R1' },
      { event: 'signal', room_code: 'R1', type: 'candidate', data: { candidate: 'c1' } },
      { event: 'signal', room_code: 'R1', type: 'candidate', data: { candidate: 'c2' } },
    ]);
  });

  it('joins when the signalling socket opens after the match', () => {
    const session = makeSession();
    const [matchingSocket, signalling] = started(session);
    matchingSocket.receive(matched());
    expect(signalling!.sent).toEqual([]);
    signalling!.open();
    expect(signalling!.sent).toEqual([{ event: 'join', room_code: 'R1' }]);
  });

  it('next closes the peer connection and asks for another stranger', () => {
    const session = makeSession();
    const [m, signalling] = started(session);
    signalling!.open();
    m.receive(matched());
    const link = FakeLink.all[0]!;
    session.next();
    expect(link.closed).toBe(true);
    expect(m.events()).toEqual(['next']);
    expect(session.state.phase).toBe('waiting');
    m.receive({ event: 'waiting' });
    m.receive(matched({ room_code: 'R2', peer: 'p2', initiator: false }));
    expect(FakeLink.all).toHaveLength(2);
    expect(FakeLink.all[1]!.room).toMatchObject({ roomCode: 'R2', initiator: false });
    expect(signalling!.sent.at(-1)).toEqual({ event: 'join', room_code: 'R2' });
  });

  it('peer-disconnected closes the peer connection; auto-next sends next by itself', () => {
    const session = makeSession();
    session.autoNext = true;
    const [m, signalling] = started(session);
    signalling!.open();
    m.receive(matched());
    m.receive({ event: 'peer-disconnected', reason: 'skip', message: 'Stranger skipped' });
    expect(FakeLink.all[0]!.closed).toBe(true);
    expect(session.state.phase).toBe('ended');
    expect(m.events()).toEqual([]);
    vi.advanceTimersByTime(1_000);
    expect(m.events()).toEqual(['next']);
    expect(session.state.phase).toBe('waiting');
  });

  it('without auto-next it waits on the end screen', () => {
    const session = makeSession();
    const [m] = started(session);
    m.receive(matched());
    m.receive({ event: 'peer-disconnected', reason: 'left', message: 'Stranger left' });
    vi.advanceTimersByTime(5_000);
    expect(m.events()).toEqual([]);
  });

  it('resumes a dropped matching socket with id and token, keeping the partner', () => {
    const session = makeSession();
    const [m, signalling] = started(session);
    signalling!.open();
    m.receive(matched());
    session.sendChat('before');
    m.drop(1006);
    expect(session.state.link).toBe('reconnecting');
    // Written while away: delivered after the socket is back.
    session.sendChat('during');
    vi.advanceTimersByTime(0);
    const resumed = FakeSocket.all[2]!;
    expect(resumed.url).toBe('ws://127.0.0.1:8000/ws/me?token=tok%2F%2B%3D');
    resumed.open();
    expect(resumed.sent).toEqual([{ event: 'chat', message: 'during' }]);
    resumed.receive(matched({ resumed: true }));
    expect(FakeLink.all).toHaveLength(1);
    expect(FakeLink.all[0]!.closed).toBe(false);
    expect(session.state.link).toBe('online');
    expect(session.state.lines.flatMap((l) => (l.from === 'you' ? [l.text] : []))).toEqual(['before', 'during']);
  });

  it('resumes a matching socket the server closed with 1013 (its place could not be settled, try again), as after a drop', () => {
    const session = makeSession();
    const [m, signalling] = started(session);
    signalling!.open();
    m.receive(matched());
    m.drop(CloseCode.tryAgain);
    expect(session.state.link).toBe('reconnecting');
    vi.advanceTimersByTime(0);
    const resumed = FakeSocket.all[2]!;
    expect(resumed.url).toBe('ws://127.0.0.1:8000/ws/me?token=tok%2F%2B%3D');
    resumed.open();
    resumed.receive(matched({ resumed: true }));
    expect(session.state.link).toBe('online');
    expect(FakeLink.all[0]!.closed).toBe(false);
  });

  it('a resumption names the stranger\'s last line shown (chat_seen), and a line told again is shown once', () => {
    const session = makeSession();
    const [m, signalling] = started(session);
    signalling!.open();
    m.receive(matched());
    const room = session.state.match!.roomCode;
    const peer = session.state.match!.peer;
    m.receive({ event: 'chat', sender: peer, message: 'one', timestamp: 1, seq: 1 });
    m.receive({ event: 'chat', sender: peer, message: 'two', timestamp: 2, seq: 2 });
    m.drop(1006);
    vi.advanceTimersByTime(0);
    const resumed = FakeSocket.all[2]!;
    expect(resumed.url).toBe(`ws://127.0.0.1:8000/ws/me?token=tok%2F%2B%3D&chat_seen=${encodeURIComponent(`${room}:2`)}`);
    resumed.open();
    resumed.receive(matched({ resumed: true }));
    resumed.receive({ event: 'chat', sender: peer, message: 'two', timestamp: 2, seq: 2 });
    resumed.receive({ event: 'chat', sender: peer, message: 'three', timestamp: 3, seq: 3 });
    expect(session.state.lines.flatMap((l) => (l.from === 'stranger' ? [l.text] : []))).toEqual(['one', 'two', 'three']);
  });

  it('rejoins the room when the signalling socket comes back', () => {
    const session = makeSession();
    const [m, signalling] = started(session);
    signalling!.open();
    m.receive(matched());
    signalling!.receive({ event: 'verified', room_code: 'R1', role: 'initiator', peer: 'p1', peer_joined: true });
    signalling!.drop(1006);
    vi.advanceTimersByTime(0);
    const again = FakeSocket.all[2]!;
    expect(again.url).toBe(signalling!.url);
    again.open();
    expect(again.sent).toEqual([{ event: 'join', room_code: 'R1' }]);
    again.receive({ event: 'verified', room_code: 'R1', role: 'initiator', peer: 'p1', peer_joined: true });
    expect(FakeLink.all[0]!.resumed).toBe(1);
  });

  it('gives up after the grace period and says the connection was lost', () => {
    const session = makeSession();
    const [m] = started(session, 'text');
    m.receive(matched({ mode: 'text' }));
    m.drop(1006);
    for (let i = 0; i < 40; i++) {
      vi.advanceTimersByTime(500);
      const last = FakeSocket.all.at(-1)!;
      if (last !== m && last.readyState === 0) last.drop(1006);
    }
    expect(session.state.phase).toBe('idle');
    expect(session.state.failure?.kind).toBe('session-ended');
  });

  it('does not retry a socket replaced by another tab', () => {
    const session = makeSession();
    const [m] = started(session, 'text');
    m.drop(4002);
    vi.advanceTimersByTime(1_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(session.state.failure?.kind).toBe('replaced');
  });

  it('text mode never opens a signalling socket or a peer connection', () => {
    const session = makeSession();
    const [m, signalling] = started(session, 'text');
    expect(signalling).toBeUndefined();
    m.receive(matched({ mode: 'text' }));
    expect(FakeLink.all).toHaveLength(0);
    expect(session.state.phase).toBe('matched');
  });

  it('starting text releases a camera prepared for video and its spare link; text asks for none', async () => {
    const devices = new FakeDevices();
    const media = new LocalMedia(devices.asMediaDevices());
    const session = makeSession(media);
    // Video chosen and confirmed on the landing screen: camera and spare link made ahead.
    void media.acquire();
    devices.asks[0]!.grant();
    await settle();
    session.warmUp();
    expect(devices.live).toHaveLength(2);
    expect(FakeLink.all).toHaveLength(1);

    const [m] = started(session, 'text');
    expect(devices.live).toEqual([]);
    expect(FakeLink.all[0]!.closed).toBe(true);
    m.receive(matched({ mode: 'text' }));
    m.receive({ event: 'peer-disconnected', reason: 'left', message: 'Stranger left' });
    session.next();
    session.stop();
    session.next();
    vi.advanceTimersByTime(1_000);
    await settle();
    expect(devices.asks).toHaveLength(1);
    expect(FakeLink.all).toHaveLength(1);
    expect(devices.live).toEqual([]);
  });

  it('a video chat left for text (Use text chat) ends every track', async () => {
    const devices = new FakeDevices();
    const media = new LocalMedia(devices.asMediaDevices());
    const session = makeSession(media);
    const [m] = started(session, 'video');
    devices.asks[0]!.grant();
    await settle();
    m.receive(matched());
    expect(devices.live).toHaveLength(2);
    session.start({ mode: 'text', interests: [], lang: null });
    vi.advanceTimersByTime(0);
    expect(devices.live).toEqual([]);
    expect(FakeLink.all.every((l) => l.closed)).toBe(true);
    expect(devices.asks).toHaveLength(1);
  });

  it('a camera or microphone chosen in a call goes to the peer connection (replaceTrack) and to the spare', async () => {
    const devices = new FakeDevices([
      { kind: 'videoinput', deviceId: 'front', label: 'Front', facingMode: 'user' },
      { kind: 'videoinput', deviceId: 'back', label: 'Back', facingMode: 'environment' },
    ]);
    const media = new LocalMedia(devices.asMediaDevices());
    const session = makeSession(media);
    const [m] = started(session);
    devices.asks[0]!.grant();
    await settle();
    vi.advanceTimersByTime(1);
    m.receive(matched());
    const link = FakeLink.all[0]!;
    expect(link.room?.roomCode).toBe('R1');
    const flipped = media.flipCamera();
    devices.asks.at(-1)!.grant();
    await flipped;
    expect(link.replaced.map(([kind, t]) => [kind, t.getSettings().deviceId])).toEqual([['video', 'back']]);
    session.next();
    vi.advanceTimersByTime(1);
    const spare = FakeLink.all.at(-1)!;
    expect(spare).not.toBe(link);
    const back = media.flipCamera();
    devices.asks.at(-1)!.grant();
    await back;
    expect(spare.replaced.map(([kind, t]) => [kind, t.getSettings().deviceId])).toEqual([['video', 'front']]);
    expect(link.replaced).toHaveLength(1);
  });

  it('sends typing only when it changes, and stops it after a pause', () => {
    const session = makeSession();
    const [m] = started(session, 'text');
    m.receive(matched({ mode: 'text' }));
    session.setTyping(true);
    session.setTyping(true);
    session.setTyping(true);
    expect(m.sent).toEqual([{ event: 'typing', typing: true }]);
    vi.advanceTimersByTime(10_000);
    expect(m.sent.at(-1)).toEqual({ event: 'typing', typing: false });
  });

  it('stop sends stop; starting again re-queues the same session', () => {
    const session = makeSession();
    const [m] = started(session, 'text');
    m.receive(matched({ mode: 'text' }));
    session.stop();
    expect(m.events()).toEqual(['stop']);
    expect(session.state.phase).toBe('idle');
    m.receive({ event: 'idle' });
    session.start({ mode: 'text', interests: ['music', 'go'], lang: 'en' });
    expect(FakeSocket.all).toHaveLength(1);
    expect(m.events()).toEqual(['stop', 'next']);
  });

  it('stop while connecting: idle at once, camera and spare link off, stop sent as soon as the session arrives', async () => {
    const devices = new FakeDevices();
    const media = new LocalMedia(devices.asMediaDevices());
    const session = makeSession(media);
    session.start({ mode: 'video', interests: [], lang: null });
    devices.asks[0]!.grant();
    vi.advanceTimersByTime(0);
    await settle();
    expect(devices.live).toHaveLength(2);
    expect(FakeLink.all).toHaveLength(1);
    const m = matching();
    expect(session.state.phase).toBe('connecting');

    session.stop();
    expect(session.state.phase).toBe('idle');
    expect(devices.live).toEqual([]);
    expect(FakeLink.all[0]!.closed).toBe(true);

    m.open();
    m.receive({ event: 'session', id: 'me', token: 'tok' });
    expect(m.events()).toEqual(['stop']);
    // Queued before our stop reached the server: not shown, nothing opened for it.
    m.receive({ event: 'waiting' });
    m.receive(matched());
    expect(session.state.phase).toBe('idle');
    expect(FakeLink.all.filter((l) => !l.closed)).toHaveLength(0);
    m.receive({ event: 'idle' });
    expect(session.state.phase).toBe('idle');
    vi.advanceTimersByTime(1_000);
    await settle();
    expect(devices.asks).toHaveLength(1);
    expect(devices.live).toEqual([]);
  });

  it('leave is a clean goodbye: stop, then close 1000 on both sockets', () => {
    const session = makeSession();
    const [m, signalling] = started(session);
    signalling!.open();
    session.leave();
    expect(m.events()).toEqual(['stop']);
    expect(m.closedWith).toBe(1000);
    expect(signalling!.closedWith).toBe(1000);
    expect(session.state.phase).toBe('idle');
  });

  it('reports then moves on', () => {
    const session = makeSession();
    const [m] = started(session, 'text');
    m.receive(matched({ mode: 'text' }));
    session.report('Spam or scam');
    expect(m.sent).toEqual([{ event: 'report', reason: 'Spam or scam' }, { event: 'next' }]);
  });

  it('a socket that never got a session reports the service unreachable', () => {
    const session = makeSession();
    session.start({ mode: 'text', interests: [], lang: null });
    FakeSocket.all[0]!.drop(1006);
    expect(session.state.failure?.kind).toBe('unreachable');
  });

  it('a start that fails before its session solves a new proof and tries again; no proof is sent twice; then unreachable', async () => {
    let served = 0;
    const fetchImpl = (async () => {
      served++;
      const challenge = await createChallenge({
        algorithm: 'SHA-256',
        cost: 1,
        counter: 100,
        deriveKey,
        expiresAt: Math.floor(Date.now() / 1000) + 600,
        hmacSignatureSecret: 'k',
        hmacKeySignatureSecret: 'k',
      });
      return new Response(JSON.stringify({ required: true, challenge }), { status: 200 });
    }) as typeof fetch;
    const session = new Session({
      config: { ...config, pow: 'always' },
      media: new LocalMedia(undefined),
      createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
      createPeerLink: (opts) => new FakeLink(opts),
      fetch: fetchImpl,
    });
    const altchaOf = (s: FakeSocket) => new URL(s.url).searchParams.get('altcha');
    session.warmUp();
    session.start({ mode: 'text', interests: [], lang: null });
    // Refused at the upgrade (spent or expired: the page sees only a close), twice.
    for (let tries = 1; tries <= 3; tries++) {
      await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(tries));
      if (tries < 3) FakeSocket.all[tries - 1]!.drop(1006);
      expect(session.state.failure).toBeNull();
      expect(session.state.phase).toBe('connecting');
    }
    const proofs = FakeSocket.all.map(altchaOf);
    expect(proofs.every((p) => p !== null && p.length > 0)).toBe(true);
    expect(new Set(proofs).size).toBe(3);
    expect(served).toBeGreaterThanOrEqual(3);
    // The third attempt works.
    const m = FakeSocket.all[2]!;
    m.open();
    m.receive({ event: 'session', id: 'me', token: 't' });
    m.receive({ event: 'waiting' });
    expect(session.state.phase).toBe('waiting');

    // A new start from scratch gets its retries again, and then gives up.
    session.leave();
    FakeSocket.all = [];
    session.start({ mode: 'text', interests: [], lang: null });
    for (let tries = 1; tries <= 3; tries++) {
      await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(tries));
      FakeSocket.all[tries - 1]!.drop(1006);
    }
    expect(session.state.failure?.kind).toBe('unreachable');
    expect(new Set(FakeSocket.all.map(altchaOf)).size).toBe(3);
    session.dispose();
  });

  it('ignores frames that are not valid messages', () => {
    const session = makeSession();
    const [m] = started(session, 'text');
    const before = session.state;
    m.onmessage?.({ data: 'not json' });
    m.receive({ event: 'matched', room_code: 5 });
    m.receive({ event: 'something-new' });
    expect(session.state).toBe(before);
  });
});

function matching(): FakeSocket {
  return FakeSocket.all[0]!;
}
