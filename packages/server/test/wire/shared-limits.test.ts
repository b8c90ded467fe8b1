// Two processes on one Redis, as one deployment runs them (the same
// REDIS_PREFIX and ADDRESS_HASH_KEY): the per-address limits and the bans are
// the service's, not a process's. A client that spreads its requests over
// both processes meets each limit at the same total as on one.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { HttpError } from '@dyad/protocol';
import {
  arrive,
  enter,
  expectMatched,
  expectRefused,
  freshAddress,
  from,
  matchingUrl,
  oneTripUrl,
  openMatching,
  register,
  signallingUrl,
  type Via,
} from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { stopPrivateRedis, storeEnv } from '../support/stores.js';
import { WireClient } from '../support/ws-client.js';

const REGISTER_LIMIT = 6;
const SOCKET_LIMIT = 4;
const NEXT_LIMIT = 4;
const ADMIN_FAILURES = 4;
const ADMIN_TOKEN = 'shared-limits-admin-token';

let one: RunningServer;
let two: RunningServer;

before(async () => {
  const env = {
    ...(await storeEnv('redis')),
    ADDRESS_HASH_KEY: 'shared-limits-test-key',
    TRUST_PROXY: 'true',
    REGISTER_RATE_PER_MIN: String(REGISTER_LIMIT),
    MAX_SOCKETS_PER_ADDR: String(SOCKET_LIMIT),
    NEXT_RATE_PER_MIN: String(NEXT_LIMIT),
    REPORT_BAN_THRESHOLD: '1',
    REPORT_MIN_ROOM_MS: '0',
    BAN_DURATION_MS: '60000',
    ADMIN_TOKEN,
    ADMIN_FAILURES_PER_MIN: String(ADMIN_FAILURES),
  };
  [one, two] = await Promise.all([startServer(env), startServer(env)]);
});
after(async () => {
  await WireClient.closeAll();
  await Promise.all([one?.stop(), two?.stop()]);
  await stopPrivateRedis();
});
afterEach(() => WireClient.closeAll());

const postRegister = (srv: RunningServer, via: Via) => request(`${srv.matching}/register`, { method: 'POST', body: {}, headers: via.headers ?? {} });

const admin = (srv: RunningServer, path: string, method = 'GET') =>
  request(`${srv.matching}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });

describe('limits and bans shared through Redis by two processes', () => {
  it(`registrations from one address split across both processes meet REGISTER_RATE_PER_MIN (${REGISTER_LIMIT}) at the same total`, async () => {
    const via = from(freshAddress());
    for (let i = 0; i < REGISTER_LIMIT; i++) await register(i % 2 === 0 ? one : two, {}, via);
    for (const srv of [one, two]) {
      const res = await postRegister(srv, via);
      assert.equal(res.status, 429, `registration ${REGISTER_LIMIT + 1}, on either process: ${describeResponse(res)}`);
      await expectRefused(oneTripUrl(srv), { channel: 'matching', label: 'one-trip over the shared limit', ...via }, 429);
    }
    await register(two, {}, from(freshAddress()));
  });

  it(`open sockets from one address on both processes count together against MAX_SOCKETS_PER_ADDR (${SOCKET_LIMIT})`, async () => {
    const via = from(freshAddress());
    for (let i = 0; i < SOCKET_LIMIT; i++) {
      const srv = i % 2 === 0 ? one : two;
      const s = await register(srv, { mode: 'text' }, via);
      await openMatching(srv, s.id, s.token, s.id, via);
    }
    const extra = await register(one, {}, via);
    for (const srv of [one, two]) {
      await expectRefused(matchingUrl(srv, extra.id, extra.token), { channel: 'matching', label: 'matching over the shared socket limit', ...via }, 429);
      await expectRefused(signallingUrl(srv, extra.id, extra.token), { channel: 'signalling', label: 'signalling over the shared socket limit', ...via }, 429);
    }
  });

  it(`nexts from one address on both processes count together against NEXT_RATE_PER_MIN (${NEXT_LIMIT})`, async () => {
    const via = from(freshAddress());
    // Different modes, so the two never pair with each other.
    const onOne = await enter(one, { mode: 'video' }, via);
    const onTwo = await enter(two, { mode: 'text' }, via);
    for (let i = 0; i < NEXT_LIMIT; i++) {
      const s = i % 2 === 0 ? onOne : onTwo;
      s.m.send({ event: 'next' });
      await s.m.expect('waiting', { what: `"waiting" for next ${i + 1} of ${NEXT_LIMIT}` });
    }
    for (const s of [onOne, onTwo]) {
      s.m.send({ event: 'next' });
      await s.m.expectError('rate-limited', { what: `rate-limited once the address made ${NEXT_LIMIT} nexts on the two processes` });
    }
  });

  it(`failed admin attempts from one address on both processes count together against ADMIN_FAILURES_PER_MIN (${ADMIN_FAILURES})`, async () => {
    const via = from(freshAddress());
    const ask = (srv: RunningServer, token: string) => request(`${srv.matching}/admin/stats`, { headers: { ...via.headers, authorization: `Bearer ${token}` } });
    for (let i = 0; i < ADMIN_FAILURES; i++) {
      const res = await ask(i % 2 === 0 ? one : two, `wrong-guess-${i}-xxxxxxxxxxxxxxxx`);
      assert.equal(res.status, 401, `failed attempt ${i + 1}: ${describeResponse(res)}`);
    }
    for (const srv of [one, two]) {
      const res = await ask(srv, ADMIN_TOKEN);
      assert.equal(res.status, 429, `the right token after ${ADMIN_FAILURES} failures on the two processes: ${describeResponse(res)}`);
      assert.ok((HttpError.parse(res.json()).retry_after ?? 0) >= 1, res.text);
    }
  });

  it('a ban made through one process refuses registration on the other; the admin API of either lists it and lifts it', async () => {
    const suspectVia = from(freshAddress());
    const suspect = await enter(one, {}, suspectVia);
    const reporter = await arrive(two, {}, from(freshAddress()));
    assert.equal((await expectMatched(reporter.m)).peer, suspect.id, 'paired across the two processes');
    await suspect.m.expect('matched');
    reporter.m.send({ event: 'report', reason: 'REPORT_BAN_THRESHOLD is 1' });
    await suspect.m.expectError('banned');
    await suspect.m.expectClose(4003);
    assert.equal((await reporter.m.expect('peer-disconnected')).reason, 'reported');

    const refused = await postRegister(two, suspectVia);
    assert.equal(refused.status, 403, `POST /register on the other process: ${describeResponse(refused)}`);
    assert.equal(HttpError.parse(refused.json()).status, 'banned');
    assert.equal((await expectRefused(oneTripUrl(two), { channel: 'matching', label: 'one-trip on the other process', ...suspectVia }, 403)).status, 'banned');

    const listed = await admin(two, '/admin/bans');
    assert.equal(listed.status, 200, describeResponse(listed));
    const { bans } = listed.json() as { bans: { addr: string; until: number }[] };
    assert.equal(bans.length, 1, `one ban in force: ${listed.text}`);
    const lifted = await admin(one, `/admin/bans/${encodeURIComponent(bans[0]!.addr)}`, 'DELETE');
    assert.equal(lifted.status, 200, describeResponse(lifted));
    await register(two, {}, suspectVia);
  });
});
