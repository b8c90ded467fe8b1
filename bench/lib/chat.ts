// Chat latency between the two members of a pair: one member sends a chat
// line, the time runs until the other member's socket has it. With the two
// members on different processes (the Redis set-up with two processes) this
// is the path a line typed on one page takes to the other page, less the
// browsers. One line at a time, spaced out, so it is latency, not queueing.
import { performance } from 'node:perf_hooks';
import { eventSocket } from './event-socket.js';
import { summarize, type Summary } from './stats.js';
import { sleep } from './procs.js';

const WAIT_MS = 10_000;

/** `lines` chat lines from the member on `matchingA` to the member on `matchingB`, `gapMs` apart. */
export async function chatLatency(matchingA: string, matchingB: string, tag: string, lines: number, gapMs: number): Promise<Summary> {
  // A unique interest makes exactly these two a pair.
  const a = eventSocket(`${matchingA}/ws?mode=text&interests=${tag}`, WAIT_MS);
  await a.when('waiting');
  const b = eventSocket(`${matchingB}/ws?mode=text&interests=${tag}`, WAIT_MS);
  await Promise.all([a.when('matched'), b.when('matched')]);
  const sentAt = new Map<string, number>();
  const took: number[] = [];
  let arrived: (() => void) | undefined;
  b.ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as { event?: string; message?: string };
    if (msg.event !== 'chat' || msg.message === undefined) return;
    const t = sentAt.get(msg.message);
    if (t !== undefined) took.push(performance.now() - t);
    arrived?.();
  });
  try {
    for (let i = 0; i < lines; i++) {
      const text = `line ${i} of ${tag}`;
      const got = new Promise<void>((resolve) => (arrived = resolve));
      sentAt.set(text, performance.now());
      a.ws.send(JSON.stringify({ event: 'chat', message: text }));
      await Promise.race([got, sleep(WAIT_MS)]);
      await sleep(gapMs);
    }
  } finally {
    a.ws.close(1000);
    b.ws.close(1000);
  }
  return summarize(took);
}
