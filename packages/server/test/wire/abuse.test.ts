// Safe to run in public (issue 13): proof of work before a session in each
// POW_MODE, refused when replayed or forged; chat at a machine's pace or
// pasted again and again throttled, the operator's words masked; block, on
// both stores; the admin API's ban by hand, reports with their reasons, and
// activity. Addresses are simulated with X-Forwarded-For (TRUST_PROXY).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { solveChallenge } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/sha';
import { AdminBans, AdminReports, AdminStats, PowResponse } from '@dyad/protocol';
import { arrive, enter, expectMatched, expectRefused, freshAddress, from, oneTripUrl, openMatching, register, uniqueName, type Session, type Via } from '../support/dyad.js';
import { AddressHasher } from '../../src/http/client.js';
import { describeResponse, request, type HttpResponse } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { Redis } from 'ioredis';
import { STORES, privateRedis, startServerOn, stopPrivateRedis, uniquePrefix } from '../support/stores.js';
import { WireClient, sleep } from '../support/ws-client.js';

const ADMIN_TOKEN = 'abuse-test-admin-token';
const HASH_KEY = 'abuse-test-address-key';
const hashOf = (address: string): string => new AddressHasher(HASH_KEY, 64).hash(address);
/** Small, so that solving in the test costs milliseconds. */
const TEST_DIFFICULTY = '2000';
const QUIET_MS = 400;
const FEW_BLOCKS = 2;
const FEW_REPORTS = 2;

after(async () => {
  await WireClient.closeAll();
  await stopPrivateRedis();
});

async function challenge(server: RunningServer, via: Via = {}): Promise<PowResponse> {
  const res = await request(`${server.matching}/pow`, { headers: via.headers ?? {} });
  assert.equal(res.status, 200, describeResponse(res));
  assert.equal(res.headers['cache-control'], 'no-store');
  assert.equal(res.headers['access-control-expose-headers'], 'Date', 'a browser may read the server\'s clock');
  assert.ok(Number.isFinite(Date.parse(String(res.headers.date))), `a Date header: ${res.headers.date}`);
  const parsed = PowResponse.safeParse(res.json());
  assert.ok(parsed.success, `GET /pow keeps its schema: ${res.text}`);
  return parsed.data;
}

/** Solve a challenge as a client does, and encode it as the `altcha` field. */
async function solve(c: PowResponse): Promise<string> {
  assert.ok(c.challenge, 'a challenge came');
  const solution = await solveChallenge({ challenge: c.challenge, deriveKey });
  assert.ok(solution, 'the challenge has a solution below POW_DIFFICULTY');
  return Buffer.from(JSON.stringify({ challenge: c.challenge, solution })).toString('base64');
}

const registerWith = (server: RunningServer, body: Record<string, unknown>, via: Via = {}): Promise<HttpResponse> =>
  request(`${server.matching}/register`, { method: 'POST', body, headers: via.headers ?? {} });

const admin = (server: RunningServer, path: string, opts: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<HttpResponse> =>
  request(`${server.matching}${path}`, {
    method: opts.method ?? 'GET',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...opts.headers },
    ...(opts.body !== undefined ? { body: opts.body } : {}),
  });

