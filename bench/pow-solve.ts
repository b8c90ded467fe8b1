// What the proof of work costs a person: the real web client in real
// Chromium, text mode (no camera, and no solve ahead of Start), from the
// Start click to the one-trip WebSocket leaving the page. With POW_MODE=off
// that is the floor; with POW_MODE=always the difference is GET /pow and the
// solve at POW_DIFFICULTY. The phone-class figure runs the same page with
// Chromium's CPU throttled 4x (CDP Emulation.setCPUThrottlingRate), which is
// roughly a mid-range phone against this machine's cores. Prints numbers,
// asserts nothing (run through `npm run bench:pow`, in a private network
// namespace). RUNS, POW_DIFFICULTY and SERIES may be set in the environment.
import type { Browser } from 'playwright-core';
import { clickStart, launchBrowser, newUser, prepare, startServer, within } from '../e2e/harness.js';
import { summarize } from './lib/stats.js';

const RUNS = Number(process.env.RUNS ?? 12);
const RUN_TIMEOUT_MS = 60_000;
const PHONE_THROTTLE = 4;

async function measure(browser: Browser, web: string, throttle: number): Promise<number> {
  const user = await newUser(browser);
  try {
    if (throttle > 1) {
      const cdp = await user.context.newCDPSession(user.page);
      await cdp.send('Emulation.setCPUThrottlingRate', { rate: throttle });
    }
    await prepare(user.page, web, 'text');
    const opened = new Promise<number>((resolve) =>
      user.page.on('websocket', (ws) => {
        if (/\/ws\?/.test(ws.url())) resolve(performance.now());
      }),
    );
    const clicked = performance.now();
    await clickStart(user.page);
    return (await within(RUN_TIMEOUT_MS, 'the one-trip socket', opened)) - clicked;
  } finally {
    await user.context.close();
  }
}

async function series(label: string, env: Record<string, string>, throttle: number): Promise<void> {
  const server = await startServer(env);
  const browser = await launchBrowser();
  try {
    await measure(browser, server.web, throttle); // warm-up: bundle compiled, caches filled
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) times.push(await measure(browser, server.web, throttle));
    const s = summarize(times);
    const f = (n: number): string => n.toFixed(0).padStart(6);
    console.log(`${label.padEnd(44)} n=${s.n}  p50 ${f(s.p50)} ms  mean ${f(s.mean)} ms  p95 ${f(s.p95)} ms  max ${f(s.max)} ms`);
  } finally {
    await browser.close();
    await server.stop();
  }
}

const difficulty = process.env.POW_DIFFICULTY ?? '50000';
console.log(`Start click -> one-trip socket opened, text mode, ${RUNS} runs each (POW_DIFFICULTY=${difficulty})`);
// SERIES=desktop or SERIES=phone runs only those rows.
const only = process.env.SERIES;
if (only !== 'phone') {
  await series('POW_MODE=off (floor)', { POW_MODE: 'off' }, 1);
  await series('POW_MODE=always', { POW_MODE: 'always', POW_DIFFICULTY: difficulty }, 1);
}
if (only !== 'desktop') {
  await series(`POW_MODE=off, CPU throttled ${PHONE_THROTTLE}x (phone-class)`, { POW_MODE: 'off' }, PHONE_THROTTLE);
  await series(`POW_MODE=always, CPU throttled ${PHONE_THROTTLE}x (phone-class)`, { POW_MODE: 'always', POW_DIFFICULTY: difficulty }, PHONE_THROTTLE);
}
