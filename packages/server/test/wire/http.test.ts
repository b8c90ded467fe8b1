// HTTP side of the matching service: liveness, health, metrics, POST /register,
// GET /ice-servers (TURN REST credentials), Origin checks and CORS.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { HttpError, IceServersResponse, RegisterResponse } from '@dyad/protocol';
import {
  estimatedBits,
  matchingUrl,
  oneTripUrl,
  openMatching,
  pair,
  register,
  signallingUrl,
  uniqueName,
} from '../support/dyad.js';
import { describeResponse, request, type HttpResponse } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient } from '../support/ws-client.js';

const TURN_SECRET = 'wire-test-secret';
const TURN_TTL_S = 600;
const ALLOWED = 'http://app.example:8080';
const ALSO_ALLOWED = 'http://other.example';
const FOREIGN = 'http://evil.example';

let server: RunningServer; // ALLOWED_ORIGINS, TURN and STUN set
let plain: RunningServer; // every optional setting unset

before(async () => {
  [server, plain] = await Promise.all([
    startServer({
      // Spaces around items and empty items are ignored in lists.
      ALLOWED_ORIGINS: ` ${ALLOWED} , ,${ALSO_ALLOWED} `,
      TURN_URLS: ' turn:127.0.0.1:3478 , turn:127.0.0.1:3478?transport=tcp,, ',
      TURN_SECRET,
      TURN_TTL: String(TURN_TTL_S),
      STUN_URLS: 'stun:127.0.0.1:3478',
    }),
    startServer(),
  ]);
});
after(async () => {
  await WireClient.closeAll();
  await Promise.all([server?.stop(), plain?.stop()]);
});
afterEach(() => WireClient.closeAll());

const post = (srv: RunningServer, body: unknown, headers: Record<string, string> = {}): Promise<HttpResponse> =>
  request(`${srv.matching}/register`, { method: 'POST', body, headers });

function expectJson(res: HttpResponse, status: number, what: string): Record<string, unknown> {
  assert.equal(res.status, status, `${what}: expected HTTP ${status}, got ${describeResponse(res)}`);
  const body = res.json();
  assert.ok(body && typeof body === 'object' && !Array.isArray(body), `${what}: expected a JSON object, got ${res.text}`);
  return body as Record<string, unknown>;
}

