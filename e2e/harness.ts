// Real parts for browser tests: the built server on free ports and Debian's
// Chromium driven by playwright-core, everything on loopback. Run inside a
// private network namespace (see the test:e2e script) so nothing can leave.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';
// The server only as a process (the layout test holds e2e to that).
import { LOOPBACK_ENV, REPO_ROOT, SERVER_ENTRY, ServerProcess, serverEnv } from '../packages/server/test/support/spawn.js';

export const SERVER_MAIN = SERVER_ENTRY;
export const WEB_ROOT = join(REPO_ROOT, 'packages/web/dist');
export const ARTIFACTS = join(REPO_ROOT, 'artifacts');

export const SERVER_START_TIMEOUT_MS = 10_000;
export const SERVER_STOP_TIMEOUT_MS = 5_000;
export const BROWSER_LAUNCH_TIMEOUT_MS = 30_000;

/** Flags known to work for real WebRTC between two headless pages on loopback only. */
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

export interface RunningServer {
  readonly web: string;
  readonly matching: string;
  readonly signalling: string;
  /** The last lines the server printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/** The server on the embedded store with every role and the built web client, limits out of the way of two pages on one address. */
export async function startServer(extraEnv: Record<string, string> = {}): Promise<RunningServer> {
  const env = serverEnv(
    {
      ...LOOPBACK_ENV,
      ROLES: 'matching,signalling,web',
      WEB_ROOT,
      REGISTER_RATE_PER_MIN: '100000',
      REQUEST_RATE_PER_ADDR_PER_SEC: '100000',
      REQUEST_BURST_PER_ADDR: '100000',
      NEXT_RATE_PER_MIN: '100000',
      CHAT_RATE_PER_MIN: '100000',
      CHAT_REPEAT_MAX: '100000',
      LOG_LEVEL: 'warn',
      // The nudity model costs each page seconds of CPU after its first frame;
      // e2e/nudity.e2e.test.ts and bench:frame set the filter they measure.
      NUDITY_FILTER: 'off',
    },
    extraEnv,
  );
  const server = await ServerProcess.start({ label: 'server', entry: SERVER_MAIN, env, timeoutMs: SERVER_START_TIMEOUT_MS });
  return {
    web: server.url('web'),
    matching: server.url('matching'),
    signalling: server.url('signalling'),
    output: () => server.output(),
    async stop() {
      await server.stop('SIGTERM', SERVER_STOP_TIMEOUT_MS);
    },
  };
}

/**
 * Playwright gives a non-persistent launch its own fresh temporary profile
 * (--user-data-dir) and deletes it on close; it also kills the browser when
 * this process ends. `extraArgs` go after CHROMIUM_FLAGS (e.g. a host
 * resolver rule and a certificate to accept).
 */
export function launchBrowser(extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_FLAGS, ...extraArgs],
    timeout: BROWSER_LAUNCH_TIMEOUT_MS,
  });
}

/** How many lines of a page's trace are kept (and shown on a failure). */
const TRACE_KEPT = 60;

/**
 * Runs in every page before the app: keeps every RTCPeerConnection and
 * WebSocket the app makes, so tests can read stats and cut sockets, and a
 * bounded trace of what happened to them (`__trace`): frames by kind only, and
 * per connection (pcN, in order of creation) negotiationneeded, the tracks and
 * transceivers added and setLocalDescription with its transceivers and result.
 * Never SDP, candidates, tokens or chat text. A string, not a function, so the
 * TypeScript loader's helpers never end up in the page.
 */
