// The country look-up of the region filter (issue 17) on the shipped database:
// addresses the database places, the same address written as IPv4-mapped
// IPv6, IPv6, and everything that must come out unknown (loopback, private
// ranges, text that is no address, as a forged X-Forwarded-For may carry).
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CountryLookup, RegionDbError, shippedRegionDb } from '../../src/geo/locator.js';
import { regionOf } from '../../src/geo/regions.js';
import { addressesFromDb } from '../support/places.js';

let db: CountryLookup;
before(async () => {
  db = await CountryLookup.open(shippedRegionDb());
});

describe('country look-up', () => {
  it('places addresses as the database does, with the region of the country, in either IPv4 form', async () => {
    const known = (await addressesFromDb()).slice(0, 50);
    assert.ok(known.length > 0, 'the shipped database places addresses');
    for (const { address, country } of known) {
      assert.deepEqual(db.place(address), { country, area: regionOf(country) });
      assert.deepEqual(db.place(`::ffff:${address}`), db.place(address), `${address} as IPv4-mapped IPv6`);
    }
  });

  it('places IPv6 addresses too', () => {
    const placed = ['2001:4860:4860::8888', '2a00:1450:4001::1', '2606:4700:4700::1111', '2400:cb00::1'].map((a) => db.place(a));
    assert.ok(placed.some((p) => p !== undefined && /^[A-Z]{2}$/.test(p.country)), `no IPv6 address placed: ${JSON.stringify(placed)}`);
  });

  it('loopback, private ranges and text that is no address are unknown', () => {
    for (const a of ['127.0.0.1', '::1', '10.1.2.3', '192.168.0.10', '172.16.5.4', 'fd00::1', '::ffff:127.0.0.1', 'unknown', '', '1.2.3', '999.1.1.1', 'x'.repeat(100), '1.2.3.4, 5.6.7.8']) {
      assert.equal(db.place(a), undefined, JSON.stringify(a));
    }
  });

  it('a missing file or one that is no database is a RegionDbError naming the file', async () => {
    await assert.rejects(CountryLookup.open('/nonexistent/countries.mmdb'), (err: unknown) => err instanceof RegionDbError && err.message.includes('/nonexistent/countries.mmdb'));
    await assert.rejects(CountryLookup.open(new URL(import.meta.url).pathname), RegionDbError);
  });
});