describe('proof of work', () => {
  let always: RunningServer;
  let aboveRate: RunningServer;
  let off: RunningServer;
  before(async () => {
    // One at a time: three processes starting at once on a busy machine may not all be up within a start's time.
    always = await startServerOn('memory', { POW_MODE: 'always', POW_DIFFICULTY: TEST_DIFFICULTY });
    aboveRate = await startServerOn('memory', { POW_MODE: 'above-rate', POW_RATE_PER_MIN: '2', POW_DIFFICULTY: TEST_DIFFICULTY, TRUST_PROXY: 'true' });
    off = await startServerOn('memory', { POW_MODE: 'off' });
  });
  after(() => Promise.all([always?.stop(), aboveRate?.stop(), off?.stop()]));

  it('always: a start without a solution gets 428 pow-required, on POST /register and on the one-trip upgrade', async () => {
    const res = await registerWith(always, {});
    assert.equal(res.status, 428, describeResponse(res));
    assert.equal((res.json() as { code?: string }).code, 'pow-required');
    const refused = await expectRefused(oneTripUrl(always), { channel: 'matching' }, 428);
    assert.equal(refused.code, 'pow-required');
  });

  it('always: a solved challenge starts a session once, by POST /register or by one-trip; used again it gets 403 pow-invalid', async () => {
    const c = await challenge(always);
    assert.equal(c.required, true);
    const altcha = await solve(c);
    const first = await registerWith(always, { name: uniqueName(), altcha });
    assert.equal(first.status, 200, describeResponse(first));
    const replay = await registerWith(always, { name: uniqueName(), altcha });
    assert.equal(replay.status, 403, describeResponse(replay));
    assert.equal((replay.json() as { code?: string }).code, 'pow-invalid');
    assert.match((replay.json() as { message: string }).message, /used already/);

    const other = await solve(await challenge(always));
    const m = await WireClient.open(oneTripUrl(always, { altcha: other }), { channel: 'matching', label: 'one-trip with proof' });
    await m.expect('session');
    const again = await expectRefused(oneTripUrl(always, { altcha: other }), { channel: 'matching' }, 403);
    assert.equal(again.code, 'pow-invalid');
    await m.close(1000);
  });

  it('always: forged solutions are refused: a key not found by solving, a changed challenge, a foreign signature, garbage', async () => {
    const c = await challenge(always);
    assert.ok(c.challenge);
    const solved = JSON.parse(Buffer.from(await solve(c), 'base64').toString()) as { challenge: typeof c.challenge; solution: { counter: number; derivedKey: string } };
    const forgeries: Record<string, unknown> = {
      'wrong key': { ...solved, solution: { ...solved.solution, derivedKey: '00'.repeat(32) } },
      'easier prefix': { ...solved, challenge: { ...solved.challenge, parameters: { ...solved.challenge.parameters, keyPrefix: '0' } } },
      'later expiry': { ...solved, challenge: { ...solved.challenge, parameters: { ...solved.challenge.parameters, expiresAt: 4_102_444_800 } } },
      'foreign signature': { ...solved, challenge: { ...solved.challenge, signature: 'ab'.repeat(32) } },
    };
    for (const [what, payload] of Object.entries(forgeries)) {
      const res = await registerWith(always, { altcha: Buffer.from(JSON.stringify(payload)).toString('base64') });
      assert.equal(res.status, 403, `${what}: ${describeResponse(res)}`);
      assert.equal((res.json() as { code?: string }).code, 'pow-invalid', what);
    }
    const garbage = await registerWith(always, { altcha: Buffer.from('not json').toString('base64') });
    assert.equal(garbage.status, 403, describeResponse(garbage));
    const badType = await registerWith(always, { altcha: 42 });
    assert.equal(badType.status, 400, describeResponse(badType));
    // The genuine one still works: nothing above spent it.
    const ok = await registerWith(always, { altcha: Buffer.from(JSON.stringify(solved)).toString('base64') });
    assert.equal(ok.status, 200, describeResponse(ok));
  });

  it('above-rate: POW_RATE_PER_MIN starts from one address pass without, then a proof is required of that address only', async () => {
    const busy = from(freshAddress());
    assert.equal((await challenge(aboveRate, busy)).required, false);
    for (let i = 0; i < 2; i++) assert.equal((await registerWith(aboveRate, {}, busy)).status, 200);
    const c = await challenge(aboveRate, busy);
    assert.equal(c.required, true, 'GET /pow says a proof is needed now');
    const refused = await registerWith(aboveRate, {}, busy);
    assert.equal(refused.status, 428, describeResponse(refused));
    const solved = await registerWith(aboveRate, { altcha: await solve(c) }, busy);
    assert.equal(solved.status, 200, describeResponse(solved));
    // Another address is not affected.
    const quiet = from(freshAddress());
    assert.equal((await challenge(aboveRate, quiet)).required, false);
    assert.equal((await registerWith(aboveRate, {}, quiet)).status, 200);
  });

  it('off: no proof is asked, and GET /pow says so', async () => {
    assert.deepEqual(await challenge(off), { required: false });
    for (let i = 0; i < 3; i++) assert.equal((await registerWith(off, {})).status, 200);
  });
});