export const INSTRUMENT = `(() => {
  window.__pcs = [];
  window.__sockets = [];
  window.__trace = [];
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.effectiveDirective + ' ' + e.blockedURI));
  const note = (line) => {
    window.__trace.push((performance.now() / 1000).toFixed(2) + ' ' + line);
    if (window.__trace.length > ${TRACE_KEPT}) window.__trace.shift();
  };
  const NativePC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePC {
    constructor(config) {
      super(config);
      window.__pcs.push(this);
      const n = window.__pcs.length;
      this.addEventListener('negotiationneeded', () => note('pc' + n + ' negotiationneeded'));
    }
    get __name() { return 'pc' + (window.__pcs.indexOf(this) + 1); }
    addTrack(track, ...streams) {
      note(this.__name + ' addTrack ' + track.kind + ' ' + track.readyState);
      return super.addTrack(track, ...streams);
    }
    addTransceiver(what, init) {
      note(this.__name + ' addTransceiver ' + (typeof what === 'string' ? what : what.kind));
      return super.addTransceiver(what, init);
    }
    setLocalDescription(...args) {
      const name = this.__name;
      const tx = this.getTransceivers().map((t) => t.receiver.track.kind + ':' + t.direction + (t.mid === null ? '' : ':mid' + t.mid));
      note(name + ' setLocalDescription ' + this.signalingState + ' [' + tx.join(',') + ']');
      const p = super.setLocalDescription(...args);
      p.then(() => note(name + ' setLocalDescription done ' + this.signalingState),
        (e) => note(name + ' setLocalDescription failed ' + e.name + ': ' + String(e.message).slice(0, 300)));
      return p;
    }
  };
  const kind = (text) => {
    try {
      const m = JSON.parse(text);
      const t = m.type || (m.data && m.data.type) || '';
      const side = m.event === 'matched' ? (m.initiator ? ' (initiator)' : ' (responder)') : '';
      return (m.event || '?') + (t ? ':' + t : '') + side;
    } catch { return 'unparsed'; }
  };
  const where = (sock) => {
    const path = new URL(sock.url).pathname;
    return path.startsWith('/ws/') ? '/ws/{id}' : path;
  };
  const NativeWS = window.WebSocket;
  window.WebSocket = class extends NativeWS {
    constructor(url, protocols) {
      super(url, protocols);
      window.__sockets.push(this);
      this.addEventListener('message', (e) => { if (typeof e.data === 'string') note(where(this) + ' < ' + kind(e.data)); });
      this.addEventListener('close', (e) => note(where(this) + ' closed ' + e.code));
    }
    send(data) { if (typeof data === 'string') note(where(this) + ' > ' + kind(data)); return super.send(data); }
  };
})();`;

/** What INSTRUMENT keeps on `window`, for the page helpers below. */
export interface Instrumented {
  __pcs: RTCPeerConnection[];
  __sockets: WebSocket[];
  /** The page's last TRACE_KEPT events (see INSTRUMENT). */
  __trace: string[];
  /** What the page's Content-Security-Policy refused: the directive and what it blocked. */
  __csp: string[];
}

export interface User {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught exceptions and unhandled rejections in the page; a test ends with none. */
  readonly errors: string[];
}

export async function newUser(browser: Browser, options: BrowserContextOptions = {}): Promise<User> {
  // English unless a test asks for another language (the interface follows the browser's).
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', ...options });
  await context.addInitScript({ content: INSTRUMENT });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  context.on('weberror', (e) => errors.push(e.error().message));
  const lines: string[] = [];
  consoleLines.set(page, lines);
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    lines.push(`${m.type()}: ${m.text().replace(/token=[^&\s'"]+/g, 'token=…')}`);
    if (lines.length > CONSOLE_LINES_KEPT) lines.shift();
  });
  return { context, page, errors };
}

/** How many of a page's last console errors and warnings a failure message shows. */
const CONSOLE_LINES_KEPT = 20;
const consoleLines = new WeakMap<Page, string[]>();

/**
 * What a page shows and holds now, for a failure message: its status line,
 * its sockets (path and state), its peer connections' states and its last
 * console errors and warnings. Never throws (the page may be gone).
 */
