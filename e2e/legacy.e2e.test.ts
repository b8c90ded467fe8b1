// A page speaking each legacy protocol (docs/LEGACY.md) and Dyad's own web
// client, in real headless Chromium against the real server: they are paired
// from one pool and each decodes the other's video. The legacy pages are
// minimal clients written from the protocol description (the test serves
// them): plain RTCPeerConnection, signalling shaped as simple-peer's for
// random-video-chat and as go-megle's for go-megle. They are served by the
// server's web role from a copy of the web client's folder (WEB_ROOT), as an
// operator serving such a client beside Dyad's would.
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { WEB_ROOT, clickStart, launchBrowser, newUser, prepare, startServer, waitForMedia, within, type RunningServer, type User } from './harness.js';

let server: RunningServer;
let browser: Browser;
let webRoot: string;

/**
 * The random-video-chat client's steps: matching socket and POST at once, a
 * signalling socket after `matched`, join, hold signals until `verified`;
 * the responder makes its peer connection on the first signal.
 */
const RVC_PAGE = `<!doctype html><meta charset="utf-8"><title>rvc</title>
<video autoplay muted playsinline></video>
<script type="module">
// The client's three bases (configured in the real client; here read from the web role).
const config = await (await fetch('/config.json')).json();
const MATCHING = config.matching_url;
const MATCHING_WS = MATCHING.replace(/^http/, 'ws');
const SIGNALLING_WS = config.signalling_url.replace(/^http/, 'ws');
const name = 'rvc' + Math.random().toString(36).slice(2, 8);
window.__log = [];
const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
const ms = new WebSocket(MATCHING_WS + '/ws/' + encodeURIComponent(name));
ms.onmessage = (e) => { const m = JSON.parse(e.data); window.__log.push('m:' + m.event); if (m.event === 'matched') call(m); };
fetch(MATCHING + '/registerForMatching', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name }) })
  .then((r) => r.json()).then((b) => { window.__registered = b.status; });
function call(m) {
  const partner = m.room_code.split('_').find((n) => n !== name);
  const ss = new WebSocket(SIGNALLING_WS + '/ws/' + encodeURIComponent(name));
  let pc = null;
  let verified = false;
  const held = [];
  const send = (data) => {
    const frame = JSON.stringify({ event: 'signal', room_code: m.room_code, target: partner, from: name, data });
    if (verified) ss.send(frame); else held.push(frame);
  };
  const makePc = () => {
    pc = new RTCPeerConnection();
    for (const t of stream.getTracks()) pc.addTrack(t, stream);
    pc.onicecandidate = (e) => { if (e.candidate) send({ type: 'candidate', candidate: e.candidate.toJSON() }); };
    pc.ontrack = (e) => { document.querySelector('video').srcObject = e.streams[0]; };
  };
  let chain = Promise.resolve();
  ss.onopen = () => ss.send(JSON.stringify({ event: 'join', room_code: m.room_code, target: partner, role: m.initiator ? 'initiator' : 'responder' }));
  ss.onmessage = (e) => { chain = chain.then(() => handle(JSON.parse(e.data))).catch((err) => window.__log.push('fail:' + err)); };
  async function handle(msg) {
    window.__log.push('s:' + msg.event);
    if (msg.event === 'verified') { verified = true; for (const f of held.splice(0)) ss.send(f); return; }
    if (msg.event !== 'signal') return;
    const d = msg.data;
    if (!pc) makePc();
    if (d.type === 'offer') {
      await pc.setRemoteDescription(d);
      await pc.setLocalDescription(await pc.createAnswer());
      send({ type: 'answer', sdp: pc.localDescription.sdp });
    } else if (d.type === 'answer') await pc.setRemoteDescription(d);
    else if (d.candidate) await pc.addIceCandidate(d.candidate);
  }
  if (m.initiator) {
    makePc();
    pc.createOffer().then((o) => pc.setLocalDescription(o)).then(() => send({ type: 'offer', sdp: pc.localDescription.sdp }));
  }
}
</script>`;

