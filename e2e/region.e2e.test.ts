// The region filter (issue 17) in real Chromium, behind a proxy (TRUST_PROXY):
// two pages whose addresses are in one country choose "Near me" and are
// paired with each other, not with a stranger from another country who waits
// first; the page of the one who ticked "show my country's flag" shows it to
// the other, and the other shows nothing. The addresses are read from the
// shipped IP-to-country database; each page speaks from its own through
// X-Forwarded-For (its requests and its WebSockets alike).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { addressesFromDb } from '../packages/server/test/support/places.js';
import { WireClient } from '../packages/server/test/support/ws-client.js';
import { clickStart, launchBrowser, newUser, prepare, startServer, status, within } from './harness.js';
import type { RunningServer } from './harness.js';

let browser: Browser;

before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await WireClient.closeAll();
  await browser?.close();
});

const wsUrl = (http: string): string => http.replace(/^http/, 'ws');

/** A one-trip text start from `address`; returns the socket after `session`. */
async function start(server: RunningServer, address: string, label: string): Promise<WireClient> {
  const m = await WireClient.open(`${wsUrl(server.matching)}/ws?mode=text`, { channel: 'matching', label, headers: { 'x-forwarded-for': address } });
  await m.expect('session');
  return m;
}

describe('the region filter in the chat client, behind a proxy', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ TRUST_PROXY: 'true' });
  });
  after(() => server?.stop());

  it('"Near me" pairs two pages of one country and not a stranger from another; the flag shows only for the one who opted in', async () => {
    const db = await addressesFromDb();
    const here = db.find((a) => db.some((b) => b.country === a.country && b.address !== a.address));
    assert.ok(here, 'two addresses of one country in the shipped database');
    const neighbour = db.find((b) => b.country === here.country && b.address !== here.address)!;
    const far = db.find((b) => b.country !== here.country)!;
    // Someone from another country waits first, open to anyone.
    const stranger = await start(server, far.address, 'from another country');
    await stranger.expect('waiting');
    const [shown, plain] = await Promise.all([
      newUser(browser, { extraHTTPHeaders: { 'X-Forwarded-For': here.address } }),
      newUser(browser, { extraHTTPHeaders: { 'X-Forwarded-For': neighbour.address } }),
    ]);
    for (const u of [shown, plain]) {
      await prepare(u.page, server.web, 'text');
      await u.page.getByLabel('Meet people from').selectOption({ label: 'Near me (my country)' });
    }
    await shown.page.getByRole('checkbox', { name: /Show my country/ }).check();
    for (const u of [shown, plain]) await clickStart(u.page);
    for (const u of [shown, plain]) await within(20_000, 'paired with the page of the same country', status(u.page).filter({ hasText: /^Connected$/ }).waitFor());
    // The one who opted in shows its flag and country to the other; the other shows nothing.
    const name = new Intl.DisplayNames(['en'], { type: 'region' }).of(here.country) ?? here.country;
    await within(5_000, 'the flag of the one who opted in', plain.page.getByTestId('peer-country').filter({ hasText: name }).waitFor());
    assert.equal(await shown.page.getByTestId('peer-country').count(), 0, 'one who did not opt in shows nothing');
    await stranger.expectSilence(300, { why: 'both pages wanted their own country' });
    for (const u of [shown, plain]) {
      assert.deepEqual(u.errors, []);
      await u.context.close();
    }
    await stranger.close(1000);
  });
});