describe('liveness, health and metrics', () => {
  it('GET / answers 200 {"message": string}', async () => {
    const body = expectJson(await request(`${server.matching}/`), 200, 'GET /');
    assert.equal(typeof body.message, 'string');
  });

  it('GET /healthz answers 200 {"status":"ok"}', async () => {
    const body = expectJson(await request(`${server.matching}/healthz`), 200, 'GET /healthz');
    assert.equal(body.status, 'ok');
  });

  it('GET /readyz answers 200 while the embedded store answers', async () => {
    const res = await request(`${server.matching}/readyz`);
    assert.equal(res.status, 200, `GET /readyz: ${describeResponse(res)}`);
  });

  it('GET /metrics answers in the Prometheus text format', async () => {
    const res = await request(`${server.matching}/metrics`);
    assert.equal(res.status, 200, `GET /metrics: ${describeResponse(res)}`);
    assert.match(String(res.headers['content-type']), /^text\/plain/, 'Prometheus text exposition is text/plain');
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?\s+(\S+)(\s+-?\d+)?$/;
    let samples = 0;
    for (const line of res.text.split('\n')) {
      if (line === '' || line.startsWith('#')) {
        if (line.startsWith('# TYPE ')) {
          assert.match(line, /^# TYPE \S+ (counter|gauge|histogram|summary|untyped)$/, `bad TYPE line: ${line}`);
        }
        continue;
      }
      const m = sample.exec(line);
      assert.ok(m, `not a Prometheus sample line: ${line}`);
      assert.ok(/^(NaN|[+-]Inf|[-+]?[0-9.]+(e[-+]?\d+)?)$/i.test(m[2] ?? ''), `bad sample value: ${line}`);
      samples++;
    }
    assert.ok(samples > 0, 'metrics expose at least one sample');
  });
});

describe('POST /register', () => {
  it('200 with status, message, id and an unguessable token; the server makes an id when no name is given', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const body = expectJson(await post(server, {}), 200, 'POST /register {}');
      const parsed = RegisterResponse.safeParse(body);
      assert.ok(parsed.success, `body breaks the contract: ${JSON.stringify({ ...body, token: '…' })}`);
      assert.equal(parsed.data.status, 'queued');
      assert.equal(parsed.data.message, 'User added to matching queue');
      assert.ok(parsed.data.id.length > 0, 'a server-made id');
      assert.ok(estimatedBits(parsed.data.token) >= 128, `token has at least 128 random bits (length ${parsed.data.token.length})`);
      assert.ok(!seen.has(parsed.data.id) && !seen.has(parsed.data.token), 'ids and tokens are never reused');
      seen.add(parsed.data.id).add(parsed.data.token);
    }
  });

  it('the name is the session id; names are case-sensitive; edge-length names are accepted', async () => {
    const base = uniqueName('Case');
    for (const name of [base, base.toLowerCase(), base.toUpperCase(), 'x'.repeat(30) + String(Date.now() % 90 + 10), `_.${uniqueName('e')}`]) {
      const body = expectJson(await post(server, { name }), 200, `POST /register name=${name}`);
      assert.equal(body.id, name);
    }
  });

  it('409 {"status":"exists"} for a name that has a live session', async () => {
    const name = uniqueName('dup');
    await register(server, { name });
    const body = expectJson(await post(server, { name }), 409, `POST /register name=${name} twice`);
    assert.ok(HttpError.safeParse(body).success, JSON.stringify(body));
    assert.equal(body.status, 'exists');
    assert.equal(typeof body.message, 'string');
  });

  it('every field accepts the extremes the contract allows', async () => {
    const ok: Record<string, unknown>[] = [
      { mode: 'video' },
      { mode: 'text' },
      { interests: [] },
      { interests: Array.from({ length: 10 }, (_, i) => `topic${i}`) },
      { interests: ['  padded  '] }, // trimmed before the length check
      { interests: ['😀'.repeat(32)] }, // 32 code points, 64 UTF-16 units
      { lang: 'en' },
      { lang: 'pt-BR' },
      { lang: 'a'.repeat(35) },
      // A field sent as null counts as absent.
      { name: null, mode: null, interests: null, lang: null },
    ];
    for (const body of ok) {
      const res = await post(server, body);
      assert.equal(res.status, 200, `POST /register ${JSON.stringify(body)}: ${describeResponse(res)}`);
    }
  });

  it('400 {"status":"error"} for every malformed body', async () => {
    const bad: [string, unknown][] = [
      ['invalid JSON', '{"name": '],
      ['a JSON array', '[]'],
      ['a JSON string', '"alice"'],
      ['name too long (33)', { name: 'a'.repeat(33) }],
      ['name empty', { name: '' }],
      ['name with a space', { name: 'al ice' }],
      ['name with a non-ASCII letter', { name: 'zoë' }],
      ['name without letter or digit', { name: '-._' }],
      ['name not a string', { name: 42 }],
      ['unknown mode', { mode: 'audio' }],
      ['mode not a string', { mode: true }],
      ['interests not an array', { interests: 'music' }],
      ['11 interests', { interests: Array.from({ length: 11 }, (_, i) => `t${i}`) }],
      ['blank interest', { interests: ['   '] }],
      ['interest of 33 code points', { interests: ['😀'.repeat(33)] }],
      ['interest not a string', { interests: [1] }],
      ['lang too short', { lang: 'e' }],
      ['lang too long (36)', { lang: 'a'.repeat(36) }],
      ['lang with an underscore', { lang: 'en_US' }],
      ['lang with spaces (not trimmed)', { lang: ' en ' }],
      ['lang not a string', { lang: 7 }],
    ];
    for (const [what, body] of bad) {
      const res = await post(server, body);
      const json = expectJson(res, 400, `POST /register with ${what}`);
      assert.equal(json.status, 'error', `${what}: status`);
      assert.equal(typeof json.message, 'string', `${what}: message`);
    }
  });
});

