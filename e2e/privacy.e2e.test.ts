// A person who chose text never has a live camera or microphone. Checked on
// the tracks themselves, not on the screen: every page records each
// getUserMedia call and every track it hands out (or a clone of one), and the
// tests read their readyState. Real Chromium with fake devices against the
// real server, inside the private network namespace of the test:e2e script.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page, WebSocketRoute } from 'playwright-core';
import { clickStart, closeUsers, expectConnected, expectStatus, launchBrowser, newUser, prepare, startPair, startServer, talk, within } from './harness.js';
import type { Instrumented, RunningServer, User } from './harness.js';

/** How long a page gets to end its tracks once text is chosen (a bounded wait, not a speed). */
const RELEASE_WAIT_MS = 5_000;

/**
 * Runs before the app: wraps getUserMedia and MediaStreamTrack.clone so the
 * page keeps a count of the calls and every track that was ever handed out.
 * With `hold`, a granted stream reaches the app only once the test calls
 * window.__letMediaThrough() (a browser still asking, the prompt still open).
 * The client itself is unchanged. A string, so no loader helper ends up in the page.
 */
const recordMedia = (hold: boolean) => `(() => {
  const record = { calls: 0, tracks: [], held: [] };
  window.__media = record;
  window.__letMediaThrough = () => { for (const pass of record.held.splice(0)) pass(); };
  const devices = navigator.mediaDevices;
  if (!devices || !devices.getUserMedia) return;
  const native = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints) => {
    record.calls++;
    const asked = native(constraints).then((stream) => {
      record.tracks.push(...stream.getTracks());
      return stream;
    });
    if (!${hold}) return asked;
    return asked.then((stream) => new Promise((resolve) => record.held.push(() => resolve(stream))));
  };
  const clone = MediaStreamTrack.prototype.clone;
  MediaStreamTrack.prototype.clone = function () {
    const copy = clone.call(this);
    record.tracks.push(copy);
    return copy;
  };
})();`;

interface MediaRecord {
  /** getUserMedia calls so far. */
  readonly calls: number;
  /** Tracks ever handed out. */
  readonly tracks: number;
  /** Of those, the ones still live, as "kind:label". */
  readonly live: string[];
}

const mediaRecord = (page: Page): Promise<MediaRecord> =>
  page.evaluate(() => {
    const r = (window as unknown as { __media: { calls: number; tracks: MediaStreamTrack[] } }).__media;
    return {
      calls: r.calls,
      tracks: r.tracks.length,
      live: r.tracks.filter((t) => t.readyState !== 'ended').map((t) => `${t.kind}:${t.label}`),
    };
  });

/** Waits (bounded) until every track the page was ever given has ended; returns the record either way. */
async function allEnded(page: Page): Promise<MediaRecord> {
  await page
    .waitForFunction(
      () =>
        (window as unknown as { __media: { tracks: MediaStreamTrack[] } }).__media.tracks.every(
          (t) => t.readyState === 'ended',
        ),
      undefined,
      { timeout: RELEASE_WAIT_MS },
    )
    .catch(() => undefined);
  return mediaRecord(page);
}

async function recordedUser(browser: Browser, hold = false): Promise<User> {
  const user = await newUser(browser);
  await user.context.addInitScript({ content: recordMedia(hold) });
  return user;
}

const chooseText = (page: Page) => page.getByRole('radio', { name: 'Text' }).check({ force: true });

/** For /admin/stats: how many sessions the server holds in its queues. */
const ADMIN_TOKEN = 'privacy-e2e-admin-token';

