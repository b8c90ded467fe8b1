import { describe, expect, it } from 'vitest';
import type { MatchingServerMessage } from '@dyad/protocol';
import { t, testI18n } from '../test-support/i18n.js';
import { initialState, lineText, MAX_LINES, reduce, statusText } from './state.js';
import type { Action, SessionState } from './state.js';

const server = (message: MatchingServerMessage): Action => ({ type: 'server', message });

const matched = (over: Partial<Extract<MatchingServerMessage, { event: 'matched' }>> = {}): Action =>
  server({
    event: 'matched',
    room_code: 'room-1',
    initiator: true,
    peer: 'peer-1',
    common_interests: [],
    mode: 'video',
    ice_servers: [],
    ...over,
  });

const run = (...actions: Action[]): SessionState => actions.reduce(reduce, initialState);

/** idle → connecting → waiting → matched with peer-1 in room-1. */
const inRoom = (over: Parameters<typeof matched>[0] = {}): SessionState =>
  run(
    { type: 'start', mode: 'video' },
    server({ event: 'session', id: 'me', token: 't' }),
    server({ event: 'waiting' }),
    matched(over),
  );

describe('session state machine', () => {
  it('walks idle → connecting → waiting → matched → ended', () => {
    expect(initialState.phase).toBe('idle');
    let s = reduce(initialState, { type: 'start', mode: 'video' });
    expect(s.phase).toBe('connecting');
    expect(statusText(s, t)).toBe('Connecting…');

    s = reduce(s, server({ event: 'session', id: 'me', token: 't' }));
    expect(s.sessionId).toBe('me');
    expect(s.link).toBe('online');

    s = reduce(s, server({ event: 'waiting' }));
    expect(s.phase).toBe('waiting');
    expect(statusText(s, t)).toBe('Looking for someone…');

    s = reduce(s, matched({ common_interests: ['music', 'go'] }));
    expect(s.phase).toBe('matched');
    expect(s.match).toMatchObject({ roomCode: 'room-1', peer: 'peer-1', initiator: true });
    expect(s.media).toBe('connecting');
    expect(statusText(s, t)).toBe('Connecting video…');
    expect(s.lines.map((l) => lineText(l, t))).toContain('You both like music and go.');

    s = reduce(s, { type: 'media', media: 'connected' });
    expect(statusText(s, t)).toBe('Connected');

    s = reduce(s, server({ event: 'peer-disconnected', reason: 'skip', message: 'Stranger skipped' }));
    expect(s.phase).toBe('ended');
    expect(s.ended).toBe('skip');
    expect(s.media).toBe('none');
    expect(statusText(s, t)).toBe('Stranger skipped');
    expect(lineText(s.lines.at(-1)!, t)).toBe('Stranger skipped.');
  });

  it('says "Stranger left" for reason left', () => {
    const s = reduce(inRoom(), server({ event: 'peer-disconnected', reason: 'left', message: '' }));
    expect(statusText(s, t)).toBe('Stranger left');
  });

  it('text mode is connected as soon as it is matched', () => {
    const s = run(
      { type: 'start', mode: 'text' },
      server({ event: 'waiting' }),
      matched({ mode: 'text' }),
    );
    expect(s.media).toBe('none');
    expect(statusText(s, t)).toBe('Connected');
  });

  it('keeps chat lines from You and the current Stranger only', () => {
    let s = inRoom();
    s = reduce(s, { type: 'chat-sent', text: 'hi' });
    s = reduce(s, server({ event: 'typing', sender: 'peer-1', typing: true }));
    expect(s.strangerTyping).toBe(true);
    s = reduce(s, server({ event: 'chat', sender: 'peer-1', message: 'hey', timestamp: 1 }));
    // The message itself ends "typing…".
    expect(s.strangerTyping).toBe(false);
    s = reduce(s, server({ event: 'chat', sender: 'someone-else', message: 'stale', timestamp: 2 }));
    const said = s.lines.flatMap((l) => (l.from === 'system' ? [] : [[l.from, l.text]]));
    expect(said).toEqual([
      ['you', 'hi'],
      ['stranger', 'hey'],
    ]);
  });

  it('does not add our own line when not matched', () => {
    const s = reduce(run({ type: 'start', mode: 'text' }, server({ event: 'waiting' })), { type: 'chat-sent', text: 'x' });
    expect(s.lines).toHaveLength(0);
  });

  it('next leaves at once and ignores news of the old room until the server confirms', () => {
    let s = reduce(inRoom(), { type: 'next' });
    expect(s.phase).toBe('waiting');
    expect(s.pending).toBe('next');
    expect(s.match).toBeNull();
    expect(lineText(s.lines.at(-1)!, t)).toBe('You skipped.');

    // The stranger skipped at the same moment, and their chat was already in flight.
    s = reduce(s, server({ event: 'peer-disconnected', reason: 'skip', message: '' }));
    s = reduce(s, server({ event: 'chat', sender: 'peer-1', message: 'late', timestamp: 1 }));
    s = reduce(s, server({ event: 'typing', sender: 'peer-1', typing: true }));
    expect(s.phase).toBe('waiting');
    expect(s.strangerTyping).toBe(false);
    expect(s.lines.some((l) => lineText(l, t) === 'late')).toBe(false);

    s = reduce(s, server({ event: 'waiting' }));
    expect(s.pending).toBeNull();
    s = reduce(s, matched({ room_code: 'room-2', peer: 'peer-2', initiator: false }));
    expect(s.phase).toBe('matched');
    expect(s.match?.peer).toBe('peer-2');
    // A new conversation starts with a clean log.
    expect(s.lines.every((l) => l.from === 'system')).toBe(true);
    expect(s.lines.some((l) => lineText(l, t) === 'You skipped.')).toBe(false);
  });

  it('stop goes idle and stays there even if a match was already on its way', () => {
    let s = reduce(run({ type: 'start', mode: 'video' }, server({ event: 'waiting' })), { type: 'stop' });
    expect(s.phase).toBe('idle');
    s = reduce(s, matched());
    expect(s.phase).toBe('idle');
    s = reduce(s, server({ event: 'idle' }));
    expect(s.phase).toBe('idle');
    expect(s.pending).toBeNull();
    expect(statusText(s, t)).toBe('Ready when you are');
  });

  it('stop during a conversation says so', () => {
    const s = reduce(inRoom(), { type: 'stop' });
    expect(s.phase).toBe('idle');
    expect(s.ended).toBe('you-stopped');
    expect(statusText(s, t)).toBe('You left the chat');
  });

  it('after peer-disconnected the session is idle until we ask for the next one', () => {
    let s = reduce(inRoom(), server({ event: 'peer-disconnected', reason: 'left', message: '' }));
    s = reduce(s, server({ event: 'idle' }));
    expect(s.phase).toBe('ended');
    s = reduce(s, { type: 'next' });
    expect(s.phase).toBe('waiting');
    // Auto-next keeps the reason visible while it looks.
    expect(statusText(s, t)).toBe('Stranger left. Looking for someone…');
  });

  it('a resumed match keeps the conversation', () => {
    let s = reduce(inRoom(), { type: 'chat-sent', text: 'still here?' });
    s = reduce(s, { type: 'link', link: 'reconnecting' });
    expect(statusText(s, t)).toBe('Reconnecting…');
    s = reduce(s, matched({ resumed: true }));
    expect(s.link).toBe('online');
    expect(s.lines.some((l) => lineText(l, t) === 'still here?')).toBe(true);
    s = reduce(s, server({ event: 'chat', sender: 'peer-1', message: 'yes', timestamp: 3 }));
    expect(s.lines.at(-1)).toMatchObject({ from: 'stranger', text: 'yes' });
  });

  it('a line told again after a resumption (its seq shown already) is shown once; the same words with a new seq are a new line', () => {
    const chat = (message: string, seq: number): Action => server({ event: 'chat', sender: 'peer-1', message, timestamp: 1 + seq / 1000, seq });
    let s = reduce(inRoom(), chat('hi', 1));
    s = reduce(s, chat('how are you?', 2));
    expect(s.chatSeen).toBe(2);
    // The socket dropped just after; the lines kept for the resumption include the last one.
    s = reduce(s, { type: 'link', link: 'reconnecting' });
    s = reduce(s, matched({ resumed: true }));
    s = reduce(s, chat('how are you?', 2));
    s = reduce(s, chat('hi', 3));
    const stranger = s.lines.filter((l) => l.from === 'stranger').map((l) => lineText(l, t));
    expect(stranger).toEqual(['hi', 'how are you?', 'hi']);
    // A new stranger counts from 1 again.
    s = reduce(s, matched({ room_code: 'room-2', peer: 'peer-2' }));
    expect(s.chatSeen).toBe(0);
    s = reduce(s, server({ event: 'chat', sender: 'peer-2', message: 'hi', timestamp: 2.5, seq: 1 }));
    expect(s.lines.filter((l) => l.from === 'stranger').map((l) => lineText(l, t))).toEqual(['hi']);
  });

  it('missed news on resumption ends the conversation', () => {
    let s = reduce(inRoom(), { type: 'link', link: 'reconnecting' });
    s = reduce(s, server({ event: 'peer-disconnected', reason: 'timeout', message: '' }));
    s = reduce(s, server({ event: 'idle' }));
    expect(s.phase).toBe('ended');
    expect(statusText(s, t)).toBe('Stranger lost connection');
  });

  it('idle while matched means our own grace period ended the room', () => {
    const s = reduce(inRoom(), server({ event: 'idle' }));
    expect(s.phase).toBe('ended');
    expect(s.ended).toBe('lost');
  });

  it('unauthorized and banned end the session with a clear message', () => {
    const u = reduce(inRoom(), server({ event: 'error', code: 'unauthorized', message: '' }));
    expect(u.phase).toBe('idle');
    expect(u.failure?.kind).toBe('session-ended');
    expect(u.sessionId).toBeNull();
    const b = reduce(inRoom(), server({ event: 'error', code: 'banned', message: '', until: 2_000_000_000 }));
    expect(b.failure?.kind).toBe('banned');
    expect(statusText(b, t)).toMatch(/removed/);
  });

  it('rate limits become a passing notice', () => {
    let s = reduce(inRoom(), server({ event: 'error', code: 'rate-limited', message: '' }));
    expect(s.notice).toBeTruthy();
    s = reduce(s, { type: 'clear-notice' });
    expect(s.notice).toBeNull();
  });

  it('media state only applies to a video room', () => {
    const waiting = run({ type: 'start', mode: 'video' }, server({ event: 'waiting' }));
    expect(reduce(waiting, { type: 'media', media: 'connected' })).toBe(waiting);
    const s = reduce(inRoom(), { type: 'media', media: 'reconnecting' });
    expect(statusText(s, t)).toMatch(/reconnecting video/);
  });

  it('a failed socket returns to idle with its reason', () => {
    const s = reduce(inRoom(), {
      type: 'failed',
      failure: { kind: 'unreachable' },
    });
    expect(s.phase).toBe('idle');
    expect(s.link).toBe('offline');
    expect(statusText(s, t)).toBe('Can’t reach Dyad right now. Check your connection and try again.');
  });

  it('trims very long conversations from the top', () => {
    let s = inRoom();
    for (let i = 0; i < MAX_LINES + 20; i++) s = reduce(s, { type: 'chat-sent', text: `m${i}` });
    expect(s.lines).toHaveLength(MAX_LINES);
    expect(lineText(s.lines.at(-1)!, t)).toBe(`m${MAX_LINES + 19}`);
    expect(new Set(s.lines.map((l) => l.id)).size).toBe(MAX_LINES);
  });

  it('is pure: the previous state is untouched', () => {
    const before = inRoom();
    const copy = JSON.stringify(before);
    reduce(before, { type: 'chat-sent', text: 'x' });
    reduce(before, { type: 'next' });
    expect(JSON.stringify(before)).toBe(copy);
  });

  it('joins shared interests the way people of the language write them', () => {
    const line = (interests: string[]) => ({ id: 1, from: 'system', note: { kind: 'common', interests } }) as const;
    expect(lineText(line(['a']), t)).toBe('You both like a.');
    expect(lineText(line(['a', 'b']), t)).toBe('You both like a and b.');
    expect(lineText(line(['a', 'b', 'c']), t)).toBe('You both like a, b, and c.');
    expect(lineText(line(['a', 'b', 'c']), testI18n.getFixedT('es'))).toBe('A los dos os gusta a, b y c.');
  });

  it('words a ban with its end in the visitor’s language and time zone', () => {
    const until = 2_000_000_000;
    const b = reduce(inRoom(), server({ event: 'error', code: 'banned', message: '', until }));
    const when = new Intl.DateTimeFormat('fr', { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(until * 1000));
    expect(statusText(b, testI18n.getFixedT('fr'))).toBe(`Vous avez été exclu pour non-respect des règles jusqu’au ${when}.`);
  });
});
