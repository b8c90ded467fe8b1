// Click-to-first-frame: two pages click Start at the same moment; each
// measures, in the page, from its click to its first remote video frame, two
// ways: getStats() showing inbound video framesDecoded > 0 (polled; Chrome
// caches a stats report for a few tens of milliseconds, so this reads late),
// and requestVideoFrameCallback on the stranger's video element (the first
// decoded frame handed to the compositor). A run counts the slower page.
// Real server, real Chromium, loopback only (run through `npm run bench:frame`,
// which gives it a private network namespace). Prints numbers, asserts nothing.
import type { Page } from 'playwright-core';
import { clickStart, launchBrowser, newUser, prepare, startServer, within } from '../e2e/harness.js';
import { summarize } from './lib/stats.js';

const RUNS = Number(process.env.RUNS ?? 20);
const RUN_TIMEOUT_MS = 15_000;
/** Between getStats polls in the page. */
const POLL_MS = 5;

/** Installed before the app: stamps the Start click, the first decoded frame and the first presented frame. */
const PROBE = `(() => {
  const pollStats = async () => {
    for (;;) {
      const pcs = window.__pcs || [];
      for (const pc of pcs) {
        if (pc.connectionState === 'closed' || !pc.remoteDescription) continue;
        const report = await pc.getStats();
        let frames = 0;
        report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
        if (frames > 0) { window.__statsAt = performance.now(); return; }
      }
      await new Promise((r) => setTimeout(r, ${POLL_MS}));
    }
  };
  const watchVideo = () => {
    const video = document.querySelector('[data-testid="remote-video"]');
    if (video && video.srcObject && video.requestVideoFrameCallback) {
      video.requestVideoFrameCallback((now, meta) => { window.__presentedAt = meta.presentationTime || now; });
      return;
    }
    setTimeout(watchVideo, 2);
  };
  document.addEventListener('click', (e) => {
    const button = e.target instanceof Element ? e.target.closest('button') : null;
    if (button && button.textContent.trim() === 'Start' && window.__clickAt === undefined) {
      window.__clickAt = performance.now();
      pollStats();
      watchVideo();
    }
  }, true);
})();`;

interface PageTimes {
  decoded: number;
  presented: number;
}

async function clickToFrame(page: Page): Promise<PageTimes> {
  await page.waitForFunction(
    () => {
      const w = window as unknown as { __statsAt?: number; __presentedAt?: number };
      return w.__statsAt !== undefined && w.__presentedAt !== undefined;
    },
    undefined,
    { timeout: RUN_TIMEOUT_MS, polling: 20 },
  );
  return page.evaluate(() => {
    const w = window as unknown as { __statsAt: number; __presentedAt: number; __clickAt: number };
    return { decoded: w.__statsAt - w.__clickAt, presented: w.__presentedAt - w.__clickAt };
  });
}

function summary(label: string, values: number[]): string {
  const s = summarize(values);
  return (
    `${label}, ${s.n} runs: p50 ${s.p50.toFixed(0)} ms, ` +
    `p95 ${s.p95.toFixed(0)} ms (min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)})`
  );
}

async function main(): Promise<void> {
  const [server, browser] = await Promise.all([startServer(), launchBrowser()]);
  const decoded: number[] = [];
  const presented: number[] = [];
  try {
    const a = await newUser(browser);
    const b = await newUser(browser);
    await a.context.addInitScript({ content: PROBE });
    await b.context.addInitScript({ content: PROBE });
    for (let run = 1; run <= RUNS; run++) {
      const pa = run === 1 ? a.page : await a.context.newPage();
      const pb = run === 1 ? b.page : await b.context.newPage();
      // Landing, 18+ confirmed, camera preview live: the state a visitor clicks Start from.
      await Promise.all([prepare(pa, server.web, 'video'), prepare(pb, server.web, 'video')]);
      await Promise.all([clickStart(pa), clickStart(pb)]);
      const [ta, tb] = await within(RUN_TIMEOUT_MS, `run ${run}`, Promise.all([clickToFrame(pa), clickToFrame(pb)]));
      decoded.push(Math.max(ta.decoded, tb.decoded));
      presented.push(Math.max(ta.presented, tb.presented));
      console.log(
        `run ${String(run).padStart(2)}: framesDecoded>0 ${decoded.at(-1)!.toFixed(0)} ms ` +
          `(A ${ta.decoded.toFixed(0)}, B ${tb.decoded.toFixed(0)}), ` +
          `first frame presented ${presented.at(-1)!.toFixed(0)} ms (A ${ta.presented.toFixed(0)}, B ${tb.presented.toFixed(0)})`,
      );
      await Promise.all([pa.close({ runBeforeUnload: true }), pb.close({ runBeforeUnload: true })]);
    }
  } finally {
    await browser.close().catch(() => undefined);
    await server.stop();
  }
  console.log(summary('click-to-first-frame (getStats framesDecoded>0)', decoded));
  console.log(summary('click-to-first-frame (requestVideoFrameCallback)', presented));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
