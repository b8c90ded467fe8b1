// Reports leading to a ban, on both stores: distinct reporters count, the
// banned session gets `banned` with `until` and close 4003 on its sockets, its
// partner gets "reported", and new registrations from the banned address get
// 403 until the ban ends or the admin API lifts it. A ban is hard to aim:
// reports count only after a real conversation (REPORT_MIN_ROOM_MS), from
// reporters in good standing; first bans are short and repeats escalate; a
// banned address opens no socket and gets no TURN credentials, whoever
// registered the session; the admin API resists guessing.
// Bans and reporter counts go by client address, and every socket here comes
// from 127.0.0.1: the server trusts X-Forwarded-For (TRUST_PROXY), so each
// simulated person speaks from an address of its own.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HttpError } from '@dyad/protocol';
import { Redis } from 'ioredis';
import {
  arrive,
  enter,
  expectMatched,
  expectRefused,
  freshAddress,
  freshIpv6Block,
  from,
  join,
  matchingUrl,
  oneTripUrl,
  openMatching,
  register,
  signallingUrl,
  type Session,
} from '../support/dyad.js';
import { AddressHasher } from '../../src/http/client.js';
import { describeResponse, request, type HttpResponse } from '../support/http.js';
import type { RunningServer } from '../support/server.js';
import { STORES, privateRedis, startServerOn, stopPrivateRedis, uniquePrefix } from '../support/stores.js';
import { WireClient, sleep, type Events } from '../support/ws-client.js';

const THRESHOLD = 3;
const QUIET_MS = 400;
const ADMIN_TOKEN = 'moderation-admin-token';
const SHORT_BAN_MS = 1_500;
/** Slack for a ban's end to be seen. */
const LATE_MS = 3_000;
/** The servers' ADDRESS_HASH_KEY, so a test can name an address's hash as the admin API lists it. */
const HASH_KEY = 'moderation-address-key';
const hashOf = (address: string): string => new AddressHasher(HASH_KEY, 64).hash(address);
/** REPORT_MIN_ROOM_MS of the server where reports need a conversation first, kept short. */
const MIN_ROOM_MS = 300;
/** Long enough a conversation for a report to count there. */
const TALK_MS = MIN_ROOM_MS + 100;
/** BAN_DURATION_MS of the server where bans escalate: a first ban's length. */
const FIRST_BAN_MS = 3_000;
/** ADMIN_FAILURES_PER_MIN where the admin API's lock is tested. */
const ADMIN_FAILURES = 3;

after(async () => {
  await WireClient.closeAll();
  await stopPrivateRedis();
});

/** The suspect (already waiting) is paired with a fresh reporter from its own address. */
async function meet(server: RunningServer, suspect: Session, address: string): Promise<{ reporter: Session; matched: Events['matched'] }> {
  const reporter = await arrive(server, {}, from(address));
  const mr = await expectMatched(reporter.m);
  assert.equal(mr.peer, suspect.id, 'the reporter is paired with the suspect');
  return { reporter, matched: await suspect.m.expect('matched') };
}

/** The reporter leaves; the suspect queues again. */
async function part(suspect: Session, reporter: Session): Promise<void> {
  reporter.m.send({ event: 'stop' });
  await reporter.m.expect('idle');
  assert.equal((await suspect.m.expect('peer-disconnected')).reason, 'left');
  suspect.m.send({ event: 'next' });
  await suspect.m.expect('waiting');
}

/** An admin API request with the right bearer token, or with `authorization` as given ('' for none). */
const adminRequest = (server: RunningServer, path: string, opts: { method?: string; authorization?: string } = {}): Promise<HttpResponse> =>
  request(`${server.matching}${path}`, {
    method: opts.method ?? 'GET',
    headers: opts.authorization === undefined ? { authorization: `Bearer ${ADMIN_TOKEN}` } : opts.authorization ? { authorization: opts.authorization } : {},
  });

async function bansOf(server: RunningServer): Promise<{ addr: string; until: number }[]> {
  const res = await adminRequest(server, '/admin/bans');
  assert.equal(res.status, 200, `GET /admin/bans: ${describeResponse(res)}`);
  return (res.json() as { bans: { addr: string; until: number }[] }).bans;
}

async function registerStatus(server: RunningServer, address: string): Promise<number> {
  return (await request(`${server.matching}/register`, { method: 'POST', body: {}, headers: from(address).headers ?? {} })).status;
}

