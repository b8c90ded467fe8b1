// Real parts for browser tests: the built server on free ports and Debian's
// Chromium driven by playwright-core, everything on loopback. Run inside a
// private network namespace (see the test:e2e script) so nothing can leave.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SERVER_MAIN = join(ROOT, 'packages/server/dist/main.js');
export const WEB_ROOT = join(ROOT, 'packages/web/dist');
export const ARTIFACTS = join(ROOT, 'artifacts');

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

const children = new Set<ChildProcess>();
// A failed or interrupted run must not leave a server behind.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGKILL');
    process.exit(130);
  });
}

export interface RunningServer {
  readonly web: string;
  readonly matching: string;
  readonly signalling: string;
  /** Everything the server printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export async function startServer(extraEnv: Record<string, string> = {}): Promise<RunningServer> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOST: '127.0.0.1',
    MATCHING_PORT: '0',
    SIGNALLING_PORT: '0',
    WEB_PORT: '0',
    ROLES: 'matching,signalling,web',
    WEB_ROOT,
    REGISTER_RATE_PER_MIN: '100000',
    NEXT_RATE_PER_MIN: '100000',
    LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  delete env.REDIS_URL;
  const child = spawn(process.execPath, [SERVER_MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  const urls: Record<string, string> = {};
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.once('exit', () => children.delete(child));

  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start in time:\n${out}`)), SERVER_START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      for (const m of out.matchAll(/^(matching|signalling|web) listening on (http:\/\/\S+)$/gm)) urls[m[1]!] = m[2]!;
      if (urls.matching && urls.signalling && urls.web) {
        clearTimeout(timer);
        ok();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`server exited with ${code}:\n${out}`));
    });
  });

  return {
    web: urls.web!,
    matching: urls.matching!,
    signalling: urls.signalling!,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), SERVER_STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Playwright gives a non-persistent launch its own fresh temporary profile
 * (--user-data-dir) and deletes it on close; it also kills the browser when
 * this process ends.
 */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
    timeout: BROWSER_LAUNCH_TIMEOUT_MS,
  });
}

/**
 * Runs in every page before the app: keeps every RTCPeerConnection and
 * WebSocket the app makes, so tests can read stats and cut sockets. A string,
 * not a function, so the TypeScript loader's helpers never end up in the page.
 */
export const INSTRUMENT = `(() => {
  window.__pcs = [];
  window.__sockets = [];
  const NativePC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePC {
    constructor(config) { super(config); window.__pcs.push(this); }
  };
  const NativeWS = window.WebSocket;
  window.WebSocket = class extends NativeWS {
    constructor(url, protocols) { super(url, protocols); window.__sockets.push(this); }
  };
})();`;

export interface User {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught exceptions and unhandled rejections in the page; a test ends with none. */
  readonly errors: string[];
}

export async function newUser(browser: Browser, options: BrowserContextOptions = {}): Promise<User> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  await context.addInitScript({ content: INSTRUMENT });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  context.on('weberror', (e) => errors.push(e.error().message));
  return { context, page, errors };
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
  throw new Error(`no remote media within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** The status line above the conversation. */
export const status = (page: Page) => page.getByTestId('status');

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
