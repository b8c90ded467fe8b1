// Installable on a phone: the manifest and its icons, and the service worker
// that keeps the app shell and nothing else. Real Chromium against the real
// server on loopback (inside a private network namespace, see test:e2e).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser, newUser, startServer } from './harness.js';
import type { RunningServer } from './harness.js';

let server: RunningServer | undefined;
let browser: Browser;

describe('web app manifest and service worker', { timeout: 120_000 }, () => {
  before(async () => {
    [server, browser] = await Promise.all([startServer(), launchBrowser()]);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await server?.stop();
  });

  it('the manifest names the app and its icons load at the sizes it says', async () => {
    const u = await newUser(browser);
    try {
      await u.page.goto(server!.web);
      const href = await u.page.locator('link[rel="manifest"]').getAttribute('href');
      assert.ok(href, 'the page links a manifest');
      const manifest = await u.page.evaluate(async (h) => (await fetch(h)).json(), href);
      assert.equal(manifest.name, 'Dyad');
      assert.equal(manifest.display, 'standalone');
      assert.equal(manifest.start_url, '/');
      const icons = manifest.icons as { src: string; sizes: string; type: string; purpose?: string }[];
      assert.ok(icons.some((i) => i.sizes === '192x192') && icons.some((i) => i.sizes === '512x512'));
      assert.ok(icons.some((i) => i.purpose === 'maskable'), 'a maskable icon for Android launchers');
      for (const icon of icons) {
        const size = await u.page.evaluate(async (src) => {
          const res = await fetch(src);
          const bitmap = await createImageBitmap(await res.blob());
          return { type: res.headers.get('content-type'), size: `${bitmap.width}x${bitmap.height}` };
        }, icon.src);
        assert.deepEqual(size, { type: 'image/png', size: icon.sizes }, icon.src);
      }
    } finally {
      await u.context.close();
    }
  });

  it('the service worker keeps the app shell, never /config.json or the services, and the shell opens offline', async () => {
    const u = await newUser(browser);
    try {
      await u.page.goto(server!.web);
      await u.page.evaluate(() => navigator.serviceWorker.ready.then(() => undefined));
      // Controlled from the next load on.
      await u.page.reload();
      await u.page.waitForFunction(() => navigator.serviceWorker.controller !== null);
      await u.page.getByRole('button', { name: 'Start', exact: true }).waitFor();

      const cached = await u.page.evaluate(async () => {
        const urls: string[] = [];
        for (const name of await caches.keys()) {
          for (const req of await (await caches.open(name)).keys()) urls.push(new URL(req.url).pathname);
        }
        return urls;
      });
      assert.ok(cached.includes('/index.html'), `the shell is kept: ${cached.join(' ')}`);
      assert.ok(cached.some((p) => /^\/assets\/.+\.js$/.test(p)), 'the script is kept');
      const services = [new URL(server!.matching).port, new URL(server!.signalling).port];
      const cachedUrls = await u.page.evaluate(async () => {
        const all: string[] = [];
        for (const name of await caches.keys()) for (const req of await (await caches.open(name)).keys()) all.push(req.url);
        return all;
      });
      for (const url of cachedUrls) {
        const path = new URL(url).pathname;
        assert.ok(!['/config.json', '/online', '/ice-servers', '/register'].includes(path) && !path.startsWith('/ws'), `never cached: ${url}`);
        assert.ok(!services.includes(new URL(url).port), `nothing of the services: ${url}`);
      }

      // The server goes away: the shell still opens from the cache, /config.json does not.
      await server!.stop();
      server = undefined;
      await u.page.reload();
      await u.page.getByRole('heading', { level: 1 }).waitFor();
      const config = await u.page.evaluate(() =>
        fetch('/config.json', { cache: 'no-store' }).then(
          (r) => `HTTP ${r.status}`,
          (e: Error) => `failed: ${e.name}`,
        ),
      );
      assert.match(config, /^failed/, `/config.json comes from the network only (got ${config})`);
    } finally {
      await u.context.close();
    }
  });
});