export async function pageState(page: Page): Promise<string> {
  try {
    const seen = await page.evaluate(() => {
      const w = window as unknown as Instrumented;
      const states = ['connecting', 'open', 'closing', 'closed'];
      return {
        status: document.querySelector('[data-testid="status"]')?.textContent ?? null,
        sockets: w.__sockets.map((s) => `${new URL(s.url).pathname} ${states[s.readyState]}`),
        pcs: w.__pcs.map(
          (p) => `${p.signalingState}/${p.iceConnectionState}/${p.connectionState} (${p.getSenders().filter((x) => x.track).length} tracks sent)`,
        ),
        camera: (() => {
          const v = document.querySelector<HTMLVideoElement>('[data-testid="local-video"]');
          const st = v?.srcObject as MediaStream | null | undefined;
          return st ? st.getTracks().map((t) => `${t.kind} ${t.readyState}`).join(', ') : 'no stream';
        })(),
        trace: w.__trace,
      };
    });
    const lines = consoleLines.get(page) ?? [];
    return [
      `page status: ${JSON.stringify(seen.status)}`,
      `sockets: ${seen.sockets.join(', ') || 'none'}`,
      `peer connections (signalling/ICE/connection): ${seen.pcs.join(', ') || 'none'}`,
      `own camera preview: ${seen.camera}`,
      `console: ${lines.length ? `\n  ${lines.join('\n  ')}` : 'nothing'}`,
      `trace: ${seen.trace.length ? `\n  ${seen.trace.join('\n  ')}` : 'none'}`,
    ].join('\n');
  } catch (err) {
    return `page state unreadable: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** The page's trace (see INSTRUMENT); empty if the page is gone. */
export async function traceOf(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as Instrumented).__trace).catch(() => []);
}

/** What the page's Content-Security-Policy refused so far (the web role sends one with every file). */
export async function cspViolations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as Instrumented).__csp);
}

/** Open the landing page, choose the mode, confirm 18+; in video mode wait for the camera preview. */
export async function prepare(page: Page, url: string, mode: 'video' | 'text', interests: string[] = []): Promise<void> {
  await page.goto(url);
  await page.getByRole('radio', { name: mode === 'video' ? 'Video' : 'Text' }).check({ force: true });
  for (const interest of interests) {
    await page.getByLabel(/Interests/).fill(interest);
    await page.getByLabel(/Interests/).press('Enter');
  }
  await page.getByRole('checkbox', { name: /18 or older/ }).check();
  if (mode === 'video') await page.locator('video.preview-video').waitFor({ state: 'visible' });
}

export async function clickStart(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Start', exact: true }).click();
}

/**
 * Two pages choose `mode` and confirm, both press Start, and the two are
 * paired: each decodes the other's video and hears its audio (video; their
 * stats are returned), or both say Connected (text).
 */
export async function startPair(a: User, b: User, url: string, mode: 'video', timeoutMs?: number): Promise<[MediaStats, MediaStats]>;
export async function startPair(a: User, b: User, url: string, mode: 'text', timeoutMs?: number): Promise<void>;
export async function startPair(a: User, b: User, url: string, mode: 'video' | 'text', timeoutMs?: number): Promise<[MediaStats, MediaStats] | void> {
  await Promise.all([prepare(a.page, url, mode), prepare(b.page, url, mode)]);
  await Promise.all([clickStart(a.page), clickStart(b.page)]);
  if (mode === 'text') return expectConnected(a.page, b.page, timeoutMs);
  return Promise.all([waitForMedia(a.page, timeoutMs), waitForMedia(b.page, timeoutMs)]);
}

/** Close the users' browser contexts (their pages and sockets with them). */
export async function closeUsers(...users: User[]): Promise<void> {
  await Promise.all(users.map((u) => u.context.close()));
}

/** `from` writes a line and sends it; `to` sees it from the stranger. */
export async function talk(from: Page, to: Page, text: string): Promise<void> {
  const input = from.getByRole('textbox', { name: 'Message' });
  await input.fill(text);
  await input.press('Enter');
  await to.locator('li[data-from="stranger"]', { hasText: text }).waitFor();
}

export interface MediaStats {
  framesDecoded: number;
  audioPacketsReceived: number;
  localCandidateType: string | null;
  remoteCandidateType: string | null;
}

/** Stats of the newest open peer connection of the page. */
export function mediaStats(page: Page): Promise<MediaStats | null> {
  return page.evaluate(async () => {
    const pcs = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs;
    const pc = [...pcs].reverse().find((p) => p.connectionState !== 'closed');
    if (!pc) return null;
    const report = await pc.getStats();
    let framesDecoded = 0;
    let audioPacketsReceived = 0;
    let pairId: string | undefined;
    const byId = new Map<string, Record<string, unknown>>();
    report.forEach((s: Record<string, unknown>) => {
      byId.set(s.id as string, s);
      if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded += Number(s.framesDecoded ?? 0);
      if (s.type === 'inbound-rtp' && s.kind === 'audio') audioPacketsReceived += Number(s.packetsReceived ?? 0);
      if (s.type === 'transport' && typeof s.selectedCandidatePairId === 'string') pairId = s.selectedCandidatePairId;
    });
    const pair = pairId ? byId.get(pairId) : undefined;
    const local = pair ? byId.get(pair.localCandidateId as string) : undefined;
    const remote = pair ? byId.get(pair.remoteCandidateId as string) : undefined;
    return {
      framesDecoded,
      audioPacketsReceived,
      localCandidateType: (local?.candidateType as string | undefined) ?? null,
      remoteCandidateType: (remote?.candidateType as string | undefined) ?? null,
    };
  });
}

/** Poll getStats until remote video frames are decoded and audio packets arrive. */
export async function waitForMedia(page: Page, timeoutMs = 10_000): Promise<MediaStats> {
  const deadline = Date.now() + timeoutMs;
  let last: MediaStats | null = null;
  while (Date.now() < deadline) {
    last = await mediaStats(page);
    if (last && last.framesDecoded > 0 && last.audioPacketsReceived > 0) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no remote media within ${timeoutMs} ms: ${JSON.stringify(last)}\n${await pageState(page)}`);
}