describe('GET /ice-servers', () => {
  const ice = (srv: RunningServer, authorization?: string): Promise<HttpResponse> =>
    request(`${srv.matching}/ice-servers`, { headers: authorization ? { authorization } : {} });

  it('401 without a valid bearer token', async () => {
    const { token } = await register(server);
    const cases: [string, string | undefined][] = [
      ['no Authorization header', undefined],
      ['an unknown token', 'Bearer x'.padEnd(40, 'x')],
      ['an empty bearer', 'Bearer '],
      ['the token without the Bearer scheme', token],
      ['another scheme', `Basic ${token}`],
    ];
    for (const [what, header] of cases) {
      const res = await ice(server, header);
      assert.equal(res.status, 401, `GET /ice-servers with ${what}: ${describeResponse(res)}`);
    }
  });

  it('200 with TURN REST credentials (username <expiry>:<id>, credential base64(HMAC-SHA1(secret, username))) and STUN urls', async () => {
    const { id, token } = await register(server);
    // Credentials go to sessions whose matching socket is open (ice.test.ts).
    await (await openMatching(server, id, token)).expect('waiting');
    const res = await ice(server, `Bearer ${token}`);
    const body = expectJson(res, 200, 'GET /ice-servers');
    const parsed = IceServersResponse.safeParse(body);
    assert.ok(parsed.success, `body breaks the contract: ${res.text}`);
    assert.equal(parsed.data.ttl, TURN_TTL_S, 'ttl is TURN_TTL');
    checkIceServers(parsed.data.ice_servers, id);
  });

  it('the ice_servers in "matched" carry the same kind of credentials, for the receiving session', async () => {
    const p = await pair(server);
    checkIceServers(p.ma.ice_servers, p.a.id);
    checkIceServers(p.mb.ice_servers, p.b.id);
  });

  it('with no TURN_URLS and no STUN_URLS the list points nowhere (no public default)', async () => {
    const { id, token } = await register(plain);
    await (await openMatching(plain, id, token)).expect('waiting');
    const body = expectJson(await ice(plain, `Bearer ${token}`), 200, 'GET /ice-servers (no TURN/STUN set)');
    const parsed = IceServersResponse.parse(body);
    assert.deepEqual(parsed.ice_servers.flatMap((s) => s.urls), []);
  });
});

function checkIceServers(list: { urls: string[]; username?: string; credential?: string }[], id: string): void {
  const turn = list.filter((s) => s.urls.some((u) => u.startsWith('turn:') || u.startsWith('turns:')));
  const stun = list.filter((s) => s.urls.some((u) => u.startsWith('stun:')));
  assert.deepEqual(
    turn.flatMap((s) => s.urls).sort(),
    ['turn:127.0.0.1:3478', 'turn:127.0.0.1:3478?transport=tcp'],
    'TURN urls are TURN_URLS, trimmed, empty items dropped',
  );
  assert.deepEqual(stun.flatMap((s) => s.urls), ['stun:127.0.0.1:3478'], 'STUN urls are STUN_URLS');
  for (const entry of turn) {
    const username = entry.username ?? '';
    const m = /^(\d+):(.+)$/.exec(username);
    assert.ok(m, `TURN username is <expiry-unix-seconds>:<session id>, got ${JSON.stringify(username)}`);
    assert.equal(m[2], id, 'the username names the session');
    const expiry = Number(m[1]);
    const expected = Date.now() / 1000 + TURN_TTL_S;
    assert.ok(Math.abs(expiry - expected) < 60, `expiry ${expiry} is about now + TURN_TTL (${Math.round(expected)})`);
    const credential = createHmac('sha1', TURN_SECRET).update(username).digest('base64');
    assert.equal(entry.credential, credential, 'credential is base64(HMAC-SHA1(TURN_SECRET, username))');
  }
}