/** A session from `address` reported once by a partner from another address (enough with REPORT_BAN_THRESHOLD=1). */
async function banOnce(server: RunningServer, address: string): Promise<Events['error']> {
  const suspect = await enter(server, {}, from(address));
  const { reporter } = await meet(server, suspect, freshAddress());
  reporter.m.send({ event: 'report' });
  const banned = await suspect.m.expectError('banned');
  await suspect.m.expectClose(4003);
  await reporter.m.close(1000);
  return banned;
}

interface ListedBan {
  addr: string;
  until: number;
  strike: number;
  reports: number;
}
interface ListedReports {
  addr: string;
  reporters: number;
  counting: number;
  last: number;
  reasons: { reason: string }[];
}

async function reportsOf(server: RunningServer): Promise<ListedReports[]> {
  const res = await adminRequest(server, '/admin/reports');
  assert.equal(res.status, 200, `GET /admin/reports: ${describeResponse(res)}`);
  return (res.json() as { reports: ListedReports[] }).reports;
}

for (const store of STORES) {
  describe(`moderation on the ${store} store`, () => {
    let server: RunningServer;
    let oneReport: RunningServer; // one report bans
    let shortBan: RunningServer; // one report bans, for a short time; no ADMIN_TOKEN
    let aimed: RunningServer; // the default report rules
    let talked: RunningServer; // reports count after MIN_ROOM_MS; two ban
    let escalating: RunningServer; // one report bans for FIRST_BAN_MS, then longer; the admin lock at ADMIN_FAILURES
    const prefix = uniquePrefix();

    before(async () => {
      // These test the ban itself: a report counts at once. Their admin API takes many wrong tokens.
      const atOnce = { REPORT_MIN_ROOM_MS: '0', ADMIN_FAILURES_PER_MIN: '1000' };
      [server, oneReport, shortBan] = await Promise.all([
        startServerOn(store, {
          ...(store === 'redis' ? { REDIS_PREFIX: prefix } : {}),
          ...atOnce,
          TRUST_PROXY: 'true',
          REPORT_BAN_THRESHOLD: String(THRESHOLD),
          REPORT_WINDOW_MS: '60000',
          BAN_DURATION_MS: '60000',
          ADMIN_TOKEN,
          ADDRESS_HASH_KEY: HASH_KEY,
        }),
        startServerOn(store, { ...atOnce, TRUST_PROXY: 'true', REPORT_BAN_THRESHOLD: '1', BAN_DURATION_MS: '60000', ADMIN_TOKEN }),
        startServerOn(store, { ...atOnce, TRUST_PROXY: 'true', REPORT_BAN_THRESHOLD: '1', BAN_DURATION_MS: String(SHORT_BAN_MS) }),
      ]);
      // In a second batch: six servers starting at once on a busy machine may not all be up within a start's time.
      [aimed, talked, escalating] = await Promise.all([
        startServerOn(store, { TRUST_PROXY: 'true', ADMIN_TOKEN, ADDRESS_HASH_KEY: HASH_KEY }),
        startServerOn(store, { TRUST_PROXY: 'true', REPORT_MIN_ROOM_MS: String(MIN_ROOM_MS), REPORT_BAN_THRESHOLD: '2', ADMIN_TOKEN, ADDRESS_HASH_KEY: HASH_KEY }),
        startServerOn(store, {
          TRUST_PROXY: 'true',
          REPORT_MIN_ROOM_MS: '0',
          REPORT_BAN_THRESHOLD: '1',
          BAN_DURATION_MS: String(FIRST_BAN_MS),
          ADMIN_TOKEN,
          ADMIN_FAILURES_PER_MIN: String(ADMIN_FAILURES),
          ADDRESS_HASH_KEY: HASH_KEY,
        }),
      ]);
    });
    after(async () => {
      await WireClient.closeAll();
      await Promise.all([server?.stop(), oneReport?.stop(), shortBan?.stop(), aimed?.stop(), talked?.stop(), escalating?.stop()]);
    });

    describe('reports and bans', () => {
      it(`${THRESHOLD} distinct reporters ban a session: banned + until, close 4003, partner "reported", register 403 for its address only`, async () => {
        const suspectVia = from('198.51.100.66');
        const suspect = await enter(server, {}, suspectVia);

        // One reporter reporting many times counts once.
        const { reporter: r0 } = await meet(server, suspect, '203.0.113.10');
        for (let i = 0; i < THRESHOLD + 1; i++) r0.m.send({ event: 'report', reason: `again ${i}` });
        await suspect.m.expectSilence(QUIET_MS, { why: 'repeated reports by one reporter count once' });
        await part(suspect, r0);

        // A second session from the same address is the same person.
        const { reporter: r0b } = await meet(server, suspect, '203.0.113.10');
        r0b.m.send({ event: 'report', reason: 'same person, new session' });
        await suspect.m.expectSilence(QUIET_MS, { why: 'reports count per reporting address' });
        await part(suspect, r0b);

        const { reporter: r1 } = await meet(server, suspect, '203.0.113.11');
        r1.m.send({ event: 'report', reason: 'second' });
        await suspect.m.expectSilence(QUIET_MS, { why: `${THRESHOLD - 1} distinct reporters are not enough` });
        await part(suspect, r1);

        const { reporter: r2, matched } = await meet(server, suspect, '203.0.113.12');
        await join(server, suspect, matched.room_code, { role: matched.initiator ? 'initiator' : 'responder', peer: r2.id, peerJoined: false }, suspectVia);
        const before = Date.now() / 1000;
        r2.m.send({ event: 'report', reason: 'third' });

        const banned = await suspect.m.expectError('banned', { what: 'error "banned" for the banned session' });
        assert.ok(typeof banned.until === 'number' && banned.until > before, `until is a Unix time in the future, got ${banned.until}`);
        await suspect.m.expectClose(4003);
        const sig = await suspect.s!.expectClose(4003, undefined, 'close 4003 on the signalling socket of the banned session');
        for (const m of sig.before) assert.ok(m.event === 'error' && m.code === 'banned', `before 4003 only "banned": ${JSON.stringify(m)}`);
        assert.equal((await r2.m.expect('peer-disconnected')).reason, 'reported', 'the partner of the banned session');

        const res = await request(`${server.matching}/register`, { method: 'POST', body: {}, headers: suspectVia.headers ?? {} });
        assert.equal(res.status, 403, `POST /register from a banned address: HTTP ${res.status} ${res.text}`);
        const body = HttpError.parse(res.json());
        assert.equal(body.status, 'banned');
        assert.ok(typeof body.until === 'number' && body.until > before, `until in the 403 body: ${res.text}`);

        const oneTrip = await expectRefused(oneTripUrl(server), { channel: 'matching', label: 'one-trip from a banned address', ...suspectVia }, 403);
        assert.equal(oneTrip.status, 'banned', 'a one-trip start from a banned address is refused like POST /register');

        // Everyone else carries on.
        await register(server, {}, from('203.0.113.12'));
      });

      it(`a ban ends by itself after BAN_DURATION_MS (${SHORT_BAN_MS} ms): the address registers again`, async () => {
        const address = freshAddress();
        await banOnce(shortBan, address);
        assert.equal(await registerStatus(shortBan, address), 403, 'banned right after the report');
        const deadline = Date.now() + SHORT_BAN_MS + LATE_MS;
        while ((await registerStatus(shortBan, address)) === 403) {
          assert.ok(Date.now() < deadline, `still banned ${SHORT_BAN_MS + LATE_MS} ms after a ${SHORT_BAN_MS} ms ban`);
          await sleep(100);
        }
        assert.equal(await registerStatus(shortBan, address), 200);
      });
    });

    describe('admin API', () => {
      it('GET /admin/bans lists a ban by address hash (never the address) with until; DELETE /admin/bans/{hash} lifts it, the address registers again; lifting again is 404', async () => {
        const address = freshAddress();
        const before = Date.now() / 1000;
        await banOnce(oneReport, address);
        const bans = await bansOf(oneReport);
        assert.equal(bans.length, 1, `one ban in force: ${JSON.stringify(bans)}`);
        const [ban] = bans as [{ addr: string; until: number }];
        assert.ok(!ban.addr.includes(address) && !/\d+\.\d+\.\d+\.\d+/.test(ban.addr), `the ban names a hash, not the address: ${ban.addr}`);
        assert.ok(ban.until > before + 50 && ban.until < before + 70, `until is about now + BAN_DURATION_MS in Unix seconds: ${ban.until}`);

        const denied = await adminRequest(oneReport, `/admin/bans/${encodeURIComponent(ban.addr)}`, { method: 'DELETE', authorization: 'Bearer not-the-admin-token' });
        assert.equal(denied.status, 401, describeResponse(denied));
        assert.equal(await registerStatus(oneReport, address), 403, 'an unauthorized DELETE lifts nothing');

        const lifted = await adminRequest(oneReport, `/admin/bans/${encodeURIComponent(ban.addr)}`, { method: 'DELETE' });
        assert.equal(lifted.status, 200, describeResponse(lifted));
        assert.deepEqual(await bansOf(oneReport), []);
        assert.equal(await registerStatus(oneReport, address), 200, 'the address registers again');
        const again = await adminRequest(oneReport, `/admin/bans/${encodeURIComponent(ban.addr)}`, { method: 'DELETE' });
        assert.equal(again.status, 404, describeResponse(again));
        assert.equal(HttpError.parse(again.json()).status, 'error');
      });

      it('an admin request without exactly the bearer ADMIN_TOKEN gets 401 with WWW-Authenticate, on every admin path', async () => {
        const wrong: [string, string | null][] = [
          ['no Authorization header', null],
          ['an empty bearer', 'Bearer '],
          ['another token of the same length', `Bearer ${'x'.repeat(ADMIN_TOKEN.length)}`],
          ['the token in another case', `Bearer ${ADMIN_TOKEN.toUpperCase()}`],
          ['a prefix of the token', `Bearer ${ADMIN_TOKEN.slice(0, -1)}`],
          ['the token and more', `Bearer ${ADMIN_TOKEN}x`],
          ['the token without the scheme', ADMIN_TOKEN],
          ['another scheme', `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`],
        ];
        for (const [path, method] of [['/admin/stats', 'GET'], ['/admin/bans', 'GET'], ['/admin/reports', 'GET'], ['/admin/bans/anything', 'DELETE'], ['/admin/nothing', 'GET']] as const) {
          for (const [what, authorization] of wrong) {
            const res = await adminRequest(oneReport, path, { method, authorization: authorization ?? '' });
            assert.equal(res.status, 401, `${method} ${path} with ${what}: ${describeResponse(res)}`);
            assert.equal(res.headers['www-authenticate'], 'Bearer', `${method} ${path} with ${what}: WWW-Authenticate`);
            assert.equal(HttpError.parse(res.json()).status, 'error');
          }
        }
      });

      it(`beyond ADMIN_FAILURES_PER_MIN (${ADMIN_FAILURES}) failed attempts an address gets 429 with retry_after, even with the right token; other addresses are not locked out`, async () => {
        const guesser = from(freshAddress());
        const ask = (via: typeof guesser, token: string) =>
          request(`${escalating.matching}/admin/bans`, { headers: { ...via.headers, authorization: `Bearer ${token}` } });
        for (let i = 0; i < ADMIN_FAILURES; i++) {
          const res = await ask(guesser, `wrong-guess-${i}-${'x'.repeat(16)}`);
          assert.equal(res.status, 401, `failed attempt ${i + 1}: ${describeResponse(res)}`);
        }
        for (const [what, token] of [['another wrong token', 'wrong-guess-again-xxxxxxxxxxxx'], ['the right token', ADMIN_TOKEN]] as const) {
          const res = await ask(guesser, token);
          assert.equal(res.status, 429, `${what} after ${ADMIN_FAILURES} failures: ${describeResponse(res)}`);
          const body = HttpError.parse(res.json());
          assert.equal(body.status, 'error');
          assert.ok(typeof body.retry_after === 'number' && body.retry_after >= 1 && body.retry_after <= 60, `retry_after in whole seconds: ${res.text}`);
        }
        const other = await ask(from(freshAddress()), ADMIN_TOKEN);
        assert.equal(other.status, 200, `the right token from another address: ${describeResponse(other)}`);
      });

      it('GET /admin/reports lists recent reports per reported address hash (never the address), with how many count', async () => {
        const address = freshAddress();
        const suspect = await enter(server, {}, from(address));
        const { reporter } = await meet(server, suspect, freshAddress());
        // A lone surrogate (JSON's \ud800 escape) comes out as U+FFFD on both stores, as in chat.
        reporter.m.send({ event: 'report', reason: 'spam \ud800' });
        await reporter.m.close(1000);
        // The close is answered at once; the report's store call may still be on its way (Redis).
        let res = await adminRequest(server, '/admin/reports');
        const listedIn = (r: typeof res) => (r.json() as { reports: ListedReports[] }).reports.find((x) => x.addr === hashOf(address));
        for (let i = 0; i < 20 && res.status === 200 && !listedIn(res); i++) {
          await sleep(50);
          res = await adminRequest(server, '/admin/reports');
        }
        assert.equal(res.status, 200, describeResponse(res));
        assert.doesNotMatch(res.text, /\d+\.\d+\.\d+\.\d+/, 'no address in the listing');
        const listed = listedIn(res);
        assert.ok(listed, `the reported address's hash is listed: ${res.text}`);
        assert.deepEqual([listed.reporters, listed.counting], [1, 1]);
        assert.deepEqual(listed.reasons.map((r) => r.reason), ['spam \ufffd']);
        assert.ok(Math.abs(listed.last - Date.now() / 1000) < 60, `last is a Unix time: ${listed.last}`);
        const denied = await adminRequest(server, '/admin/reports', { authorization: 'Bearer not-the-admin-token' });
        assert.equal(denied.status, 401, describeResponse(denied));
      });

      it('GET /admin/stats counts waiting sessions per mode, rooms and sessions, and the sockets of this process', async () => {
        await enter(oneReport, { mode: 'text' }, from(freshAddress()));
        const res = await adminRequest(oneReport, '/admin/stats');
        assert.equal(res.status, 200, describeResponse(res));
        const stats = res.json() as { waiting: { video: number; text: number }; rooms: number; sessions: number; process: { sockets: { matching: number; signalling: number } } };
        assert.ok(stats.waiting.text >= 1 && Number.isInteger(stats.waiting.video), `waiting per mode: ${res.text}`);
        assert.ok(Number.isInteger(stats.rooms) && stats.sessions >= 1, `rooms and sessions: ${res.text}`);
        assert.ok(stats.process.sockets.matching >= 1 && Number.isInteger(stats.process.sockets.signalling), `sockets: ${res.text}`);
      });

      it('without ADMIN_TOKEN there is no admin API: 404 even with a bearer token', async () => {
        for (const path of ['/admin/stats', '/admin/bans']) {
          const res = await adminRequest(shortBan, path);
          assert.equal(res.status, 404, `GET ${path} on a server without ADMIN_TOKEN: ${describeResponse(res)}`);
        }
      });
    });

    // After the admin API tests, which count the bans on oneReport.
    describe('bans that are hard to aim', () => {
      it('three addresses that each meet a person and report at once ban nobody (REPORT_MIN_ROOM_MS, 10 s by default): the person and another one at its address carry on', async () => {
        const address = freshAddress();
        const victim = await enter(aimed, {}, from(address));
        // Someone else behind the same address (a shared NAT), in a room of their own.
        const bystander = await enter(aimed, { mode: 'text' }, from(address));
        const friend = await arrive(aimed, { mode: 'text' }, from(freshAddress()));
        await expectMatched(friend.m);
        await bystander.m.expect('matched');
        for (let i = 0; i < 3; i++) {
          const { reporter } = await meet(aimed, victim, freshAddress());
          reporter.m.send({ event: 'report', reason: 'aimed' });
          await part(victim, reporter);
        }
        await victim.m.expectSilence(QUIET_MS, { why: 'three reports right after matching count for nothing' });
        await bystander.m.expectSilence(QUIET_MS, { why: 'nobody at the address is banned' });
        assert.equal(await registerStatus(aimed, address), 200, 'the address registers');
        const listed = (await reportsOf(aimed)).find((r) => r.addr === hashOf(address));
        assert.ok(listed, 'the operator sees the reports under the address hash');
        assert.deepEqual([listed.reporters, listed.counting], [3, 0], 'three reporters, none counting');
        bystander.m.send({ event: 'chat', message: 'still here' });
        await friend.m.expect('chat');
        await Promise.all([victim.m.close(1000), bystander.m.close(1000), friend.m.close(1000)]);
      });

      it('reports after rooms that lasted REPORT_MIN_ROOM_MS, from distinct reporters in good standing, still ban; GET /admin/bans shows the strike and the reports', async () => {
        const address = freshAddress();
        const suspect = await enter(talked, {}, from(address));
        const { reporter: r1 } = await meet(talked, suspect, freshAddress());
        await sleep(TALK_MS);
        r1.m.send({ event: 'report', reason: 'first' });
        await suspect.m.expectSilence(QUIET_MS, { why: 'one counting report of two' });
        await part(suspect, r1);
        const { reporter: r2 } = await meet(talked, suspect, freshAddress());
        await sleep(TALK_MS);
        r2.m.send({ event: 'report', reason: 'second' });
        await suspect.m.expectError('banned', { what: 'error "banned" once two reporters who talked with it reported it' });
        await suspect.m.expectClose(4003);
        assert.equal((await r2.m.expect('peer-disconnected')).reason, 'reported');
        const ban = ((await bansOf(talked)) as ListedBan[]).find((b) => b.addr === hashOf(address));
        assert.ok(ban, 'listed');
        assert.deepEqual([ban.strike, ban.reports], [1, 2], 'a first ban, made by two reports');
      });

      it('two addresses of one IPv6 /64 are one reporter: their two reports do not ban; a reporter from another /64 does', async () => {
        const address = freshAddress();
        const suspect = await enter(talked, {}, from(address));
        const block = freshIpv6Block();
        for (const reporterAddress of [`${block}:0::1`, `${block}:0::2`]) {
          const { reporter } = await meet(talked, suspect, reporterAddress);
          await sleep(TALK_MS);
          reporter.m.send({ event: 'report', reason: `from ${reporterAddress}` });
          await part(suspect, reporter);
        }
        await suspect.m.expectSilence(QUIET_MS, { why: 'two addresses of one /64 count as one reporter of the two needed' });
        const listed = (await reportsOf(talked)).find((r) => r.addr === hashOf(address));
        assert.deepEqual([listed?.reporters, listed?.counting], [1, 1], 'one reporter, counting');
        const { reporter: other } = await meet(talked, suspect, `${block}:1::1`);
        await sleep(TALK_MS);
        other.m.send({ event: 'report', reason: 'from the next /64' });
        await suspect.m.expectError('banned', { what: 'error "banned" once a second network reported it' });
      });

      it('a ban of an IPv6 client covers its /64: another address of it is refused, the next /64 is not', async () => {
        const block = freshIpv6Block();
        await banOnce(oneReport, `${block}:0::1`);
        assert.equal(await registerStatus(oneReport, `${block}:0:ffff::2`), 403, 'another address of the banned /64');
        await expectRefused(oneTripUrl(oneReport), { channel: 'matching', label: 'one-trip from another address of the banned /64', ...from(`${block}:0::3`) }, 403);
        assert.equal(await registerStatus(oneReport, `${block}:1::1`), 200, 'the next /64');
      });

      it('a reporter that was itself reported counts for nothing', async () => {
        const taintedAddress = freshAddress();
        const tainted = await enter(talked, {}, from(taintedAddress));
        const { reporter: accuser } = await meet(talked, tainted, freshAddress());
        await sleep(TALK_MS);
        accuser.m.send({ event: 'report', reason: 'the reporter-to-be is reported first' });
        await part(tainted, accuser);
        tainted.m.send({ event: 'stop' });
        await tainted.m.expect('idle');

        const victimAddress = freshAddress();
        const victim = await enter(talked, {}, from(victimAddress));
        tainted.m.send({ event: 'next' });
        assert.equal((await expectMatched(tainted.m)).peer, victim.id);
        await victim.m.expect('matched');
        await sleep(TALK_MS);
        tainted.m.send({ event: 'report', reason: 'from a reported address' });
        await part(victim, tainted);
        const { reporter: clean } = await meet(talked, victim, freshAddress());
        await sleep(TALK_MS);
        clean.m.send({ event: 'report', reason: 'a good one' });
        await victim.m.expectSilence(QUIET_MS, { why: 'the reported reporter did not count: one counting report of two' });
        const listed = (await reportsOf(talked)).find((r) => r.addr === hashOf(victimAddress));
        assert.deepEqual([listed?.reporters, listed?.counting], [2, 1], 'two reporters, one counting');
      });

      it(`a second ban lasts longer than the first (BAN_DURATION_MS ${FIRST_BAN_MS}, doubling per strike)`, async () => {
        const address = freshAddress();
        const before1 = Date.now() / 1000;
        const first = await banOnce(escalating, address);
        const ban1 = ((await bansOf(escalating)) as ListedBan[]).find((b) => b.addr === hashOf(address));
        assert.equal(ban1?.strike, 1);
        const deadline = Date.now() + FIRST_BAN_MS + LATE_MS;
        while ((await registerStatus(escalating, address)) === 403) {
          assert.ok(Date.now() < deadline, `still banned ${FIRST_BAN_MS + LATE_MS} ms after a ${FIRST_BAN_MS} ms ban`);
          await sleep(100);
        }
        const before2 = Date.now() / 1000;
        const second = await banOnce(escalating, address);
        const ban2 = ((await bansOf(escalating)) as ListedBan[]).find((b) => b.addr === hashOf(address));
        assert.equal(ban2?.strike, 2, 'the second strike');
        const [length1, length2] = [first.until! - before1, second.until! - before2];
        assert.ok(length2 >= (2 * FIRST_BAN_MS) / 1000, `the second ban lasts twice BAN_DURATION_MS: until ${second.until}, ${length2} s after the report`);
        assert.ok(length2 > length1, `the second ban (${length2} s) outlasts the first (${length1} s)`);
      });

      it('a banned address opens neither socket of a session registered elsewhere and gets no TURN credentials: 403 banned with until', async () => {
        const bannedAddress = freshAddress();
        await banOnce(oneReport, bannedAddress);
        const banned = from(bannedAddress);
        const elsewhere = from(freshAddress());
        const s = await register(oneReport, {}, elsewhere);
        for (const [channel, url] of [['matching', matchingUrl(oneReport, s.id, s.token)], ['signalling', signallingUrl(oneReport, s.id, s.token)]] as const) {
          const body = await expectRefused(url, { channel, label: `${channel} from the banned address`, ...banned }, 403);
          assert.equal(body.status, 'banned', `${channel}: status`);
          assert.ok(typeof body.until === 'number' && body.until > Date.now() / 1000, `${channel}: until in the future: ${JSON.stringify(body)}`);
        }
        // Where it was registered the session works, and its matching socket is open: the address alone is refused.
        const m = await openMatching(oneReport, s.id, s.token, s.id, elsewhere);
        await m.expect('waiting');
        const ice = (via: typeof banned) => request(`${oneReport.matching}/ice-servers`, { headers: { ...via.headers, authorization: `Bearer ${s.token}` } });
        const refused = await ice(banned);
        assert.equal(refused.status, 403, `GET /ice-servers from the banned address: ${describeResponse(refused)}`);
        const body = HttpError.parse(refused.json());
        assert.equal(body.status, 'banned');
        assert.ok(typeof body.until === 'number');
        assert.equal((await ice(elsewhere)).status, 200, 'from the address that registered it');
        await m.close(1000);
      });
    });

    if (store === 'redis') {
      describe('what Redis keeps', () => {
        it('client addresses only as keyed hashes: no address in any key or value, and every key named by an address hash expires', async () => {
          const redis = new Redis((await privateRedis()).url, { lazyConnect: true });
          await redis.connect();
          try {
            const keys = await redis.keys(`${prefix}*`);
            assert.ok(keys.some((k) => k.includes(':ban:')), `the moderation test left a ban under ${prefix}: ${keys.join(' ')}`);
            const addresses = /\b(127\.0\.0\.1|198\.51\.100\.\d+|203\.0\.113\.\d+)\b/;
            for (const key of keys) {
              assert.doesNotMatch(key, addresses, `a key names an address: ${key}`);
              const content = JSON.stringify(await dump(redis, key));
              assert.doesNotMatch(content, addresses, `${key} holds an address: ${content.slice(0, 300)}`);
              if (/:(ban|rep|strike|addr|rlog|rlb|abx?|rl:[a-z-]+):/.test(key)) assert.ok((await redis.pttl(key)) > 0, `${key} is named by an address hash and never expires`);
            }
          } finally {
            redis.disconnect();
          }
        });
      });
    }
  });
}

/** Whatever a key holds, as plain data. */
async function dump(redis: Redis, key: string): Promise<unknown> {
  switch (await redis.type(key)) {
    case 'string':
      return redis.get(key);
    case 'hash':
      return redis.hgetall(key);
    case 'set':
      return redis.smembers(key);
    case 'zset':
      return redis.zrange(key, '0', '-1', 'WITHSCORES');
    case 'list':
      return redis.lrange(key, 0, -1);
    case 'stream':
      return redis.xrange(key, '-', '+');
    default:
      return null;
  }
}
