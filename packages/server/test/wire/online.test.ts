// GET /online: people online and waiting, aggregates only, cached per process,
// rate-limited per address, with the CORS of the other matching endpoints.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { HttpError, OnlineResponse } from '@dyad/protocol';
import { enter, from, freshAddress, freshIpv6Block, leaveAll, pair } from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient, eventually } from '../support/ws-client.js';

const ALLOWED = 'http://app.example:8080';
const FOREIGN = 'http://evil.example';
const CACHE_MS = 150;
const RATE = 5;

let fresh: RunningServer; // counts at most CACHE_MS old
let cached: RunningServer; // counts kept for a minute
let limited: RunningServer; // RATE requests per address per minute, addresses from X-Forwarded-For
let crowd: RunningServer; // the shipped limits, addresses from X-Forwarded-For

before(async () => {
  [fresh, cached, limited, crowd] = await Promise.all([
    startServer({ ONLINE_CACHE_MS: String(CACHE_MS), ALLOWED_ORIGINS: ALLOWED }),
    startServer({ ONLINE_CACHE_MS: '60000' }),
    startServer({ ONLINE_RATE_PER_MIN: String(RATE), TRUST_PROXY: 'true' }),
    startServer({ TRUST_PROXY: 'true' }),
  ]);
});
after(async () => {
  await WireClient.closeAll();
  await Promise.all([fresh?.stop(), cached?.stop(), limited?.stop(), crowd?.stop()]);
});
afterEach(() => WireClient.closeAll());

async function online(srv: RunningServer, headers: Record<string, string> = {}): Promise<OnlineResponse> {
  const res = await request(`${srv.matching}/online`, { headers });
  assert.equal(res.status, 200, describeResponse(res));
  const parsed = OnlineResponse.safeParse(res.json());
  assert.ok(parsed.success, `the contract's shape: ${res.text}`);
  return parsed.data;
}

/** GET /online gives `expected` within a few cache periods. */
async function counted(srv: RunningServer, expected: OnlineResponse, what: string): Promise<void> {
  let last: OnlineResponse | undefined;
  await eventually(async () => {
    last = await online(srv);
    return JSON.stringify(last) === JSON.stringify(expected) ? true : undefined;
  }, `${what}: ${JSON.stringify(expected)} (last ${JSON.stringify(last)})`);
}

