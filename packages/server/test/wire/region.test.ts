// The region filter (issue 17), on both stores: the country of a client
// address (through TRUST_PROXY) from the shipped IP-to-country database,
// unknown addresses, `near` and a region narrowing pairing mutually with
// interests and lang until INTEREST_TIMEOUT_MS, the shared region on
// `matched`, and `country` only for a partner who opted in. The addresses are
// read from the shipped database itself, so the test follows its updates.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { arrive, enter, expectMatched, from, oneTripUrl, uniqueName, type Session } from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import { placesFromDb, type Located } from '../support/places.js';
import { regionOf } from '../../src/geo/regions.js';
import type { RunningServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import { WireClient } from '../support/ws-client.js';

/** The narrowing of the fallback test's server; the other server's never runs out within a test. */
const INTEREST_TIMEOUT_MS = 1_000;
/** Long enough to be sure nothing is on its way on loopback. */
const QUIET_MS = 300;

let X1: Located;
let X2: Located;
let Y: Located;
let Z: Located;

before(async () => {
  ({ X1, X2, Y, Z } = await placesFromDb(regionOf));
});

after(async () => {
  await WireClient.closeAll();
  await stopPrivateRedis();
});
afterEach(() => WireClient.closeAll());

const at = (l: Located | string) => from(typeof l === 'string' ? l : l.address);

/** No `matched` within QUIET_MS (the session keeps waiting). */
async function keepsWaiting(s: Session, why: string): Promise<void> {
  await s.m.expect('waiting', { what: `"waiting" for ${why}` });
  await s.m.expectSilence(QUIET_MS, { why });
}

for (const store of STORES) {
  describe(`region filter on the ${store} store`, () => {
    let server: RunningServer;
    let quick: RunningServer;
    before(async () => {
      [server, quick] = await Promise.all([
        startServerOn(store, { TRUST_PROXY: 'true', INTEREST_TIMEOUT_MS: '60000' }),
        startServerOn(store, { TRUST_PROXY: 'true', INTEREST_TIMEOUT_MS: String(INTEREST_TIMEOUT_MS) }),
      ]);
    });
    after(() => Promise.all([server?.stop(), quick?.stop()]));

    it('"near" pairs within the country of the address, also with someone who chose anywhere; matched says the shared region, no country', async () => {
      const a = await enter(server, { region: 'near' }, at(X1));
      const z = await arrive(server, {}, at(Z));
      await keepsWaiting(z, `${Z.country} is not near ${X1.country}`);
      await z.m.close();
      const b = await arrive(server, { region: 'anywhere' }, at(X2));
      const mb = await expectMatched(b.m);
      const ma = await a.m.expect('matched', { what: `"matched" with someone from ${X2.country}` });
      assert.equal(ma.peer, b.id);
      for (const m of [ma, mb]) {
        assert.equal(m.region, X1.region, 'matched carries the region both are in');
        assert.equal(m.country, undefined, 'nobody opted in to show a country');
      }
    });

    it('after INTEREST_TIMEOUT_MS, "near" takes anyone of the mode; different regions share none', async () => {
      const a = await enter(quick, { region: 'near' }, at(X1));
      const z = await arrive(quick, {}, at(Z));
      await z.m.expect('waiting', { what: '"waiting": the one waiting wants its own country' });
      const mz = await z.m.expect('matched', { what: '"matched" once the narrowing ran out', timeoutMs: INTEREST_TIMEOUT_MS + 2_000 });
      const ma = await a.m.expect('matched', { what: '"matched" once the narrowing ran out' });
      assert.equal(ma.peer, z.id);
      for (const m of [ma, mz]) {
        assert.equal(m.region, undefined, `${X1.country} and ${Z.country} are in different regions`);
        assert.equal(m.country, undefined);
      }
    });

    it('a region takes any country of it; an unknown address (loopback, private) is in no region and "near" from it means anywhere', async () => {
      // A region from an address the database does not place.
      const a = await enter(server, { region: 'europe' }, at('10.1.2.3'));
      const z = await arrive(server, {}, at(Z));
      await keepsWaiting(z, `${Z.country} is not in Europe`);
      await z.m.close();
      const y = await arrive(server, {}, at(Y));
      const my = await expectMatched(y.m);
      const ma = await a.m.expect('matched', { what: `"matched" with someone from ${Y.country}, in Europe` });
      assert.equal(ma.peer, y.id);
      assert.equal(ma.region, undefined, 'an unknown address shares no region');
      assert.equal(my.region, undefined);
      // "near" from loopback (no X-Forwarded-For) narrows nothing: paired at once.
      const b = await enter(server, { region: 'near' });
      const c = await arrive(server, {}, at(Z));
      const mc = await expectMatched(c.m);
      assert.equal(mc.peer, b.id, '"near" from an unknown address is anywhere');
    });

    it('region, lang and interests narrow together, each mutually', async () => {
      const a = await enter(server, { region: 'near', lang: 'en', interests: ['chess'] }, at(X1));
      // Same country, other lang: a refuses it, and it refuses a.
      const wrongLang = await arrive(server, { lang: 'fr', interests: ['chess'] }, at(X2));
      await keepsWaiting(wrongLang, 'lang fr next to lang en');
      // Same lang and interest, another country that wants its own: neither accepts the other.
      const far = await arrive(server, { region: 'near', lang: 'en', interests: ['chess'] }, at(Z));
      await keepsWaiting(far, `${Z.country} wants ${Z.country}, ${X1.country} wants ${X1.country}`);
      await a.m.expectSilence(QUIET_MS, { why: 'nobody fits all three filters yet' });
      const b = await arrive(server, { lang: 'en', interests: ['chess', 'go'] }, at(X2));
      const mb = await expectMatched(b.m);
      const ma = await a.m.expect('matched', { what: '"matched" with the one that fits region, lang and interests' });
      assert.equal(ma.peer, b.id);
      assert.equal(mb.peer, a.id);
      assert.deepEqual(ma.common_interests, ['chess']);
    });

    it('country goes only to the partner of one who opted in: never in a frame to anyone else', async () => {
      const shown = await enter(server, { show_country: true }, at(X1));
      const raw: string[] = [];
      shown.m.ws.on('message', (d: Buffer) => raw.push(d.toString()));
      const other = await arrive(server, { show_country: false }, at(Y));
      const mo = await expectMatched(other.m);
      const ms = await shown.m.expect('matched', { what: '"matched"' });
      assert.equal(mo.country, X1.country, 'the partner of one who opted in is told its country');
      assert.equal(mo.region, 'europe');
      assert.equal(ms.country, undefined, 'one who did not opt in shows nothing');
      assert.equal(ms.region, 'europe');
      assert.ok(!raw.some((t) => t.includes('"country"') || t.includes(`"${Y.country}"`)), `a frame told the country: ${raw.join(' | ')}`);
    });

    it('/config.json tells the web client that the region choice is offered', async () => {
      assert.equal(((await request(`${server.web}/config.json`)).json() as { region_filter: unknown }).region_filter, true);
    });

    it('a bad region or show_country is refused with 400 (POST /register) and on the one-trip start', async () => {
      for (const body of [{ region: 'mars' }, { region: 'NEAR' }, { region: 7 }, { show_country: 'yes' }, { show_country: 1 }]) {
        const res = await request(`${server.matching}/register`, { method: 'POST', body: { name: uniqueName(), ...body } });
        assert.equal(res.status, 400, `${JSON.stringify(body)}: ${describeResponse(res)}`);
      }
      for (const query of [{ region: 'atlantis' }, { show_country: 'maybe' }] as Record<string, string>[]) {
        const attempt = await WireClient.connect(oneTripUrl(server, query), { channel: 'matching', label: 'bad one-trip' });
        assert.equal(attempt.kind, 'refused', `${JSON.stringify(query)} was not refused`);
        if (attempt.kind === 'refused') assert.equal(attempt.status, 400);
      }
      const ok = await WireClient.open(oneTripUrl(server, { region: 'south-america', show_country: 'true' }), { channel: 'matching', label: 'one-trip region' });
      await ok.expect('session', { what: '"session": region and show_country are accepted on the one-trip start' });
    });
  });
}

describe('REGION_FILTER=off', () => {
  it('looks nothing up: "near" and a region pair with anyone at once, and matched has no region or country', async () => {
    const server = await startServerOn('memory', { TRUST_PROXY: 'true', INTEREST_TIMEOUT_MS: '60000', REGION_FILTER: 'off' });
    try {
      const a = await enter(server, { region: 'near', show_country: true }, at(X1));
      const b = await arrive(server, { region: 'oceania' }, at(X2));
      const mb = await expectMatched(b.m);
      const ma = await a.m.expect('matched', { what: '"matched" at once' });
      for (const m of [ma, mb]) assert.equal(m.region ?? m.country, undefined);
      // The web client is told not to offer the choice.
      assert.equal(((await request(`${server.web}/config.json`)).json() as { region_filter: unknown }).region_filter, false);
    } finally {
      await server.stop();
    }
  });
});
