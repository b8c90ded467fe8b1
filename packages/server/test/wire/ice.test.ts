// TURN credentials only for people who are there, on both stores: GET
// /ice-servers answers a session whose matching socket is open (409 before,
// 401 once the session has ended), with a short default TURN_TTL; a session in
// a room gets fresh credentials on its matching socket (`ice-servers`) before
// the ones it holds expire.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { HttpError, IceServersEvent, IceServersResponse, type IceServer } from '@dyad/protocol';
import { enter, expectMatched, openMatching, pair, register } from '../support/dyad.js';
import { describeResponse, request, type HttpResponse } from '../support/http.js';
import type { RunningServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import { WireClient, sleep } from '../support/ws-client.js';

const TURN_SECRET = 'ice-test-secret';
const TURN_URLS = 'turn:127.0.0.1:3478';
/** TURN_TTL's default, seconds. */
const DEFAULT_TTL_S = 3600;
/** A short TURN_TTL, so that a renewal (at about half of it) comes within the test. */
const SHORT_TTL_S = 2;
/** Bound on the wait for a renewal: the whole lifetime and then some. */
const RENEWAL_WAIT_MS = SHORT_TTL_S * 1000 + 2_000;

after(() => stopPrivateRedis());
afterEach(() => WireClient.closeAll());

const ice = (server: RunningServer, token: string): Promise<HttpResponse> =>
  request(`${server.matching}/ice-servers`, { headers: { authorization: `Bearer ${token}` } });

/** The TURN entry of a list: its username's expiry, after checking it is this session's and signed with the secret. */
function turnExpiry(list: IceServer[], id: string): number {
  const turn = list.find((s) => s.urls.includes(TURN_URLS));
  assert.ok(turn?.username && turn.credential, `a TURN entry with credentials: ${JSON.stringify(list)}`);
  const m = /^(\d+):(.+)$/.exec(turn.username);
  assert.ok(m?.[1], `username <expiry>:<id>: ${turn.username}`);
  assert.equal(m[2], id, 'the username names the session');
  assert.equal(turn.credential, createHmac('sha1', TURN_SECRET).update(turn.username).digest('base64'), 'credential signed with TURN_SECRET');
  return Number(m[1]);
}

/** The `ice-servers` events a matching socket has received (clients that do not know the event set it aside). */
function renewals(client: WireClient): IceServersEvent[] {
  return client.extensions.filter((e) => (e as { event?: unknown }).event === 'ice-servers').map((e) => IceServersEvent.parse(e));
}

async function nextRenewal(client: WireClient, seen: number): Promise<IceServersEvent> {
  const deadline = Date.now() + RENEWAL_WAIT_MS;
  for (;;) {
    const got = renewals(client);
    if (got.length > seen) return got[seen]!;
    assert.ok(Date.now() < deadline, `${client.label}: no "ice-servers" within ${RENEWAL_WAIT_MS} ms (TURN_TTL ${SHORT_TTL_S} s)`);
    await sleep(50);
  }
}

for (const store of STORES) {
  describe(`TURN credentials on the ${store} store`, () => {
    let server: RunningServer; // TURN_TTL unset: its default
    let short: RunningServer; // TURN_TTL=SHORT_TTL_S

    before(async () => {
      [server, short] = await Promise.all([
        startServerOn(store, { TURN_URLS, TURN_SECRET }),
        startServerOn(store, { TURN_URLS, TURN_SECRET, TURN_TTL: String(SHORT_TTL_S) }),
      ]);
    });
    after(async () => {
      await WireClient.closeAll();
      await Promise.all([server?.stop(), short?.stop()]);
    });

    it(`GET /ice-servers: 409 before the matching socket opens, 200 with ttl ${DEFAULT_TTL_S} (the default TURN_TTL) while it is open, 401 once the session has ended`, async () => {
      const { id, token } = await register(server, { mode: 'text' });
      const early = await ice(server, token);
      assert.equal(early.status, 409, `registered, no socket yet: ${describeResponse(early)}`);
      assert.equal(HttpError.parse(early.json()).status, 'error');

      const m = await openMatching(server, id, token);
      await m.expect('waiting');
      const open = await ice(server, token);
      assert.equal(open.status, 200, `with the matching socket open: ${describeResponse(open)}`);
      const body = IceServersResponse.parse(open.json());
      assert.equal(body.ttl, DEFAULT_TTL_S, 'ttl is the default TURN_TTL');
      const expiry = turnExpiry(body.ice_servers, id);
      assert.ok(Math.abs(expiry - (Date.now() / 1000 + DEFAULT_TTL_S)) < 60, `the credential expires about TURN_TTL from now: ${expiry}`);

      await m.close(1000);
      const ended = await ice(server, token);
      assert.equal(ended.status, 401, `after the session ended: ${describeResponse(ended)}`);
    });

    it('a session whose matching socket dropped (its grace period running) gets 409, and 200 again once it is back', async () => {
      const { id, token } = await register(server, { mode: 'text' });
      const m = await openMatching(server, id, token);
      await m.expect('waiting');
      await m.drop();
      assert.equal((await ice(server, token)).status, 409, 'while the socket is away');
      const back = await openMatching(server, id, token);
      await back.expect('waiting');
      assert.equal((await ice(server, token)).status, 200, 'once it is back');
    });

    it(`a matched socket gets fresh credentials ("ice-servers") before the ones of "matched" expire (TURN_TTL ${SHORT_TTL_S} s), and again later; a waiting one gets none`, async () => {
      const loner = await enter(short, { mode: 'text' });
      const p = await pair(short);
      const first = turnExpiry(p.ma.ice_servers, p.a.id);
      const renewed = await nextRenewal(p.a.m, 0);
      assert.equal(renewed.ttl, SHORT_TTL_S, 'ttl is TURN_TTL');
      const second = turnExpiry(renewed.ice_servers, p.a.id);
      assert.ok(second > first, `the new credential expires later (${second}) than the one of "matched" (${first})`);
      const third = turnExpiry((await nextRenewal(p.a.m, 1)).ice_servers, p.a.id);
      assert.ok(third > second, 'renewed again while the room lasts');
      turnExpiry((await nextRenewal(p.b.m, 0)).ice_servers, p.b.id);
      assert.deepEqual(renewals(loner.m), [], 'a waiting session holds no credential to renew');

      // Once the room ends, renewals stop.
      p.a.m.send({ event: 'stop' });
      await p.a.m.expect('idle');
      await p.b.m.expect('peer-disconnected');
      const [na, nb] = [renewals(p.a.m).length, renewals(p.b.m).length];
      await sleep(SHORT_TTL_S * 1000);
      assert.deepEqual([renewals(p.a.m).length, renewals(p.b.m).length], [na, nb], 'no renewal outside a room');
    });

    it('a resumed matching socket of a matched session gets the renewals', async () => {
      const p = await pair(short);
      await p.a.m.drop();
      const back = await openMatching(short, p.a.id, p.a.token);
      const resumed = await expectMatched(back);
      assert.equal(resumed.resumed, true);
      turnExpiry((await nextRenewal(back, 0)).ice_servers, p.a.id);
    });
  });
}