describe('GET /online', () => {
  it('counts live sessions and those waiting, by mode, and nothing else', async () => {
    assert.deepEqual(await online(fresh), { online: 0, waiting: { video: 0, text: 0 } });
    const v = await enter(fresh, { mode: 'video', lang: 'fr' });
    const t = await enter(fresh, { mode: 'text', lang: 'fr' });
    await counted(fresh, { online: 2, waiting: { video: 1, text: 1 } }, 'one waiting in each mode');
    // Only aggregates: the answer names nobody.
    const res = await request(`${fresh.matching}/online`);
    for (const s of [v, t]) assert.ok(!res.text.includes(s.id) && !res.text.includes(s.token));
    // A pair in a room is online and no longer waiting.
    const p = await pair(fresh, { mode: 'video', lang: 'de' }, { mode: 'video', lang: 'de' });
    await counted(fresh, { online: 4, waiting: { video: 1, text: 1 } }, 'a pair online, not waiting');
    await leaveAll(v, t, p.a, p.b);
    await counted(fresh, { online: 0, waiting: { video: 0, text: 0 } }, 'everyone gone');
  });

  it('answers from a copy kept ONLINE_CACHE_MS: a newcomer does not show within it', async () => {
    assert.deepEqual(await online(cached), { online: 0, waiting: { video: 0, text: 0 } });
    const s = await enter(cached, { mode: 'video' });
    for (let i = 0; i < 5; i++) assert.deepEqual(await online(cached), { online: 0, waiting: { video: 0, text: 0 } });
    const res = await request(`${cached.matching}/online`);
    assert.equal(res.headers['cache-control'], 'max-age=60');
    await leaveAll(s);
  });

  it("/metrics counts the store from the same kind of copy: a scrape within ONLINE_CACHE_MS of the last does not count it again (the port answers anyone, and counting walks every session)", async () => {
    const waiting = async (): Promise<number> => {
      const res = await request(`${cached.matching}/metrics`);
      assert.equal(res.status, 200, describeResponse(res));
      const m = /^dyad_waiting_sessions\{mode="video"\} (\d+)$/m.exec(res.text);
      assert.ok(m?.[1] !== undefined, 'the gauge is there');
      return Number(m[1]);
    };
    const first = await waiting();
    const s = await enter(cached, { mode: 'video' });
    for (let i = 0; i < 5; i++) assert.equal(await waiting(), first, 'within the period: the copy');
    await leaveAll(s);
  });

  it("/metrics renders the process's own metrics (its open files read one by one) at most once per ONLINE_CACHE_MS; Dyad's counters are those of the moment (fifth review, H1)", async () => {
    const scrape = async (): Promise<{ fds: number; registered: number }> => {
      const res = await request(`${cached.matching}/metrics`);
      assert.equal(res.status, 200, describeResponse(res));
      const fds = /^process_open_fds (\d+)$/m.exec(res.text);
      assert.ok(fds?.[1] !== undefined, 'process_open_fds is there');
      let registered = 0;
      for (const m of res.text.matchAll(/^dyad_registrations_total(?:\{[^}]*\})? (\d+)$/gm)) registered += Number(m[1]);
      return { fds: Number(fds[1]), registered };
    };
    const first = await scrape();
    // Sockets held open (more open files), and a registration counted.
    const s = await Promise.all(Array.from({ length: 10 }, () => enter(cached, { mode: 'text' })));
    try {
      const second = await scrape();
      assert.equal(second.fds, first.fds, "within the period: the process's metrics as rendered before");
      assert.equal(second.registered, first.registered + 10, 'the counters as they are now');
    } finally {
      await leaveAll(...s);
    }
  });

  it('CORS like the other matching endpoints: a listed Origin is echoed, a foreign one refused', async () => {
    const ok = await request(`${fresh.matching}/online`, { headers: { origin: ALLOWED } });
    assert.equal(ok.status, 200, describeResponse(ok));
    assert.equal(ok.headers['access-control-allow-origin'], ALLOWED);
    const refused = await request(`${fresh.matching}/online`, { headers: { origin: FOREIGN } });
    assert.equal(refused.status, 403, describeResponse(refused));
  });

  it(`ONLINE_RATE_PER_MIN per address: the ${RATE + 1}th request in a minute gets 429 with retry_after; another address is served`, async () => {
    const busy = from(freshAddress()).headers ?? {};
    for (let i = 0; i < RATE; i++) await online(limited, busy);
    const res = await request(`${limited.matching}/online`, { headers: busy });
    assert.equal(res.status, 429, describeResponse(res));
    const body = HttpError.parse(res.json());
    assert.ok((body.retry_after ?? 0) >= 1, 'retry_after in whole seconds');
    await online(limited, from(freshAddress()).headers ?? {});
  });

  it('addresses that each ask once are forgotten within a second: 3,000 of them (one IPv6 subscriber holds 65,536 /64s in a /48) leave nothing held', async () => {
    const entries = async (): Promise<Record<string, number>> => {
      const res = await request(`${crowd.matching}/metrics`);
      assert.equal(res.status, 200, describeResponse(res));
      const found: Record<string, number> = {};
      for (const m of res.text.matchAll(/^dyad_address_entries\{limit="([a-z]+)"\} (\d+)$/gm)) found[m[1]!] = Number(m[2]);
      return found;
    };
    const block = freshIpv6Block();
    const ADDRESSES = 3_000;
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < ADDRESSES) {
          const n = next++;
          await online(crowd, from(`${block}:${n.toString(16)}::1`).headers ?? {});
        }
      }),
    );
    const held = await entries();
    // Those asked within the last second are still held (each took one of its 60 tokens).
    assert.ok((held.online ?? 0) >= 1, `held while refilling: ${JSON.stringify(held)}`);
    if (performance.now() - started < 1_000) assert.ok((held.online ?? 0) >= ADDRESSES, `all held while refilling: ${JSON.stringify(held)}`);
    await new Promise((r) => setTimeout(r, 1_100));
    await online(crowd); // the online pace drops what it may when it is used
    const after = await entries();
    assert.ok(after.online !== undefined && after.online <= 2, `online: ${JSON.stringify(after)}`);
    assert.ok(after.requests !== undefined && after.requests <= 2, `requests: ${JSON.stringify(after)}`);
  });

  it('only GET: another method is not found', async () => {
    const res = await request(`${fresh.matching}/online`, { method: 'POST', body: {} });
    assert.equal(res.status, 404, describeResponse(res));
  });
});