describe('chat guards', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServerOn('memory', {
      TRUST_PROXY: 'true',
      CHAT_RATE_PER_MIN: '10',
      CHAT_REPEAT_MAX: '2',
      CHAT_REPEAT_MIN_CHARS: '12',
      CHAT_MASK_WORDS: 'badword, two words',
    });
  });
  after(() => server?.stop());

  async function pairFrom(a: string, b: string): Promise<[Session, Session]> {
    const x = await enter(server, {}, from(a));
    const y = await arrive(server, {}, from(b));
    await expectMatched(y.m);
    await x.m.expect('matched');
    return [x, y];
  }

  it('the operator\'s words are masked before the partner sees them (whole words, any case)', async () => {
    const [x, y] = await pairFrom(freshAddress(), freshAddress());
    x.m.send({ event: 'chat', message: 'a BadWord, TWO WORDS and badwords' });
    assert.equal((await y.m.expect('chat')).message, 'a *******, ********* and badwords');
    await Promise.all([x.m.close(1000), y.m.close(1000)]);
  });

  it('the same message pasted more than CHAT_REPEAT_MAX times from one address is refused in any room; short ones are not counted', async () => {
    const spammer = freshAddress();
    const spam = 'Visit example dot com for FREE stuff';
    for (let room = 0; room < 3; room++) {
      const [x, y] = await pairFrom(spammer, freshAddress());
      x.m.send({ event: 'chat', message: room === 1 ? spam.toUpperCase() : spam });
      if (room < 2) assert.equal((await y.m.expect('chat')).message.toLowerCase(), spam.toLowerCase());
      else {
        const refused = await x.m.expectError('rate-limited');
        assert.match(refused.message, /same message/);
        await y.m.expectSilence(QUIET_MS, { why: 'the repeated message is dropped' });
        x.m.send({ event: 'chat', message: 'hi' });
        assert.equal((await y.m.expect('chat')).message, 'hi', 'something new still passes');
      }
      await Promise.all([x.m.close(1000), y.m.close(1000)]);
    }
  });

  it('more than CHAT_RATE_PER_MIN messages a minute from one address are refused', async () => {
    const [x, y] = await pairFrom(freshAddress(), freshAddress());
    for (let i = 0; i < 10; i++) x.m.send({ event: 'chat', message: `line ${i}` });
    for (let i = 0; i < 10; i++) assert.equal((await y.m.expect('chat')).message, `line ${i}`);
    x.m.send({ event: 'chat', message: 'one too many' });
    const refused = await x.m.expectError('rate-limited');
    assert.match(refused.message, /chat messages a minute/);
    await y.m.expectSilence(QUIET_MS, { why: 'the message beyond the rate is dropped' });
    await Promise.all([x.m.close(1000), y.m.close(1000)]);
  });

  it('a session that opens its socket again from another address keeps its CHAT_RATE_PER_MIN: the pace is per session as well as per address', async () => {
    const [x, y] = await pairFrom(freshAddress(), freshAddress());
    for (let i = 0; i < 6; i++) x.m.send({ event: 'chat', message: `before ${i}` });
    for (let i = 0; i < 6; i++) assert.equal((await y.m.expect('chat')).message, `before ${i}`);
    // The phone changes networks: the same session's socket, from a new address.
    await x.m.close(4000);
    const again = await openMatching(server, x.id, x.token, 'x again', from(freshAddress()));
    assert.equal((await again.expect('matched')).resumed, true);
    for (let i = 0; i < 5; i++) again.send({ event: 'chat', message: `after ${i}` });
    for (let i = 0; i < 4; i++) assert.equal((await y.m.expect('chat')).message, `after ${i}`);
    assert.match((await again.expectError('rate-limited')).message, /chat messages a minute/, 'the eleventh of the minute, though the first from this address');
    await y.m.expectSilence(QUIET_MS, { why: 'the message beyond the session\'s pace is dropped' });
    await Promise.all([again.close(1000), y.m.close(1000)]);
  });
});

