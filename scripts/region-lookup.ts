// What the region filter costs (issue 17): the memory the IP-to-country
// database takes once read (RSS and heap, before and after), and the cost of
// one look-up per arrival, over random public IPv4 and IPv6 addresses.
// Run after `npm run build`: node --expose-gc --import tsx scripts/region-lookup.ts [REGION_DB]
import { randomBytes } from 'node:crypto';
import { CountryLookup, shippedRegionDb } from '../packages/server/dist/geo/locator.js';

const LOOKUPS = 200_000;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const mib = (n: number): string => `${n < 0 ? '' : '+'}${(n / 1024 / 1024).toFixed(1)} MiB`;

const file = process.argv[2] ?? shippedRegionDb();
gc();
const before = process.memoryUsage();
const db = await CountryLookup.open(file);
gc();
const after = process.memoryUsage();

const v4 = Array.from({ length: LOOKUPS }, () => [...randomBytes(4)].join('.'));
const v6 = Array.from({ length: LOOKUPS / 4 }, () => `2${randomBytes(8).toString('hex').slice(1).match(/.{4}/g)?.join(':')}::1`);
gc();
const beforeLookups = process.memoryUsage().heapUsed;
let known = 0;
for (const a of v4.slice(0, 10_000)) db.place(a); // warm-up
const t0 = process.hrtime.bigint();
for (const a of v4) if (db.place(a)) known++;
const t1 = process.hrtime.bigint();
for (const a of v6) db.place(a);
const t2 = process.hrtime.bigint();

console.log(`database: ${file}`);
gc();
const used = process.memoryUsage();
console.log(`memory once read: RSS ${mib(after.rss - before.rss)}, heap ${mib(after.heapUsed - before.heapUsed)}, buffers ${mib(after.external - before.external)}`);
console.log(`memory the look-ups kept (maxmind's cache of decoded records): heap ${mib(used.heapUsed - beforeLookups)}`);
console.log(`IPv4: ${(Number(t1 - t0) / 1000 / v4.length).toFixed(2)} µs per look-up (${LOOKUPS} random addresses, ${((100 * known) / LOOKUPS).toFixed(0)}% placed)`);
console.log(`IPv6: ${(Number(t2 - t1) / 1000 / v6.length).toFixed(2)} µs per look-up (${v6.length} random addresses)`);
