import { describe, expect, it } from 'vitest';
import { MAX_OUTBOX, Outbox } from './Outbox.js';
import type { OutboxSocket } from './Outbox.js';
import { Readiness } from './Readiness.js';
import type { SocketState } from './ResumableSocket.js';

class Socket implements OutboxSocket {
  currentState: SocketState = 'open';
  frames: string[] = [];
  send(frame: string): boolean {
    if (this.currentState !== 'open') return false;
    this.frames.push(frame);
    return true;
  }
}

describe('Outbox', () => {
  it('sends at once while open, holds while reconnecting and flushes in order on resumption', () => {
    const socket = new Socket();
    const outbox = new Outbox(() => socket);
    expect(outbox.send({ event: 'next' })).toBe(true);
    socket.currentState = 'reconnecting';
    expect(outbox.send({ event: 'chat', message: 'one' })).toBe(true);
    expect(outbox.send({ event: 'chat', message: 'two' })).toBe(true);
    expect(outbox.sendNow({ event: 'typing', typing: true })).toBe(false);
    expect(socket.frames).toHaveLength(1);
    socket.currentState = 'open';
    outbox.flush();
    expect(socket.frames.map((f) => JSON.parse(f) as unknown)).toEqual([
      { event: 'next' },
      { event: 'chat', message: 'one' },
      { event: 'chat', message: 'two' },
    ]);
  });

  it('keeps the newest MAX_OUTBOX, and refuses what cannot go out at all', () => {
    const socket = new Socket();
    socket.currentState = 'reconnecting';
    const outbox = new Outbox(() => socket);
    for (let i = 0; i < MAX_OUTBOX + 3; i++) outbox.send({ event: 'chat', message: String(i) });
    socket.currentState = 'open';
    outbox.flush();
    expect(socket.frames).toHaveLength(MAX_OUTBOX);
    expect(JSON.parse(socket.frames[0]!)).toEqual({ event: 'chat', message: '3' });
    socket.currentState = 'closed';
    expect(outbox.send({ event: 'next' })).toBe(false);
    expect(new Outbox(() => null).send({ event: 'next' })).toBe(false);
  });
});

describe('Readiness', () => {
  it('resolves its waiters once the condition holds and is checked', async () => {
    let ready = false;
    const readiness = new Readiness(() => ready);
    let resolved = 0;
    void readiness.when().then(() => resolved++);
    void readiness.when().then(() => resolved++);
    readiness.check();
    await Promise.resolve();
    expect(resolved).toBe(0);
    ready = true;
    readiness.check();
    await Promise.resolve();
    expect(resolved).toBe(2);
    await readiness.when();
  });
});