describe('Origin on WebSocket upgrades, and CORS', () => {
  it('an upgrade with a foreign Origin is refused with 403 on every WebSocket endpoint', async () => {
    const { id, token } = await register(server);
    const urls: [string, 'matching' | 'signalling'][] = [
      [matchingUrl(server, id, token), 'matching'],
      [signallingUrl(server, id, token), 'signalling'],
      [oneTripUrl(server, { name: uniqueName('o') }), 'matching'],
    ];
    for (const [url, channel] of urls) {
      const attempt = await WireClient.connect(url, { channel, origin: FOREIGN, label: `${channel} with Origin ${FOREIGN}` });
      if (attempt.kind === 'open') await attempt.client.close();
      assert.equal(attempt.kind === 'refused' ? attempt.status : 101, 403, `${channel} upgrade with a foreign Origin: expected HTTP 403`);
    }
  });

  it('an upgrade with a listed Origin, or with none, is accepted', async () => {
    for (const origin of [ALLOWED, ALSO_ALLOWED, undefined]) {
      const { id, token } = await register(server);
      const attempt = await WireClient.connect(matchingUrl(server, id, token), {
        channel: 'matching',
        ...(origin ? { origin } : {}),
        label: `matching with Origin ${origin ?? '(none)'}`,
      });
      assert.equal(attempt.kind, 'open', `Origin ${origin ?? '(none)'}: ${attempt.kind === 'refused' ? `HTTP ${attempt.status}` : ''}`);
      if (attempt.kind === 'open') await attempt.client.close();
    }
  });

  it('without ALLOWED_ORIGINS: same loopback host any port is accepted, another host is refused with 403', async () => {
    const sameHost = await register(plain);
    const ok = await WireClient.connect(matchingUrl(plain, sameHost.id, sameHost.token), {
      channel: 'matching',
      origin: 'http://127.0.0.1:5173',
    });
    assert.equal(ok.kind, 'open', `Origin http://127.0.0.1:5173: ${ok.kind === 'refused' ? `HTTP ${ok.status}` : ''}`);
    if (ok.kind === 'open') await ok.client.close();

    const other = await register(plain);
    const refused = await WireClient.connect(matchingUrl(plain, other.id, other.token), { channel: 'matching', origin: FOREIGN });
    if (refused.kind === 'open') await refused.client.close();
    assert.equal(refused.kind === 'refused' ? refused.status : 101, 403, `Origin ${FOREIGN} on a server with default origins`);
  });

  it('without ALLOWED_ORIGINS: other schemes and a DNS-rebinding Host are refused (W9)', async () => {
    const port = new URL(plain.matching).port;
    const cases: { origin: string; host?: string }[] = [
      { origin: 'file://127.0.0.1' },
      { origin: 'chrome-extension://127.0.0.1' },
      { origin: 'null' },
      // A page on a name the attacker controls, made to resolve to 127.0.0.1: Origin and Host agree, but are not loopback names.
      { origin: 'http://evil.example', host: `evil.example:${port}` },
      { origin: 'http://evil.example:8080', host: `evil.example:${port}` },
    ];
    for (const { origin, host } of cases) {
      const headers = host ? { host } : undefined;
      const what = `Origin ${origin}${host ? ` with Host ${host}` : ''}`;
      const reg = await post(plain, {}, { origin, ...headers });
      assert.equal(reg.status, 403, `POST /register with ${what}: ${describeResponse(reg)}`);
      const trip = await WireClient.connect(oneTripUrl(plain), { channel: 'matching', origin, ...(headers ? { headers } : {}) });
      if (trip.kind === 'open') await trip.client.close();
      assert.equal(trip.kind === 'refused' ? trip.status : 101, 403, `one-trip upgrade with ${what}`);
      const s = await register(plain);
      const sig = await WireClient.connect(signallingUrl(plain, s.id, s.token), { channel: 'signalling', origin, ...(headers ? { headers } : {}) });
      if (sig.kind === 'open') await sig.client.close();
      assert.equal(sig.kind === 'refused' ? sig.status : 101, 403, `signalling upgrade with ${what}`);
    }
    // localhost pages still work on a loopback server.
    const ok = await post(plain, {}, { origin: 'http://localhost:5173', host: `localhost:${port}` });
    assert.equal(ok.status, 200, `POST /register from http://localhost:5173: ${describeResponse(ok)}`);
  });

  it('CORS preflight from a listed Origin allows POST /register and the Authorization header for /ice-servers', async () => {
    for (const [path, method, reqHeaders, mustAllow] of [
      ['/register', 'POST', 'content-type', 'content-type'],
      ['/ice-servers', 'GET', 'authorization', 'authorization'],
    ] as const) {
      const res = await request(`${server.matching}${path}`, {
        method: 'OPTIONS',
        headers: { origin: ALLOWED, 'access-control-request-method': method, 'access-control-request-headers': reqHeaders },
      });
      assert.ok(res.status >= 200 && res.status < 300, `OPTIONS ${path}: ${describeResponse(res)}`);
      assert.equal(res.headers['access-control-allow-origin'], ALLOWED, `OPTIONS ${path}: Access-Control-Allow-Origin`);
      const methods = String(res.headers['access-control-allow-methods'] ?? '').toUpperCase();
      assert.ok(methods.includes(method) || methods.includes('*'), `OPTIONS ${path}: Access-Control-Allow-Methods "${methods}" lacks ${method}`);
      const allowed = String(res.headers['access-control-allow-headers'] ?? '').toLowerCase();
      assert.ok(allowed.includes(mustAllow) || allowed === '*', `OPTIONS ${path}: Access-Control-Allow-Headers "${allowed}" lacks ${mustAllow}`);
    }
  });

  it('CORS answers carry the listed Origin, never a foreign one or "*"', async () => {
    const ok = await post(server, {}, { origin: ALLOWED });
    assert.equal(ok.status, 200, describeResponse(ok));
    assert.equal(ok.headers['access-control-allow-origin'], ALLOWED);

    const foreign = await post(server, {}, { origin: FOREIGN });
    const acao = foreign.headers['access-control-allow-origin'];
    assert.ok(acao === undefined || (acao !== FOREIGN && acao !== '*'), `a foreign Origin got Access-Control-Allow-Origin: ${acao}`);
    assert.ok(foreign.status === 403 || acao === undefined, `a foreign Origin: ${describeResponse(foreign)}`);
  });
});
