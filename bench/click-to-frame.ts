// Click-to-first-frame: two pages click Start at the same moment; each
// measures, in the page, from its click to its first remote video frame, two
// ways: getStats() showing inbound video framesDecoded > 0 (polled; Chrome
// caches a stats report for a few tens of milliseconds, so this reads late),
// and requestVideoFrameCallback on the stranger's video element (the first
// decoded frame handed to the compositor). A run counts the slower page.
// Real server, real Chromium, loopback only (run through `npm run bench:frame`,
// which gives it a private network namespace). Prints numbers, asserts nothing.
//
// For each nudity filter setting (NUDITY_FILTERS, default: off and the
// default blur-on-detect), a server of its own, the runs taking the settings in
// turn, so the figures with the filter on and off stand side by side; with a
// filter on, the last pair then stays matched until
// SOAK_CHECKS frames are classified, and the classifier's cost per frame in
// this headless Chromium is printed (and, for blur-until-checked, click to
// the stranger shown clear).
import type { Page } from 'playwright-core';
import { clickStart, launchBrowser, newUser, prepare, startServer, within } from '../e2e/harness.js';
import type { RunningServer, User } from '../e2e/harness.js';
import { summarize } from './lib/stats.js';

const RUNS = Number(process.env.RUNS ?? 20);
const FILTERS = (process.env.NUDITY_FILTERS ?? 'off,blur-on-detect').split(',').map((f) => f.trim()).filter(Boolean);
/** Frames classified before the classifier's cost is printed; 0: no soak. */
const SOAK_CHECKS = Number(process.env.SOAK_CHECKS ?? 10);
/** Loading the model in two pages at once on a busy machine takes a while. */
const SOAK_TIMEOUT_MS = 240_000;
/** A loaded machine (others' work beside this) can take seconds. */
const RUN_TIMEOUT_MS = 30_000;
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

interface FilterFigures {
  filter: string;
  decoded: number[];
  presented: number[];
}

/** The classifier's figures in one page: its load, each frame's cost, and when (after the click) the stranger was first shown clear. */
interface GuardFigures {
  loadMs: number | null;
  backend: string | null;
  workMs: number[];
  clearAfterClickMs: number | null;
}

/** Installed before the app: stamps when the stranger's video is first drawn without blur. */
const CLEAR_PROBE = `(() => {
  const watch = () => {
    const shield = document.querySelector('[data-testid="nudity"]');
    if (window.__clickAt !== undefined && shield && shield.getAttribute('data-blurred') === 'false' && window.__clearAt === undefined) {
      window.__clearAt = performance.now();
      return;
    }
    setTimeout(watch, 20);
  };
  document.addEventListener('DOMContentLoaded', watch);
})();`;

async function guardFigures(page: Page): Promise<GuardFigures> {
  return page.evaluate(() => {
    const w = window as unknown as { __clickAt: number; __clearAt?: number };
    const load = performance.getEntriesByName('dyad:nudity-load', 'measure')[0] as PerformanceMeasure | undefined;
    const checks = performance.getEntriesByName('dyad:nudity-check', 'measure') as PerformanceMeasure[];
    return {
      loadMs: load ? load.duration : null,
      backend: load ? (load.detail as { backend: string }).backend : null,
      workMs: checks.map((c) => (c.detail as { workMs: number }).workMs),
      clearAfterClickMs: w.__clearAt !== undefined ? w.__clearAt - w.__clickAt : null,
    };
  });
}

