// Every screen checked by axe-core at phone and desktop widths, with focus
// where it matters: two real browsers against the real server on loopback
// (inside a private network namespace, see the test:e2e script).
//
// With SCREENSHOTS=docs the screens are also written to docs/screenshots/
// (the README shows them); otherwise to artifacts/.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AxeBuilder } from '@axe-core/playwright';
import type { Browser, BrowserContextOptions, Page } from 'playwright-core';
import { REPO_ROOT } from '../packages/server/test/support/spawn.js';
import { clickStart, expectStatus, launchBrowser, newUser, prepare, screenshot, startPair, startServer, talk, waitForMedia } from './harness.js';
import type { RunningServer, User } from './harness.js';

const WIDTHS: ReadonlyArray<{ name: string; options: BrowserContextOptions }> = [
  { name: 'desktop', options: { viewport: { width: 1280, height: 800 } } },
  {
    name: 'phone',
    options: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  },
];

const DOCS_SCREENSHOTS = join(REPO_ROOT, 'docs/screenshots');

let server: RunningServer;
let browser: Browser;

/** Zero violations of any impact; the message names each rule and the elements it found. */
async function expectNoViolations(page: Page, screen: string): Promise<void> {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const found = violations.map(
    (v) => `${v.id} (${v.impact ?? '?'}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
  );
  assert.deepEqual(found, [], `axe on "${screen}"`);
}

/** A screen for the README (SCREENSHOTS=docs) or for the artifacts. */
async function shoot(page: Page, name: string): Promise<void> {
  if (process.env.SCREENSHOTS === 'docs') {
    await mkdir(DOCS_SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(DOCS_SCREENSHOTS, `${name}.png`) });
  } else {
    await screenshot(page, `a11y-${name}`);
  }
}

const focused = (page: Page) =>
  page.evaluate(() => {
    const el = document.activeElement;
    if (!el) return '';
    return el.id ? `#${el.id}` : `${el.tagName.toLowerCase()}:${el.getAttribute('aria-label') ?? el.textContent?.trim() ?? ''}`;
  });

/** Generous: two browsers with real media on a shared two-core machine. */
const TEST_TIMEOUT_MS = 600_000;

