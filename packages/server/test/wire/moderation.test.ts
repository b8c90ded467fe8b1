// Reports leading to a ban, on both stores: distinct reporters count, the
// banned session gets `banned` with `until` and close 4003 on its sockets, its
// partner gets "reported", and new registrations from the banned address get
// 403 until the ban ends or the admin API lifts it.
// Bans and reporter counts go by client address, and every socket here comes
// from 127.0.0.1: the server trusts X-Forwarded-For (TRUST_PROXY), so each
// simulated person speaks from an address of its own.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HttpError } from '@dyad/protocol';
import { Redis } from 'ioredis';
import { arrive, enter, expectMatched, expectRefused, freshAddress, from, join, oneTripUrl, register, type Session } from '../support/dyad.js';
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
async function banOnce(server: RunningServer, address: string): Promise<void> {
  const suspect = await enter(server, {}, from(address));
  const { reporter } = await meet(server, suspect, freshAddress());
  reporter.m.send({ event: 'report' });
  await suspect.m.expectError('banned');
  await suspect.m.expectClose(4003);
  await reporter.m.close(1000);
}

for (const store of STORES) {
  describe(`moderation on the ${store} store`, () => {
    let server: RunningServer;
    let oneReport: RunningServer; // one report bans
    let shortBan: RunningServer; // one report bans, for a short time; no ADMIN_TOKEN
    const prefix = uniquePrefix();

    before(async () => {
      [server, oneReport, shortBan] = await Promise.all([
        startServerOn(store, {
          ...(store === 'redis' ? { REDIS_PREFIX: prefix } : {}),
          TRUST_PROXY: 'true',
          REPORT_BAN_THRESHOLD: String(THRESHOLD),
          REPORT_WINDOW_MS: '60000',
          BAN_DURATION_MS: '60000',
          ADMIN_TOKEN,
        }),
        startServerOn(store, { TRUST_PROXY: 'true', REPORT_BAN_THRESHOLD: '1', BAN_DURATION_MS: '60000', ADMIN_TOKEN }),
        startServerOn(store, { TRUST_PROXY: 'true', REPORT_BAN_THRESHOLD: '1', BAN_DURATION_MS: String(SHORT_BAN_MS) }),
      ]);
    });
    after(async () => {
      await WireClient.closeAll();
      await Promise.all([server?.stop(), oneReport?.stop(), shortBan?.stop()]);
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
        for (const [path, method] of [['/admin/stats', 'GET'], ['/admin/bans', 'GET'], ['/admin/bans/anything', 'DELETE'], ['/admin/nothing', 'GET']] as const) {
          for (const [what, authorization] of wrong) {
            const res = await adminRequest(oneReport, path, { method, authorization: authorization ?? '' });
            assert.equal(res.status, 401, `${method} ${path} with ${what}: ${describeResponse(res)}`);
            assert.equal(res.headers['www-authenticate'], 'Bearer', `${method} ${path} with ${what}: WWW-Authenticate`);
            assert.equal(HttpError.parse(res.json()).status, 'error');
          }
        }
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
              if (/:(ban|rep|addr|rl:[a-z]+):/.test(key)) assert.ok((await redis.pttl(key)) > 0, `${key} is named by an address hash and never expires`);
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