async function soak(pages: Page[], filter: string): Promise<void> {
  const deadline = Date.now() + SOAK_TIMEOUT_MS;
  let figures = await Promise.all(pages.map(guardFigures));
  while (figures.some((f) => f.workMs.length < SOAK_CHECKS) && Date.now() < deadline) {
    await pages[0]!.waitForTimeout(500);
    figures = await Promise.all(pages.map(guardFigures));
  }
  figures.forEach((f, i) => {
    const page = i === 0 ? 'A' : 'B';
    if (f.workMs.length === 0) {
      console.log(`  ${filter}, page ${page}: no frame classified within ${SOAK_TIMEOUT_MS} ms (model load ${f.loadMs?.toFixed(0) ?? 'unfinished'})`);
      return;
    }
    // The first frame after the load pays for warming up; it is shown apart.
    const [first, ...rest] = f.workMs;
    const steady = rest.length > 0 ? summarize(rest) : null;
    console.log(
      `  ${filter}, page ${page}: model loaded in ${f.loadMs?.toFixed(0)} ms (${f.backend} backend, in a worker); ` +
        `classifier cost per frame: first ${first!.toFixed(0)} ms` +
        (steady ? `, then ${steady.n} frames p50 ${steady.p50.toFixed(0)} ms, p95 ${steady.p95.toFixed(0)} ms (min ${steady.min.toFixed(0)}, max ${steady.max.toFixed(0)})` : '') +
        // Only blur-until-checked waits for the classifier before showing the stranger.
        (filter === 'blur-until-checked' && f.clearAfterClickMs !== null ? `; click to stranger shown clear ${f.clearAfterClickMs.toFixed(0)} ms` : ''),
    );
  });
}

interface Setup {
  filter: string;
  server: RunningServer;
  a: User;
  b: User;
  figures: FilterFigures;
  last: Page[];
}

/**
 * One server per filter setting, one browser; each run measures every setting
 * in turn, so a machine whose load changes during the benchmark weighs on
 * every setting alike.
 */
async function main(): Promise<void> {
  const browser = await launchBrowser();
  const setups: Setup[] = [];
  try {
    for (const filter of FILTERS) {
      const server = await startServer({ NUDITY_FILTER: filter });
      const a = await newUser(browser);
      const b = await newUser(browser);
      for (const user of [a, b]) {
        await user.context.addInitScript({ content: PROBE });
        await user.context.addInitScript({ content: CLEAR_PROBE });
      }
      setups.push({ filter, server, a, b, figures: { filter, decoded: [], presented: [] }, last: [] });
    }
    for (let run = 1; run <= RUNS; run++) {
      for (const setup of setups) {
        const { a, b, figures } = setup;
        const pa = run === 1 ? a.page : await a.context.newPage();
        const pb = run === 1 ? b.page : await b.context.newPage();
        // Landing, 18+ confirmed, camera preview live: the state a visitor clicks Start from.
        await Promise.all([prepare(pa, setup.server.web, 'video'), prepare(pb, setup.server.web, 'video')]);
        await Promise.all([clickStart(pa), clickStart(pb)]);
        const [ta, tb] = await within(RUN_TIMEOUT_MS, `run ${run}`, Promise.all([clickToFrame(pa), clickToFrame(pb)]));
        figures.decoded.push(Math.max(ta.decoded, tb.decoded));
        figures.presented.push(Math.max(ta.presented, tb.presented));
        console.log(
          `run ${String(run).padStart(2)} NUDITY_FILTER=${setup.filter}: framesDecoded>0 ${figures.decoded.at(-1)!.toFixed(0)} ms ` +
            `(A ${ta.decoded.toFixed(0)}, B ${tb.decoded.toFixed(0)}), ` +
            `first frame presented ${figures.presented.at(-1)!.toFixed(0)} ms (A ${ta.presented.toFixed(0)}, B ${tb.presented.toFixed(0)})`,
        );
        if (run < RUNS) await Promise.all([pa.close({ runBeforeUnload: true }), pb.close({ runBeforeUnload: true })]);
        else setup.last = [pa, pb];
      }
    }
    // The classifier alone: one pair per setting at a time, so they do not compete.
    for (const setup of setups) {
      if (setup.filter !== 'off' && SOAK_CHECKS > 0) await soak(setup.last, setup.filter);
      await Promise.all(setup.last.map((p) => p.close()));
    }
  } finally {
    await browser.close().catch(() => undefined);
    await Promise.all(setups.map((s) => s.server.stop()));
  }
  for (const { figures: r } of setups) {
    console.log(summary(`NUDITY_FILTER=${r.filter}: click-to-first-frame (getStats framesDecoded>0)`, r.decoded));
    console.log(summary(`NUDITY_FILTER=${r.filter}: click-to-first-frame (requestVideoFrameCallback)`, r.presented));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