describe('accessibility of every screen', () => {
  before(async () => {
    [server, browser] = await Promise.all([startServer(), launchBrowser()]);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await server?.stop();
  });

  it('Arabic from the browser: right to left, mirrored, translated, and clean for axe', { timeout: TEST_TIMEOUT_MS }, async () => {
    const u = await newUser(browser, { ...WIDTHS[1]!.options, locale: 'ar-EG' });
    try {
      await u.page.goto(server.web);
      await u.page.getByRole('button', { name: 'ابدأ', exact: true }).waitFor();
      const html = await u.page.evaluate(() => ({ lang: document.documentElement.lang, dir: document.documentElement.dir }));
      assert.deepEqual(html, { lang: 'ar', dir: 'rtl' });
      // Mirrored: the brand starts the line on the right, the language switch ends it on the left.
      const brand = await u.page.getByRole('button', { name: 'الصفحة الرئيسية لـ Dyad' }).boundingBox();
      const switcher = await u.page.getByRole('combobox', { name: 'لغة الواجهة' }).boundingBox();
      assert.ok(brand && switcher && brand.x > switcher.x, `brand ${brand?.x} right of the switch ${switcher?.x}`);
      await u.page.getByRole('checkbox', { name: /18/ }).check();
      await expectNoViolations(u.page, 'landing in Arabic');
      await shoot(u.page, 'landing-phone-ar');
      // Switched back by hand: English, left to right, kept for the next visit.
      await u.page.getByRole('combobox', { name: 'لغة الواجهة' }).selectOption('en');
      await u.page.getByRole('button', { name: 'Start', exact: true }).waitFor();
      await u.page.reload();
      assert.equal(await u.page.evaluate(() => document.documentElement.dir), 'ltr');
      await u.page.getByRole('button', { name: 'Start', exact: true }).waitFor();
      assert.deepEqual(u.errors, []);
    } finally {
      await u.context.close().catch(() => undefined);
    }
  });

  for (const width of WIDTHS) {
    it(`${width.name}: landing, waiting, a call, the report dialog, the stranger left, text chat`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const users: User[] = [];
      try {
        const a = await newUser(browser, width.options);
        const b = await newUser(browser, width.options);
        users.push(a, b);

        await prepare(a.page, server.web, 'video', ['music']);
        await expectNoViolations(a.page, 'landing');
        await shoot(a.page, `landing-${width.name}`);

        // Alone in the pool: the waiting screen, its heading focused.
        await clickStart(a.page);
        await expectStatus(a.page, 'Looking for someone');
        assert.equal(await focused(a.page), '#chat-title', 'the new screen takes focus at its heading');
        await expectNoViolations(a.page, 'waiting');
        await shoot(a.page, `waiting-${width.name}`);

        await prepare(b.page, server.web, 'video', ['music']);
        await clickStart(b.page);
        await Promise.all([waitForMedia(a.page), waitForMedia(b.page)]);
        await expectStatus(a.page, 'Connected');
        // A stranger is found: the message box on a desktop; Next on a phone (no keyboard over the video).
        const expected = width.name === 'phone' ? /^button:Next/ : /^#chat-input$/;
        assert.match(await focused(a.page), expected, 'focus moves to what matters when a stranger is found');
        await expectNoViolations(a.page, 'in a call');
        await shoot(a.page, `call-${width.name}`);

        // The device menu: Esc closes it, gives focus back, and skips nobody.
        if (width.name === 'desktop') {
          await a.page.getByRole('button', { name: 'Choose camera and microphone' }).click();
          await a.page.getByRole('dialog', { name: 'Camera and microphone' }).waitFor();
          await expectNoViolations(a.page, 'device menu');
          await a.page.keyboard.press('Escape');
          await a.page.getByRole('dialog', { name: 'Camera and microphone' }).waitFor({ state: 'detached' });
          assert.equal(await focused(a.page), 'button:Choose camera and microphone');
          assert.equal(await a.page.getByRole('button', { name: /^Really\?/ }).count(), 0, 'Esc did not arm the skip');
        }

        // The report dialog: focus inside, trapped, Esc closes it and returns focus; the stranger stays.
        const reportButton = a.page.getByRole('button', { name: 'Report', exact: true });
        await reportButton.focus();
        await reportButton.press('Enter');
        const dialog = a.page.getByRole('dialog', { name: 'Report this stranger' });
        await dialog.waitFor();
        await expectNoViolations(a.page, 'report dialog');
        await shoot(a.page, `report-${width.name}`);
        for (let i = 0; i < 12; i++) {
          await a.page.keyboard.press(i % 3 === 2 ? 'Shift+Tab' : 'Tab');
          const inside = await dialog.evaluate((el) => el.contains(document.activeElement));
          assert.ok(inside, `focus stays in the dialog (step ${i})`);
        }
        await a.page.keyboard.press('Escape');
        await dialog.waitFor({ state: 'detached' });
        assert.equal(await focused(a.page), 'button:Report', 'focus returns to Report');
        await expectStatus(a.page, 'Connected');
        await expectStatus(b.page, 'Connected');

        // B stops: A is on the "stranger left" screen.
        await b.page.getByRole('button', { name: 'Stop' }).click();
        await expectStatus(a.page, 'Stranger left');
        await expectNoViolations(a.page, 'the stranger left');
        await shoot(a.page, `left-${width.name}`);

        // Home, then a text chat between the two.
        // The brand goes home on every width (Change settings is hidden on a phone).
        for (const u of [a, b]) await u.page.getByRole('button', { name: 'Dyad home' }).click();
        await a.page.getByRole('heading', { level: 1 }).waitFor();
        assert.match(await focused(a.page), /^h1:/, 'back on the landing screen, focus is at its heading');
        await startPair(a, b, server.web, 'text');
        await talk(b.page, a.page, 'hello there');
        await expectNoViolations(a.page, 'text chat');
        await shoot(a.page, `text-${width.name}`);

        for (const u of users) assert.deepEqual(u.errors, [], 'no uncaught errors in the page');
      } finally {
        for (const u of users) await u.context.close().catch(() => undefined);
      }
    });
  }
});
