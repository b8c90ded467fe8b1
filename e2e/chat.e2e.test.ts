// Two strangers in real headless Chromium against the real server, on
// loopback inside a private network namespace (see the test:e2e script).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import {
  clickStart,
  cspViolations,
  closeUsers,
  expectConnected,
  expectStatus,
  expectVideoFlowing,
  launchBrowser,
  newUser,
  peerConnectionCount,
  prepare,
  screenshot,
  startPair,
  startServer,
  status,
  talk,
  traceOf,
  waitForMedia,
  waitForOpenSockets,
  within,
} from './harness.js';
import type { Instrumented, RunningServer } from './harness.js';

const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
} as const;

const STUN_URL = 'stun:127.0.0.1:3478';

let server: RunningServer;
let browser: Browser;

/** Peer connections that are open and were used with a stranger (a spare made while waiting has no remote description). */
const livePeerConnections = (page: Page) =>
  page.evaluate(
    () =>
      (window as unknown as Instrumented).__pcs.filter(
        (pc) => pc.signalingState !== 'closed' && pc.remoteDescription !== null,
      ).length,
  );
const openPeerConnections = (page: Page) =>
  page.evaluate(() => (window as unknown as Instrumented).__pcs.filter((pc) => pc.signalingState !== 'closed').length);