/** The go-megle client's steps: a socket opened and closed on load, then the real one on the page's own origin; find_match; the initiator offers. */
const GM_PAGE = `<!doctype html><meta charset="utf-8"><title>go-megle</title>
<video autoplay muted playsinline></video>
<script type="module">
window.__log = [];
const url = 'ws://' + location.host + '/ws';
const first = new WebSocket(url);
const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
await new Promise((r) => setTimeout(r, 300));
first.close();
const ws = new WebSocket(url);
const send = (event, data) => ws.send(JSON.stringify({ event, data }));
let pc = null;
let partner = null;
let chain = Promise.resolve();
ws.onopen = () => send('find_match', {});
ws.onmessage = (e) => { chain = chain.then(() => handle(JSON.parse(e.data))).catch((err) => window.__log.push('fail:' + err)); };
async function handle({ event, data }) {
  window.__log.push(event);
  if (event === 'match_found') {
    partner = data.partner_id;
    pc = new RTCPeerConnection();
    for (const t of stream.getTracks()) pc.addTrack(t, stream);
    pc.onicecandidate = (e) => { if (e.candidate) send('signal', { target_id: partner, type: 'candidate', payload: e.candidate.toJSON() }); };
    pc.ontrack = (e) => { document.querySelector('video').srcObject = e.streams[0]; };
    if (data.initiator) {
      await pc.setLocalDescription(await pc.createOffer());
      send('signal', { target_id: partner, type: 'offer', payload: { type: 'offer', sdp: pc.localDescription.sdp } });
    }
  } else if (event === 'signal') {
    if (data.type === 'offer') {
      await pc.setRemoteDescription(data.payload);
      await pc.setLocalDescription(await pc.createAnswer());
      send('signal', { target_id: partner, type: 'answer', payload: { type: 'answer', sdp: pc.localDescription.sdp } });
    } else if (data.type === 'answer') await pc.setRemoteDescription(data.payload);
    else await pc.addIceCandidate(data.payload);
  }
}
</script>`;

const pageLog = (page: Page): Promise<string[]> => page.evaluate(() => (window as unknown as { __log?: string[] }).__log ?? []);

/** The Dyad page waits; the legacy page arrives; both must decode the other's video. */
async function meet(legacyUrl: string): Promise<void> {
  const dyad: User = await newUser(browser);
  const legacy: User = await newUser(browser);
  try {
    await prepare(dyad.page, server.web, 'video');
    await clickStart(dyad.page);
    const consoleLines: string[] = [];
    legacy.page.on('console', (m) => consoleLines.push(m.text()));
    legacy.page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    await legacy.page.goto(legacyUrl);
    const [sd, sl] = await within(
      60_000,
      'video both ways',
      Promise.all([waitForMedia(dyad.page, 55_000), waitForMedia(legacy.page, 55_000)]).catch(async (err: unknown) => {
        throw new Error(`${String(err)}; legacy page: ${JSON.stringify(await pageLog(legacy.page))} ${JSON.stringify(consoleLines)}; server: ${server.output().slice(-1500)}`);
      }),
    );
    assert.ok(sd.framesDecoded > 0, 'the Dyad page decodes the legacy page');
    assert.ok(sl.framesDecoded > 0, 'the legacy page decodes the Dyad page');
    assert.deepEqual([...dyad.errors, ...legacy.errors], []);
  } finally {
    await Promise.all([dyad.context.close(), legacy.context.close()]);
  }
}

describe('legacy clients and Dyad in real browsers', { timeout: 240_000 }, () => {
  before(async () => {
    webRoot = await mkdtemp(join(tmpdir(), 'dyad-legacy-web-'));
    await cp(WEB_ROOT, webRoot, { recursive: true });
    await writeFile(join(webRoot, 'rvc-client.html'), RVC_PAGE);
    await writeFile(join(webRoot, 'go-megle-client.html'), GM_PAGE);
    [server, browser] = await Promise.all([startServer({ LEGACY_PROTOCOLS: 'random-video-chat,go-megle', WEB_ROOT: webRoot }), launchBrowser()]);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await server?.stop();
    if (webRoot) await rm(webRoot, { recursive: true, force: true });
  });

  it('a random-video-chat page and a Dyad page see each other', async () => {
    // The page speaks to the matching and signalling ports across origins, as the client does (a CORS preflight first).
    await meet(`${server.web}/rvc-client.html`);
  });

  it('a go-megle page (on the web port, its socket on /ws) and a Dyad page see each other', async () => {
    await meet(`${server.web}/go-megle-client.html`);
  });
});