describe('chat guards, what they keep', () => {
  it('a chat refused past CHAT_RATE_PER_MIN is not counted as a repeat: one address sending distinct messages at its sockets\' rate makes no more keys than the rate allows (Redis, every process together)', async () => {
    const prefix = uniquePrefix();
    const redis = await privateRedis();
    const server = await startServer({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, TRUST_PROXY: 'true', CHAT_RATE_PER_MIN: '10', CHAT_REPEAT_MIN_CHARS: '12' });
    const client = new Redis(redis.url);
    try {
      // Alone, waiting: a chat needs no partner to be counted. Each is new text, long enough to be counted as a repeat.
      const x = await enter(server, {}, from(freshAddress()));
      const sent = 200;
      for (let i = 0; i < sent; i++) x.m.send({ event: 'chat', message: `message number ${i} of many` });
      let paced = 0;
      for (let i = 0; i < sent; i++) {
        const m = await x.m.next(`the answer to chat ${i}`);
        assert.equal(m.event, 'error', `chat ${i}: ${m.event}`);
        if (m.event === 'error' && /chat messages a minute/.test(m.message)) paced++;
      }
      assert.equal(paced, sent - 10, 'all but CHAT_RATE_PER_MIN refused for the pace');
      const keys = await client.keys(`${prefix}rl:{chat-repeat}:*`);
      assert.ok(keys.length <= 10, `${keys.length} repeat counts kept for ${sent} messages, ${sent - paced} of them within the pace`);
      await x.m.close(1000);
    } finally {
      client.disconnect();
      await server.stop();
    }
  });
});