describe('Dyad in two real browsers', { timeout: 100_000 }, () => {
  before(async () => {
    // A STUN server nobody answers on loopback: only there to prove the client uses the servers from `matched`.
    [server, browser] = await Promise.all([startServer({ STUN_URLS: STUN_URL }), launchBrowser()]);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await server?.stop();
  });

  it('video: both decode the other, chat with typing, Next shows "Stranger skipped"', async () => {
    const a = await newUser(browser);
    const b = await newUser(browser, PHONE);
    try {
      await Promise.all([
        prepare(a.page, server.web, 'video', ['music', 'chess']),
        prepare(b.page, server.web, 'video', ['Music']),
      ]);
      await screenshot(a.page, 'landing-desktop');
      await screenshot(b.page, 'landing-phone');
      await Promise.all([clickStart(a.page), clickStart(b.page)]);

      const [sa, sb] = await Promise.all([waitForMedia(a.page), waitForMedia(b.page)]);
      assert.ok(sa.framesDecoded > 0 && sb.framesDecoded > 0, 'remote video decoded on both');
      assert.ok(sa.audioPacketsReceived > 0 && sb.audioPacketsReceived > 0, 'remote audio received on both');
      // Loopback only: the pair is direct, nothing relayed (TURN) or reflected by a STUN server.
      // A host address may show as peer-reflexive (prflx) when a connectivity check from it comes
      // in before the candidate itself was signalled (or, under load, when its own answer does):
      // the same loopback address, learnt first from the check.
      const direct = ['host', 'prflx'];
      assert.ok(direct.includes(String(sa.localCandidateType)), `a's local candidate is ${String(sa.localCandidateType)}`);
      assert.ok(direct.includes(String(sb.remoteCandidateType)), `b's remote candidate is ${String(sb.remoteCandidateType)}`);
      for (const page of [a.page, b.page]) {
        const servers = await page.evaluate(() =>
          (window as unknown as Instrumented).__pcs.at(-1)!.getConfiguration().iceServers,
        );
        assert.deepEqual(servers?.flatMap((s) => s.urls), [STUN_URL], 'ICE servers come from `matched`');
      }
      await expectConnected(a.page, b.page);
      // Interests compare case-insensitively; the shared one is shown to both.
      await b.page.getByText('You both like music.').waitFor();
      assert.equal(await a.page.getByRole('list', { name: 'Interests you share' }).textContent(), 'music');

      // "Stranger is typing…" shows on B while A types, before the line arrives.
      const input = a.page.getByRole('textbox', { name: 'Message' });
      await input.pressSequentially('hello stranger', { delay: 15 });
      await b.page.getByText('Stranger is typing…').waitFor();
      assert.equal(await b.page.locator('li[data-from="stranger"]').count(), 0);
      await input.press('Enter');
      await b.page.locator('li[data-from="stranger"]', { hasText: 'hello stranger' }).waitFor();
      await a.page.locator('li[data-from="you"]', { hasText: 'hello stranger' }).waitFor();
      assert.equal(await input.inputValue(), '');
      await b.page.getByText('Stranger is typing…').waitFor({ state: 'hidden' });
      const lineB = await b.page.locator('li[data-from="stranger"]').first().textContent();
      assert.equal(lineB?.trim(), 'Stranger: hello stranger');

      await talk(b.page, a.page, 'hi from the phone');
      // Let a few more frames in so the screenshots show real video.
      await a.page.waitForTimeout(400);
      await screenshot(a.page, 'video-desktop');
      await screenshot(b.page, 'video-phone');

      // One Esc only arms the button (the second press, or a click, skips).
      await a.page.keyboard.press('Escape');
      await a.page.getByRole('button', { name: /^Really\?/ }).click();
      await expectStatus(b.page, 'Stranger skipped');
      await expectStatus(a.page, 'Looking for someone…');
      await b.page.locator('li[data-from="system"]', { hasText: 'Stranger skipped.' }).waitFor();
      assert.equal(await livePeerConnections(a.page), 0, 'A closed its peer connection on Next');
      assert.equal(await openPeerConnections(b.page), 0, 'B closed its peer connection when skipped');
      await screenshot(a.page, 'next-desktop');
      await screenshot(b.page, 'skipped-phone');
      assert.deepEqual([...a.errors, ...b.errors], []);
      // The whole call ran under the web role's Content-Security-Policy, and it refused nothing.
      assert.deepEqual([...(await cspViolations(a.page)), ...(await cspViolations(b.page))], []);
    } finally {
      await closeUsers(a, b);
    }
  });

  it('text mode pairs two text pages and never a video page', async () => {
    const v = await newUser(browser);
    const t1 = await newUser(browser, { colorScheme: 'dark' });
    const t2 = await newUser(browser, PHONE);
    try {
      await prepare(v.page, server.web, 'video');
      await clickStart(v.page);
      await expectStatus(v.page, 'Looking for someone…');

      await startPair(t1, t2, server.web, 'text');
      await talk(t1.page, t2.page, 'text only');

      // Give the server every chance to pair the video page wrongly.
      await v.page.waitForTimeout(300);
      assert.match((await status(v.page).textContent()) ?? '', /Looking for someone/);
      assert.equal(await livePeerConnections(v.page), 0, 'the video page met nobody');
      assert.equal(await peerConnectionCount(t1.page), 0, 'text mode makes no peer connection');
      assert.equal(await t1.page.locator('video').count(), 0, 'text mode shows no video');
      await screenshot(t1.page, 'text-desktop-dark');
      await screenshot(t2.page, 'text-phone');

      // Report: a reason, then on to someone new.
      await t1.page.getByRole('button', { name: 'Report' }).click();
      await t1.page.getByRole('dialog', { name: 'Report this stranger' }).waitFor();
      await screenshot(t1.page, 'report-dialog-dark');
      await t1.page.getByRole('radio', { name: 'Spam or scam' }).check();
      await t1.page.getByRole('dialog').getByRole('button', { name: 'Report' }).click();
      await t1.page.getByText('The stranger has been reported').waitFor();
      await expectStatus(t2.page, 'Stranger skipped');
      assert.deepEqual([...v.errors, ...t1.errors, ...t2.errors], []);
    } finally {
      await closeUsers(v, t1, t2);
    }
  });

  it('a dropped socket resumes within the grace period without losing the stranger', async () => {
    const a = await newUser(browser);
    const b = await newUser(browser);
    try {
      await startPair(a, b, server.web, 'video');

      // Cut both of A's sockets the way a network blip does (not a clean 1000 close).
      const cut = await a.page.evaluate(() => {
        const sockets = (window as unknown as Instrumented).__sockets.filter((s) => s.readyState === WebSocket.OPEN);
        for (const s of sockets) s.close(4000);
        return sockets.length;
      });
      assert.equal(cut, 2, 'matching and signalling sockets were open');
      await within(10_000, 'A reopens both sockets', waitForOpenSockets(a.page, 2, 10_000));
      await expectStatus(a.page, /^Connected$/);
      await talk(a.page, b.page, 'still here?');
      assert.match((await status(b.page).textContent()) ?? '', /^Connected$/, 'B never saw A leave');
      assert.equal(await peerConnectionCount(a.page), 1, 'same peer connection, no renegotiated room');
      await expectVideoFlowing(b.page);
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await closeUsers(a, b);
    }
  });

  it('auto-next looks again by itself; Stop turns the camera off and New chat comes back', async (t) => {
    const a = await newUser(browser);
    const b = await newUser(browser);
    const liveCameraTracks = (page: Page) =>
      page.evaluate(() => {
        const video = document.querySelector<HTMLVideoElement>('[data-testid="local-video"]');
        const stream = video?.srcObject as MediaStream | null | undefined;
        return stream ? stream.getTracks().filter((t) => t.readyState === 'live').length : 0;
      });
    try {
      await startPair(a, b, server.web, 'video');
      await b.page.getByRole('checkbox', { name: 'Auto-next' }).check({ force: true });

      await a.page.getByRole('button', { name: /^Next/ }).click();
      // B hears why, and is already looking again; with nobody else around, they meet again.
      await expectStatus(b.page, /Stranger skipped/);
      await expectConnected(a.page, b.page);
      await Promise.all([waitForMedia(a.page), waitForMedia(b.page)]);

      await a.page.getByRole('button', { name: 'Stop' }).click();
      await expectStatus(a.page, 'You left the chat');
      await expectStatus(b.page, /Stranger left/);
      assert.equal(await liveCameraTracks(a.page), 0, 'Stop releases the camera');
      assert.equal(await livePeerConnections(a.page), 0);

      await a.page.getByRole('button', { name: 'New chat' }).click();
      await expectConnected(a.page, b.page);
      await Promise.all([waitForMedia(a.page), waitForMedia(b.page)]);
      assert.equal(await liveCameraTracks(a.page), 2, 'the camera is back');
      assert.deepEqual([...a.errors, ...b.errors], []);
      // An offer the browser refused (and the client got past with a fresh connection) is worth seeing in a pass too.
      for (const [name, user] of [['first', a], ['second', b]] as const) {
        const trace = await traceOf(user.page);
        if (trace.some((line) => line.includes('setLocalDescription failed'))) t.diagnostic(`${name} page recovered:\n${trace.join('\n')}`);
      }
    } finally {
      await closeUsers(a, b);
    }
  });

  it('ICE restarts renegotiate from either side, even both at once (perfect negotiation)', async () => {
    const a = await newUser(browser);
    const b = await newUser(browser);
    /** The ICE username fragment this page's connection uses now; a restart changes it. */
    const ufrag = (page: Page) =>
      page.evaluate(() => {
        const pc = (window as unknown as Instrumented).__pcs.at(-1)!;
        return /a=ice-ufrag:(\S+)/.exec(pc.currentLocalDescription?.sdp ?? '')?.[1] ?? null;
      });
    const restart = (page: Page) =>
      page.evaluate(() => (window as unknown as Instrumented).__pcs.at(-1)!.restartIce());
    const settled = (page: Page, old: string | null) =>
      page.waitForFunction(
        (before) => {
          const pc = (window as unknown as Instrumented).__pcs.at(-1)!;
          const now = /a=ice-ufrag:(\S+)/.exec(pc.currentLocalDescription?.sdp ?? '')?.[1];
          return pc.signalingState === 'stable' && pc.connectionState === 'connected' && now !== before;
        },
        old,
        { timeout: 10_000 },
      );
    try {
      await startPair(a, b, server.web, 'video');
      const responder = (await a.page.evaluate(
        () => (window as unknown as Instrumented).__pcs.at(-1)!.currentLocalDescription?.type,
      )) === 'answer' ? a.page : b.page;

      // The responder may offer once the first answer has passed (contract rule).
      let [ua, ub] = await Promise.all([ufrag(a.page), ufrag(b.page)]);
      await restart(responder);
      await Promise.all([settled(a.page, ua), settled(b.page, ub)]);

      // Both at once: the collision resolves, the polite side yields.
      [ua, ub] = await Promise.all([ufrag(a.page), ufrag(b.page)]);
      await Promise.all([restart(a.page), restart(b.page)]);
      await Promise.all([settled(a.page, ua), settled(b.page, ub)]);

      await expectVideoFlowing(a.page, 'video keeps flowing after the restarts');
      await expectConnected(a.page, b.page);
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await closeUsers(a, b);
    }
  });

  it('50 nexts leave no peer connection behind', async () => {
    const a = await newUser(browser);
    const b = await newUser(browser);
    const ROUNDS = 50;
    try {
      await Promise.all([prepare(a.page, server.web, 'video'), prepare(b.page, server.web, 'video')]);
      await Promise.all([clickStart(a.page), clickStart(b.page)]);
      const next = a.page.getByRole('button', { name: /^Next/ });
      const newChat = b.page.getByRole('button', { name: 'New chat' });
      for (let round = 1; round <= ROUNDS; round++) {
        await expectStatus(a.page, /^(Connecting video…|Connected)$/, 5_000);
        if (round % 2 === 0) {
          await next.click();
        } else {
          // Esc twice, as on Omegle, as fast as a person presses it.
          await a.page.keyboard.press('Escape');
          await a.page.keyboard.press('Escape');
        }
        await newChat.click();
      }
      await Promise.all([waitForMedia(a.page), waitForMedia(b.page)]);
      assert.equal(await peerConnectionCount(a.page), ROUNDS + 1);
      assert.equal(await openPeerConnections(a.page), 1, 'only the current peer connection is open on A');
      assert.equal(await openPeerConnections(b.page), 1, 'only the current peer connection is open on B');
      const liveRemoteTracks = await a.page.evaluate(
        () =>
          (window as unknown as Instrumented).__pcs
            .filter((pc) => pc.signalingState === 'closed')
            .flatMap((pc) => pc.getReceivers().map((r) => r.track))
            .filter((t) => t.readyState === 'live').length,
      );
      assert.equal(liveRemoteTracks, 0, 'remote tracks of closed rooms have ended');
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await closeUsers(a, b);
    }
  });

  it('a blocked camera gets a clear message and an offer of text chat', async () => {
    const u = await newUser(browser);
    try {
      await u.context.addInitScript({
        content: `navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));`,
      });
      await u.page.goto(server.web);
      await u.page.getByRole('radio', { name: 'Video' }).check({ force: true });
      await u.page.getByRole('checkbox', { name: /18 or older/ }).check();
      const alert = u.page.getByRole('alert').filter({ hasText: /blocked/ });
      await alert.waitFor();
      assert.equal(await u.page.getByRole('button', { name: 'Start', exact: true }).isDisabled(), true);
      await screenshot(u.page, 'camera-blocked');
      await u.page.getByRole('button', { name: 'Use text chat' }).click();
      assert.equal(await u.page.getByRole('radio', { name: 'Text' }).isChecked(), true);
      assert.equal(await u.page.getByRole('button', { name: 'Start', exact: true }).isEnabled(), true);
      assert.deepEqual(u.errors, []);
    } finally {
      await u.context.close();
    }
  });
});
