// The moderation console (/admin on the web role) in real Chromium, on both
// stores: sign in with ADMIN_TOKEN, see a report made by two test users with
// their reasons, ban the reported address for a chosen time (the banned
// user's socket closes with 4003 at once and a new start gets 403), lift the
// ban, and the user can start again. The test users speak the wire protocol
// from addresses of their own (X-Forwarded-For with TRUST_PROXY); the console
// is a page. And the chat client itself solves a proof of work (POW_MODE=always)
// before it is paired.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { RedisServer } from '../packages/server/test/redis/support/redis-server.js';
import { WireClient } from '../packages/server/test/support/ws-client.js';
import { clickStart, launchBrowser, newUser, prepare, screenshot, startServer, status, within } from './harness.js';
import type { RunningServer } from './harness.js';

const ADMIN_TOKEN = 'console-e2e-admin-token';
const SUSPECT = '198.51.100.7';
const REPORTERS = ['203.0.113.21', '203.0.113.22'];

let browser: Browser;
let redis: RedisServer | undefined;

before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await WireClient.closeAll();
  await browser?.close();
  await redis?.stop();
});

const via = (address: string) => ({ headers: { 'x-forwarded-for': address } });
const wsUrl = (http: string): string => http.replace(/^http/, 'ws');

/** A one-trip start from `address`; returns the socket after `session` (and `waiting` or `matched`). */
async function start(server: RunningServer, address: string, label: string): Promise<WireClient> {
  const m = await WireClient.open(`${wsUrl(server.matching)}/ws?mode=text`, { channel: 'matching', label, ...via(address) });
  await m.expect('session');
  return m;
}

for (const store of ['memory', 'redis'] as const) {
  describe(`moderation console on the ${store} store`, () => {
    let server: RunningServer;
    before(async () => {
      const storeEnv: Record<string, string> = {};
      if (store === 'redis') {
        redis ??= await RedisServer.start();
        storeEnv.REDIS_URL = redis.url;
        storeEnv.REDIS_PREFIX = `console-${Date.now()}:`;
      }
      server = await startServer({
        ...storeEnv,
        ADMIN_TOKEN,
        TRUST_PROXY: 'true',
        ADDRESS_HASH_KEY: 'console-e2e-key',
        REPORT_MIN_ROOM_MS: '0',
        REPORT_BAN_THRESHOLD: '10',
        REPAIR_COOLDOWN_MS: '0',
      });
    });
    after(() => server?.stop());

    it('sign in, see a report by two users, ban (4003 at once, 403 after), lift, start again', async () => {
      // Two users report the suspect, each from a room of their own with it.
      const suspect = await start(server, SUSPECT, 'suspect');
      await suspect.expect('waiting');
      for (const [i, address] of REPORTERS.entries()) {
        const reporter = await start(server, address, `reporter ${i}`);
        await reporter.expect('matched', { skip: ['waiting'] });
        await suspect.expect('matched');
        reporter.send({ event: 'report', reason: i === 0 ? 'Spam or scam' : 'Harassment or hate' });
        reporter.send({ event: 'stop' });
        await suspect.expect('peer-disconnected');
        suspect.send({ event: 'next' });
        await suspect.expect('waiting');
        await reporter.close(1000);
      }

      const { page, errors } = await newUser(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
      await page.goto(`${server.web}/admin`);
      await page.getByLabel('Admin token').fill('not-the-token-at-all');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
      await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();

      const report = page.getByTestId('report').filter({ hasText: '2 distinct reporters' });
      await report.waitFor();
      const text = await report.innerText();
      assert.match(text, /Spam or scam/);
      assert.match(text, /Harassment or hate/);
      assert.match(text, /no ban/);
      assert.doesNotMatch(text, /198\.51\.100\.7/, 'the address is shown only as its hash');
      const addr = await report.getAttribute('data-addr');
      assert.ok(addr && /^[A-Za-z0-9_-]{22}$/.test(addr), `an address hash: ${addr}`);
      const counts = await page.getByTestId('counts').innerText();
      assert.match(counts, /Online\s*\n?\s*1\b/, `the suspect is online: ${counts}`);
      await screenshot(page, `console-${store}-reports`);

      // Ban from the report, for a day.
      await report.getByLabel('Ban length').selectOption({ label: '1 day' });
      await report.getByLabel('Reason').fill('reported twice');
      await report.getByRole('button', { name: 'Ban' }).click();
      const banned = await suspect.expectError('banned', { timeoutMs: 5_000 });
      assert.ok(banned.until && banned.until * 1000 > Date.now() + 23 * 3_600_000, `banned for about a day: ${banned.until}`);
      await suspect.expectClose(4003);
      const refused = await WireClient.connect(`${wsUrl(server.matching)}/ws?mode=text`, { channel: 'matching', label: 'suspect again', ...via(SUSPECT) });
      assert.equal(refused.kind === 'open' ? 101 : refused.status, 403, 'a banned address cannot start');
      if (refused.kind === 'open') await refused.client.close();

      const ban = page.getByTestId('ban').filter({ hasText: 'reported twice' });
      await ban.waitFor();
      assert.equal(await ban.getAttribute('data-addr'), addr);
      await page.getByTestId('report').filter({ hasText: 'banned after' }).waitFor();
      await screenshot(page, `console-${store}-banned`);

      await ban.getByRole('button', { name: 'Lift ban' }).click();
      await page.getByText('Ban lifted.').waitFor();
      await within(5_000, 'the ban leaves the list', ban.waitFor({ state: 'detached' }));
      const again = await start(server, SUSPECT, 'suspect after the lift');
      await again.expect('waiting');
      await again.close(1000);

      // Ban by hand, by the address hash.
      const form = page.getByRole('form', { name: 'Ban by address hash' });
      await form.getByLabel('Address hash').fill(addr);
      await form.getByRole('button', { name: 'Ban' }).click();
      await page.getByTestId('ban').filter({ hasText: 'banned by the operator' }).waitFor();
      assert.deepEqual(errors, []);
      await page.context().close();
    });
  });
}

describe('proof of work in the chat client', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ POW_MODE: 'always' });
  });
  after(() => server?.stop());

  it('the client solves the challenge and starts; two pages are paired', async () => {
    const users = await Promise.all([newUser(browser), newUser(browser)]);
    for (const u of users) await prepare(u.page, server.web, 'text');
    for (const u of users) await clickStart(u.page);
    for (const u of users) await within(20_000, 'paired after a proof of work', status(u.page).filter({ hasText: /^Connected$/ }).waitFor());
    for (const u of users) {
      assert.deepEqual(u.errors, []);
      await u.context.close();
    }
  });
});