describe('per-address limits, what they hold in all', () => {
  // Every address within its limits still makes keys: one pace key per address, and a repeat key per distinct
  // message. 40 addresses sending 3 new messages each make 40 pace keys and 120 repeat keys; LIMITER_KEYS_MAX (25)
  // holds each limit to 25, the first to end going first, while every message within the limits still passes.
  const ADDRESSES = 40;
  const CAP = 25;
  for (const store of STORES) {
    it(`each limit holds at most LIMITER_KEYS_MAX keys, however many addresses and messages (${store})`, async () => {
      const prefix = uniquePrefix();
      const redis = store === 'redis' ? await privateRedis() : undefined;
      const server = await startServerOn(store, {
        ...(redis ? { REDIS_URL: redis.url, REDIS_PREFIX: prefix } : {}),
        TRUST_PROXY: 'true',
        CHAT_RATE_PER_MIN: '1000',
        CHAT_REPEAT_MIN_CHARS: '12',
        LIMITER_KEYS_MAX: String(CAP),
      });
      const client = redis ? new Redis(redis.url) : undefined;
      try {
        // One at a time, each alone (waiting): no partner to tell, but each message is counted, and none is refused.
        for (let a = 0; a < ADDRESSES; a++) {
          const x = await enter(server, {}, from(freshAddress()));
          for (let i = 0; i < 3; i++) x.m.send({ event: 'chat', message: `message ${i} from address ${a}` });
          for (let i = 0; i < 3; i++) await x.m.expectError('no-partner');
          await x.m.close(1000);
        }
        if (client) {
          for (const limit of ['chat', 'chat-repeat']) {
            assert.equal((await client.keys(`${prefix}rl:{${limit}}:*`)).length, CAP, `${limit}: counts held`);
            assert.equal(await client.zcard(`${prefix}rlz:{${limit}}`), CAP, `${limit}: the index`);
          }
        } else {
          const res = await request(`${server.matching}/metrics`);
          const held = Object.fromEntries([...res.text.matchAll(/^dyad_address_entries\{limit="([a-z-]+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
          assert.equal(held['chat'], CAP, 'pace keys held');
          assert.equal(held['chat-repeat'], CAP, 'repeat keys held');
        }
      } finally {
        client?.disconnect();
        await server.stop();
      }
    });
  }
});

describe('sessions per address, those in their grace period included', () => {
  // The second review's hold: a session whose socket drops without a close waits GRACE_MS for it, and a
  // resumption starts that time afresh, so reopening and dropping each socket within it keeps sessions with
  // no socket open, past MAX_SOCKETS_PER_ADDR. MAX_SESSIONS_PER_ADDR counts them.
  const MAX_SESSIONS = 4;
  const GRACE_MS = 1_500;
  for (const store of STORES) {
    it(`sessions held by reopening and dropping their sockets count against MAX_SESSIONS_PER_ADDR: the next start gets 429, in grace or not (${store})`, async () => {
      const server = await startServerOn(store, {
        TRUST_PROXY: 'true',
        MAX_SOCKETS_PER_ADDR: '2',
        MAX_SESSIONS_PER_ADDR: String(MAX_SESSIONS),
        GRACE_MS: String(GRACE_MS),
      });
      try {
        const via = from(freshAddress());
        const held: { id: string; token: string }[] = [];
        // Each one opened and dropped at once: no socket stays open, so MAX_SOCKETS_PER_ADDR (2) never stops them.
        for (let i = 0; i < MAX_SESSIONS; i++) {
          const s = await arrive(server, {}, via);
          await s.m.drop();
          held.push({ id: s.id, token: s.token });
        }
        const refused = await request(`${server.matching}/register`, { method: 'POST', body: { mode: 'text' }, headers: via.headers ?? {} });
        assert.equal(refused.status, 429, describeResponse(refused));
        assert.match(refused.text, /too many sessions/);
        await expectRefused(oneTripUrl(server, { mode: 'text' }), { channel: 'matching', label: 'one-trip past the cap', ...via }, 429);
        // Kept alive past their first grace period by a resumption and another drop: still counted.
        await sleep(GRACE_MS / 2);
        for (const h of held) await (await openMatching(server, h.id, h.token, h.id, via)).drop();
        await sleep(GRACE_MS / 2 + 200);
        const still = await request(`${server.matching}/register`, { method: 'POST', body: { mode: 'text' }, headers: via.headers ?? {} });
        assert.equal(still.status, 429, `a grace period started afresh keeps the place: ${describeResponse(still)}`);
        assert.equal((await register(server, { mode: 'text' }, from(freshAddress()))).id.length > 0, true, 'another address is not stopped');
        // Once their grace periods run out the sessions end, and the places come back.
        const deadline = Date.now() + GRACE_MS + 5_000;
        for (;;) {
          const again = await request(`${server.matching}/register`, { method: 'POST', body: { mode: 'text' }, headers: via.headers ?? {} });
          if (again.status === 200) break;
          assert.equal(again.status, 429, describeResponse(again));
          assert.ok(Date.now() < deadline, 'the places came back once the grace periods ran out');
          await sleep(100);
        }
      } finally {
        await WireClient.closeAll();
        await server.stop();
      }
    });
  }
});

for (const store of STORES) {
  describe(`block and the admin API on the ${store} store`, () => {
    let server: RunningServer;
    let bounded: RunningServer;
    let fewKept: RunningServer; // REPORTS_KEPT_MAX 2
    before(async () => {
      const settings = {
        TRUST_PROXY: 'true',
        ADMIN_TOKEN,
        ADDRESS_HASH_KEY: HASH_KEY,
        REPORT_MIN_ROOM_MS: '0',
        REPORT_BAN_THRESHOLD: '5',
        REPAIR_COOLDOWN_MS: '0',
      };
      [server, bounded, fewKept] = await Promise.all([
        startServerOn(store, settings),
        startServerOn(store, { ...settings, BLOCKS_PER_ADDR: String(FEW_BLOCKS), REPORTS_PER_ADDR: String(FEW_REPORTS) }),
        startServerOn(store, { ...settings, REPORTS_KEPT_MAX: String(FEW_REPORTS) }),
      ]);
    });
    after(() => Promise.all([server?.stop(), bounded?.stop(), fewKept?.stop()]));

    /** Each reporter (a fresh address) meets its own suspect (a fresh address) and reports it; which suspects the console lists. */
    async function reportEach(srv: RunningServer, count: number, sameReporter: boolean): Promise<boolean[]> {
      const one = sameReporter ? await enter(srv, {}, from(freshAddress())) : undefined;
      const suspects: string[] = [];
      for (let i = 0; i < count; i++) {
        const reporter = one ?? (await enter(srv, {}, from(freshAddress())));
        const address = freshAddress();
        suspects.push(address);
        const suspect = await arrive(srv, {}, from(address));
        await expectMatched(suspect.m);
        await reporter.m.expect('matched');
        reporter.m.send({ event: 'report', reason: `about ${address}` });
        reporter.m.send({ event: 'next' });
        assert.equal((await suspect.m.expect('peer-disconnected')).reason, 'skip');
        await reporter.m.expect('waiting');
        await suspect.m.close(1000);
        if (!one) await reporter.m.close(1000);
      }
      if (one) await one.m.close(1000);
      const listed = await admin(srv, '/admin/reports');
      assert.equal(listed.status, 200, describeResponse(listed));
      const reported = new Set(AdminReports.parse(listed.json()).reports.map((r) => r.addr));
      return suspects.map((a) => reported.has(hashOf(a)));
    }

    /** `blocker`, waiting on `srv`, meets a newcomer from `address` and blocks it: the partner is told skip, the blocker waits again. */
    async function meetAndBlock(srv: RunningServer, blocker: Session, address: string): Promise<Session> {
      const b = await arrive(srv, {}, from(address));
      await expectMatched(b.m);
      await blocker.m.expect('matched');
      blocker.m.send({ event: 'block' });
      assert.equal((await b.m.expect('peer-disconnected')).reason, 'skip');
      await blocker.m.expect('waiting');
      return b;
    }

    it('block ends the room (partner: skip, blocker: waiting) and the two, and their addresses, are never paired again', async () => {
      const [aAddr, bAddr] = [freshAddress(), freshAddress()];
      const a = await enter(server, {}, from(aAddr));
      const b = await meetAndBlock(server, a, bAddr);
      b.m.send({ event: 'next' });
      await b.m.expect('waiting');
      await a.m.expectSilence(QUIET_MS, { why: 'the blocked session is not paired with the blocker again, even with REPAIR_COOLDOWN_MS=0' });
      // A new session from the blocked address is not paired with the blocker either.
      const b2 = await arrive(server, {}, from(bAddr));
      await b2.m.expect('waiting');
      await a.m.expectSilence(QUIET_MS, { why: 'address blocks outlive sessions (BLOCK_MS)' });
      // Someone else is.
      const c = await arrive(server, {}, from(freshAddress()));
      const mc = await expectMatched(c.m);
      assert.ok([a.id, b.id, b2.id].includes(mc.peer));
      await Promise.all([a.m.close(1000), b.m.close(1000), b2.m.close(1000), c.m.close(1000)]);
    });

    it(`past BLOCKS_PER_ADDR (${FEW_BLOCKS}) blocks from one address keep only the sessions apart, not the addresses`, async () => {
      const blocker = await enter(bounded, {}, from(freshAddress()));
      const blockedAddresses = [freshAddress(), freshAddress(), freshAddress()];
      for (const address of blockedAddresses) await (await meetAndBlock(bounded, blocker, address)).m.close(1000);
      for (const address of blockedAddresses.slice(0, FEW_BLOCKS)) {
        const again = await arrive(bounded, {}, from(address));
        await again.m.expect('waiting');
        await blocker.m.expectSilence(QUIET_MS, { why: `one of the first ${FEW_BLOCKS} blocks: the address is kept apart (BLOCK_MS)` });
        await again.m.close(1000);
      }
      const last = await arrive(bounded, {}, from(blockedAddresses[FEW_BLOCKS]!));
      assert.equal((await expectMatched(last.m)).peer, blocker.id, `block ${FEW_BLOCKS + 1} kept the sessions apart, not the addresses`);
      await Promise.all([blocker.m.close(1000), last.m.close(1000)]);
    });

    it(`past REPORTS_PER_ADDR (${FEW_REPORTS}) reports from one address keep only the sessions apart: not kept, not counted`, async () => {
      assert.deepEqual(await reportEach(bounded, 3, true), [true, true, false], `the first ${FEW_REPORTS} reports are kept for the console, the next is not`);
    });

    it(`past REPORTS_KEPT_MAX (${FEW_REPORTS}) reports from all addresses keep only the sessions apart: three reporters of three addresses, the third is not kept`, async () => {
      assert.deepEqual(await reportEach(fewKept, 3, false), [true, true, false], `the first ${FEW_REPORTS} reports are kept for the console, the next is not`);
    });

    it(`reports of no one take nothing of REPORTS_PER_ADDR or REPORTS_KEPT_MAX (${FEW_REPORTS}): a session reporting nobody again and again leaves the reports of others recorded`, async () => {
      const srv = await startServerOn(store, { TRUST_PROXY: 'true', ADMIN_TOKEN, ADDRESS_HASH_KEY: HASH_KEY, REPORT_MIN_ROOM_MS: '0', REPORT_BAN_THRESHOLD: '5', REPORTS_KEPT_MAX: String(FEW_REPORTS), REPORTS_PER_ADDR: String(FEW_REPORTS) });
      try {
        const lone = await enter(srv, {}, from(freshAddress()));
        for (let i = 0; i < 3 * FEW_REPORTS; i++) {
          lone.m.send({ event: 'report', reason: 'nobody' });
          await lone.m.expectError('no-partner');
        }
        await lone.m.close(1000);
        assert.deepEqual(await reportEach(srv, FEW_REPORTS, true), [true, true], 'the reports of a partner that follow are kept');
      } finally {
        await srv.stop();
      }
    });

    it('block with no current or recent partner gets no-partner', async () => {
      const a = await enter(server, {}, from(freshAddress()));
      a.m.send({ event: 'block' });
      await a.m.expectError('no-partner');
      await a.m.close(1000);
    });

    it('reports keep their reasons for the console; a ban by hand is listed with its reason, ends sessions with 4003, refuses starts with 403, and lifts', async () => {
      const suspectAddr = freshAddress();
      const suspect = await enter(server, {}, from(suspectAddr));
      for (const reason of ['spam links', '']) {
        const r = await arrive(server, {}, from(freshAddress()));
        await expectMatched(r.m);
        await suspect.m.expect('matched');
        r.m.send({ event: 'report', ...(reason ? { reason } : {}) });
        r.m.send({ event: 'stop' });
        await r.m.expect('idle');
        await suspect.m.expect('peer-disconnected');
        suspect.m.send({ event: 'next' });
        await suspect.m.expect('waiting');
        await r.m.close(1000);
      }
      const listed = await admin(server, '/admin/reports');
      assert.equal(listed.status, 200, describeResponse(listed));
      const reports = AdminReports.parse(listed.json()).reports;
      const mine = reports.find((r) => r.addr === hashOf(suspectAddr));
      assert.ok(mine, `the suspect's address hash is listed: ${listed.text}`);
      assert.equal(mine.reporters, 2);
      assert.deepEqual(mine.reasons.map((r) => r.reason), ['', 'spam links'], 'reasons, newest first');
      assert.equal(mine.banned, false);

      const stats = AdminStats.parse((await admin(server, '/admin/stats')).json());
      assert.equal(stats.activity.length, 60, 'an hour of minutes');
      const recent = stats.activity.slice(-2);
      assert.ok(recent.reduce((n, m) => n + m.reports, 0) >= 2, `reports counted per minute: ${JSON.stringify(recent)}`);
      assert.ok(recent.reduce((n, m) => n + m.pairings, 0) >= 2, `pairings counted per minute: ${JSON.stringify(recent)}`);
      assert.ok(stats.online >= 1, 'the suspect is online');

      const made = await admin(server, '/admin/bans', { method: 'POST', body: { addr: hashOf(suspectAddr), duration_ms: 600_000, reason: 'link spam' } });
      assert.equal(made.status, 201, describeResponse(made));
      const until = (made.json() as { until: number }).until;
      assert.ok(Math.abs(until - (Date.now() + 600_000) / 1000) < 30, `until is the chosen time from now: ${until}`);
      const banned = await suspect.m.expectError('banned');
      assert.equal(banned.until, until);
      await suspect.m.expectClose(4003);
      assert.equal((await registerWith(server, {}, from(suspectAddr))).status, 403);
      const bans = AdminBans.parse((await admin(server, '/admin/bans')).json()).bans;
      const ban = bans.find((b) => b.addr === hashOf(suspectAddr));
      assert.deepEqual(ban && { reason: ban.reason, manual: ban.manual, until: ban.until }, { reason: 'link spam', manual: true, until });
      const after = AdminReports.parse((await admin(server, '/admin/reports')).json()).reports.find((r) => r.addr === hashOf(suspectAddr));
      assert.equal(after?.banned, true, 'the listing says a ban followed the reports');

      const lifted = await admin(server, `/admin/bans/${hashOf(suspectAddr)}`, { method: 'DELETE' });
      assert.equal(lifted.status, 200, describeResponse(lifted));
      await register(server, {}, from(suspectAddr));
    });

    it('POST /admin/bans answers bad input with a clear 4xx and needs the token and JSON', async () => {
      const addr = hashOf(freshAddress());
      const cases: [string, { body?: unknown; headers?: Record<string, string> }, number, RegExp][] = [
        ['not an address hash', { body: { addr: '10.0.0.1', duration_ms: 600_000 } }, 400, /addr/],
        ['too short', { body: { addr, duration_ms: 1_000 } }, 400, /duration_ms/],
        ['no duration', { body: { addr } }, 400, /duration_ms/],
        ['not JSON', { body: '{', headers: { 'content-type': 'application/json' } }, 400, /invalid JSON/],
        ['a form', { body: 'addr=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, /application\/json/],
        ['another type that starts like JSON', { body: { addr, duration_ms: 600_000 }, headers: { 'content-type': 'application/json-seq' } }, 415, /application\/json/],
      ];
      for (const [what, opts, status, message] of cases) {
        const res = await admin(server, '/admin/bans', { method: 'POST', ...opts });
        assert.equal(res.status, status, `${what}: ${describeResponse(res)}`);
        assert.match((res.json() as { message: string }).message, message, what);
      }
      const noToken = await request(`${server.matching}/admin/bans`, { method: 'POST', body: { addr, duration_ms: 600_000 } });
      assert.equal(noToken.status, 401, describeResponse(noToken));
      const crossSite = await admin(server, '/admin/bans', { method: 'POST', body: { addr, duration_ms: 600_000 }, headers: { origin: 'https://evil.example' } });
      assert.equal(crossSite.status, 403, `another site's page: ${describeResponse(crossSite)}`);
      const wrongMethod = await admin(server, '/admin/reports', { method: 'DELETE' });
      assert.equal(wrongMethod.status, 405, describeResponse(wrongMethod));
      assert.equal(AdminBans.parse((await admin(server, '/admin/bans')).json()).bans.some((b) => b.addr === addr), false, 'nothing was banned');
    });
  });
}