/** Wait (bounded) until the page has decoded more of the stranger's video than now: it keeps flowing. */
export async function expectVideoFlowing(page: Page, what = 'video keeps flowing', timeoutMs = 5_000): Promise<void> {
  const decoded = async () => (await mediaStats(page))?.framesDecoded ?? 0;
  const before = await decoded();
  await within(
    timeoutMs,
    what,
    (async () => {
      while ((await decoded()) <= before) await new Promise((r) => setTimeout(r, 50));
    })(),
  );
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** The status line above the conversation. */
export const status = (page: Page) => page.getByTestId('status');

/** Wait until the status line says `text`; within the page's default timeout unless `timeoutMs` is given. */
export async function expectStatus(page: Page, text: string | RegExp, timeoutMs?: number): Promise<void> {
  try {
    await status(page)
      .filter({ hasText: text })
      .waitFor(timeoutMs === undefined ? {} : { timeout: timeoutMs });
  } catch (err) {
    // Say what the page showed instead, so that a failure seen once can be read.
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(`status ${String(text)} not shown: ${why}\n${await pageState(page)}`, { cause: err });
  }
}

/** Wait until both pages say Connected. */
export async function expectConnected(a: Page, b: Page, timeoutMs?: number): Promise<void> {
  const [ra, rb] = await Promise.allSettled([expectStatus(a, /^Connected$/, timeoutMs), expectStatus(b, /^Connected$/, timeoutMs)]);
  if (ra.status === 'fulfilled' && rb.status === 'fulfilled') return;
  // Both pages' states: a call that does not connect is often read from the other side.
  const said = async (r: PromiseSettledResult<void>, page: Page) =>
    r.status === 'rejected' ? (r.reason instanceof Error ? r.reason.message : String(r.reason)) : `connected\n${await pageState(page)}`;
  throw new Error(`not connected on both pages\nfirst page: ${await said(ra, a)}\nsecond page: ${await said(rb, b)}`);
}

/** Every peer connection the page has made (a spare included). */
export const peerConnectionCount = (page: Page): Promise<number> =>
  page.evaluate(() => (window as unknown as Instrumented).__pcs.length);

/** The page's WebSockets, every one it has opened, with whether each is open now. */
export const socketUrls = (page: Page): Promise<{ url: string; open: boolean }[]> =>
  page.evaluate(() => (window as unknown as Instrumented).__sockets.map((s) => ({ url: s.url, open: s.readyState === WebSocket.OPEN })));

/** Wait until exactly `count` of the page's WebSockets are open (matching and signalling: 2). */
export async function waitForOpenSockets(page: Page, count: number, timeoutMs?: number): Promise<void> {
  await page.waitForFunction(
    (n) => (window as unknown as Instrumented).__sockets.filter((s) => s.readyState === WebSocket.OPEN).length === n,
    count,
    timeoutMs === undefined ? {} : { timeout: timeoutMs },
  );
}

/** Resolve within `ms` or fail with `what`: every wait in these tests is bounded. */
export async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