async function waitingOnServer(): Promise<number> {
  const res = await fetch(`${server.matching}/admin/stats`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(res.status, 200, 'admin stats answer');
  const stats = (await res.json()) as { waiting: Record<string, number> };
  return Object.values(stats.waiting).reduce((a, b) => a + b, 0);
}

/** Every peer connection the page made (recorded by the harness) is closed. */
const allPeerConnectionsClosed = (page: Page): Promise<boolean> =>
  page.evaluate(() =>
    (window as unknown as Instrumented).__pcs.every((pc) => pc.signalingState === 'closed'),
  );

let server: RunningServer;
let browser: Browser;

describe('text mode never keeps a camera or microphone live', { timeout: 100_000 }, () => {
  before(async () => {
    [server, browser] = await Promise.all([startServer({ ADMIN_TOKEN }), launchBrowser()]);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await server?.stop();
  });

  it('18+ ticked with video chosen, then text: every track ends and getUserMedia is not called again, through a whole text chat', async () => {
    const a = await recordedUser(browser);
    const b = await recordedUser(browser);
    try {
      // Video is chosen and confirmed: the camera is prepared ahead (the preview shows).
      await prepare(a.page, server.web, 'video');
      const prepared = await mediaRecord(a.page);
      assert.ok(prepared.calls > 0 && prepared.tracks > 0, 'the camera was prepared for video');
      assert.ok(prepared.live.length > 0, 'and is live while video is chosen');

      await chooseText(a.page);
      const chosen = await allEnded(a.page);
      assert.deepEqual(chosen.live, [], 'choosing text ends every track');

      await prepare(b.page, server.web, 'text');
      await Promise.all([clickStart(a.page), clickStart(b.page)]);
      await expectConnected(a.page, b.page);
      await talk(a.page, b.page, 'text only, please');
      await talk(b.page, a.page, 'same here');
      const chatting = await mediaRecord(a.page);
      assert.deepEqual(chatting.live, [], 'nothing live during the text chat');
      assert.equal(chatting.calls, prepared.calls, 'no getUserMedia call after text was chosen');
      assert.equal(await a.page.locator('video').count(), 0, 'text mode shows no video');

      // The chat ends, A looks again and then stops, then goes back to the settings.
      await b.page.getByRole('button', { name: 'Stop' }).click();
      await expectStatus(a.page, /Stranger left/);
      await a.page.getByRole('button', { name: 'New chat' }).click();
      await expectStatus(a.page, 'Looking for someone…');
      await a.page.getByRole('button', { name: 'Stop' }).click();
      await a.page.getByRole('button', { name: 'Change settings' }).click();
      await a.page.getByRole('button', { name: 'Start', exact: true }).waitFor();
      const done = await mediaRecord(a.page);
      assert.deepEqual(done.live, [], 'nothing live after the chat, on Stop or when leaving');
      assert.equal(done.calls, prepared.calls, 'still no getUserMedia call while text is chosen');
      assert.deepEqual((await mediaRecord(b.page)).calls, 0, 'the page that chose text first never asked');
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await closeUsers(a, b);
    }
  });

  it('text chosen while the browser is still asking for the camera: the stream that lands is stopped', async () => {
    const u = await recordedUser(browser, true);
    try {
      await u.page.goto(server.web);
      await u.page.getByRole('radio', { name: 'Video' }).check({ force: true });
      await u.page.getByRole('checkbox', { name: /18 or older/ }).check();
      // The devices are open, the app has not got them yet.
      await u.page.waitForFunction(
        () => (window as unknown as { __media: { tracks: unknown[] } }).__media.tracks.length > 0,
        undefined,
        { timeout: 10_000 },
      );
      const asked = await mediaRecord(u.page);
      await chooseText(u.page);
      await u.page.evaluate(() => (window as unknown as { __letMediaThrough(): void }).__letMediaThrough());
      const landed = await allEnded(u.page);
      assert.deepEqual(landed.live, [], 'the late stream is stopped when it lands');
      assert.equal(landed.calls, asked.calls, 'and nothing more is asked for');
      assert.equal(await u.page.locator('video').count(), 0, 'no preview in text mode');
      assert.deepEqual(u.errors, []);
    } finally {
      await u.context.close();
    }
  });

  it('18+ ticked with video chosen, then unticked: every track ends and the spare peer connection closes', async () => {
    const u = await recordedUser(browser);
    try {
      await prepare(u.page, server.web, 'video');
      const prepared = await mediaRecord(u.page);
      assert.ok(prepared.live.length > 0, 'the camera is live once video is chosen and 18+ ticked');

      await u.page.getByRole('checkbox', { name: /18 or older/ }).uncheck();
      const unticked = await allEnded(u.page);
      assert.deepEqual(unticked.live, [], 'unticking 18+ ends every track');
      assert.equal(await allPeerConnectionsClosed(u.page), true, 'no peer connection holds the camera');
      assert.equal(unticked.calls, prepared.calls, 'nothing more is asked for');
      assert.deepEqual(u.errors, []);
    } finally {
      await u.context.close();
    }
  });

  it('Stop pressed while still connecting: the search is cancelled, every track ends, the server holds no waiting session', async () => {
    const u = await recordedUser(browser);
    // The server's first frames (session, waiting) reach the page only once
    // released: the page stays "connecting" until then. What the page sends
    // goes straight through.
    const held: (string | Buffer)[] = [];
    let holding = true;
    let pageSide: WebSocketRoute | null = null;
    let sawStop: () => void = () => undefined;
    const stopSent = new Promise<void>((resolve) => (sawStop = resolve));
    let sawIdle: () => void = () => undefined;
    const idleAnswered = new Promise<void>((resolve) => (sawIdle = resolve));
    await u.context.routeWebSocket(/\/ws\?/, (ws) => {
      pageSide = ws;
      const upstream = ws.connectToServer();
      upstream.onMessage((m) => {
        if (String(m).includes('"idle"')) sawIdle();
        if (holding) held.push(m);
        else ws.send(m);
      });
      ws.onMessage((m) => {
        if (String(m).includes('"stop"')) sawStop();
        upstream.send(m);
      });
    });
    const release = () => {
      holding = false;
      for (const m of held.splice(0)) pageSide?.send(m);
    };
    try {
      await prepare(u.page, server.web, 'video');
      await clickStart(u.page);
      await expectStatus(u.page, 'Connecting…');
      assert.ok((await mediaRecord(u.page)).live.length > 0, 'the camera is live while connecting');

      await u.page.getByRole('button', { name: 'Stop' }).click();
      await expectStatus(u.page, 'You left the chat');
      const stopped = await allEnded(u.page);
      assert.deepEqual(stopped.live, [], 'Stop while connecting ends every track');

      // The server's answer arrives now: the page tells it to stop at once.
      release();
      await within(RELEASE_WAIT_MS, 'the page sends stop once its session exists', stopSent);
      await within(RELEASE_WAIT_MS, 'the server confirms the stop', idleAnswered);
      assert.equal(await waitingOnServer(), 0, 'no session of this page is waiting to be matched');
      await expectStatus(u.page, /^(You left the chat|Ready when you are)$/);
      const after = await allEnded(u.page);
      assert.deepEqual(after.live, [], 'and no track came back');
      assert.equal(await allPeerConnectionsClosed(u.page), true, 'no peer connection is left open');
      assert.deepEqual(u.errors, []);
    } finally {
      await u.context.close();
    }
  });

  it('a page that starts in text mode never calls getUserMedia', async () => {
    const a = await recordedUser(browser);
    const b = await recordedUser(browser);
    try {
      await startPair(a, b, server.web, 'text');
      await talk(a.page, b.page, 'hello');
      await a.page.getByRole('button', { name: /^Next/ }).click();
      await expectStatus(b.page, /Stranger skipped/);
      await b.page.getByRole('button', { name: 'New chat' }).click();
      await expectConnected(a.page, b.page);
      await a.page.getByRole('button', { name: 'Change settings' }).click();
      await a.page.getByRole('button', { name: 'Start', exact: true }).waitFor();
      for (const page of [a.page, b.page]) {
        assert.deepEqual(await mediaRecord(page), { calls: 0, tracks: 0, live: [] }, 'getUserMedia was never called');
      }
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await closeUsers(a, b);
    }
  });

  for (const leaveBy of ['Next', 'Stop'] as const) {
    it(`a video chat, then ${leaveBy} and text chosen: every track ends and text asks for nothing`, async () => {
      const a = await recordedUser(browser);
      const b = await recordedUser(browser);
      const c = await recordedUser(browser);
      try {
        await startPair(a, b, server.web, 'video');
        assert.ok((await mediaRecord(a.page)).live.length > 0, 'the camera is live in the video chat');

        await a.page.getByRole('button', { name: leaveBy === 'Next' ? /^Next/ : 'Stop' }).click();
        await expectStatus(b.page, leaveBy === 'Next' ? /Stranger skipped/ : /Stranger left/);
        await a.page.getByRole('button', { name: 'Change settings' }).click();
        // Back on the settings with video still chosen: the camera is prepared again, which is right for video.
        await a.page.locator('video.preview-video').waitFor({ state: 'visible' });
        const beforeText = await mediaRecord(a.page);

        await chooseText(a.page);
        const chosen = await allEnded(a.page);
        assert.deepEqual(chosen.live, [], 'choosing text ends every track');

        await prepare(c.page, server.web, 'text');
        await Promise.all([clickStart(a.page), clickStart(c.page)]);
        await expectConnected(a.page, c.page);
        await talk(c.page, a.page, 'text now');
        const chatting = await mediaRecord(a.page);
        assert.deepEqual(chatting.live, [], 'nothing live during the text chat');
        assert.equal(chatting.calls, beforeText.calls, 'no getUserMedia call after text was chosen');
        assert.deepEqual([...a.errors, ...b.errors, ...c.errors], []);
      } finally {
        await closeUsers(a, b, c);
      }
    });
  }
});
