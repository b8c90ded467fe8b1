// Random and malformed HTTP requests (seeded, bounded) at the three listeners
// of one process (matching, signalling and web ports), on both stores, sent
// as raw bytes. Whatever arrives, the process stays up and logs no error,
// never answers 5xx, answers every complete request with a well-formed HTTP
// response (on the matching and signalling ports with the contract's JSON
// error body), leaks no stack trace or file, and afterwards a normal pair
// still registers, matches, signals and chats.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { HttpError } from '@dyad/protocol';
import { leaveAll, normalSession, register, uniqueName } from '../support/dyad.js';
import { rawExchange, type RawOutcome, type RawResponse } from '../support/raw-http.js';
import type { RunningServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import { WireClient, sleep } from '../support/ws-client.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_251_124);
const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
const ADMIN_TOKEN = 'http-fuzz-admin-token';
const MAX_FRAME_BYTES = 16_384;
/** A valid Sec-WebSocket-Key (RFC 6455 section 1.3). */
const GOOD_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const LOG_SETTLE_MS = 50;

after(() => stopPrivateRedis());
afterEach(() => WireClient.closeAll());

type Target = 'matching' | 'signalling' | 'web';
type Framing = 'length' | 'none' | 'chunked' | 'short' | 'long' | 'bad-length' | 'length-and-chunked';

/** A request as fields, rendered to bytes at send time; `{TOKEN}`, `{ID}`, `{ADMIN}`, `{HOST}` stand for live values. */
interface Spec {
  target: Target;
  method: string;
  path: string;
  version: string;
  headers: [string, string][];
  body: Buffer;
  framing: Framing;
}
type Sent = { kind: 'spec'; spec: Spec } | { kind: 'raw'; target: Target; bytes: Buffer };

// ---------------------------------------------------------------- arbitraries

const ROUTES = [
  '/', '/healthz', '/readyz', '/metrics', '/register', '/ice-servers', '/admin/stats', '/admin/bans', '/admin/bans/{ID}',
  '/ws', '/ws/{ID}', '/ws/{ID}?token={TOKEN}', '/ws?name={ID}', '/ws?mode=text&interests=a,b&lang=en', '/config.json', '/index.html', '/favicon.svg', '/assets/',
];
const NASTY_PATHS = [
  '/../../../../etc/passwd', '/..%2f..%2f..%2fetc%2fpasswd', '/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2f..%2f..%2fpackage.json',
  '/assets/../../../package.json', '/ws/%E0%A4%A', '/ws/%E0%A4%A?token={TOKEN}', '/ws/..%2f{ID}?token={TOKEN}', '/ws/{ID}%00?token={TOKEN}',
  '/ws/{ID}?token={TOKEN}&token=x', '/ws?name=%ZZ', '/admin/bans/%ZZ', '/admin/bans/%E0%A4%A', '/admin/bans/..%2f..', '/%00', '/index.html%00.js',
  '//', '/.env', '/.git/config', '*', 'http://evil.example/', '/register?__proto__[name]=x', '/register/', '/REGISTER', '/ws/', '/ws//',
];
const HEADER_NAMES = [
  'Host', 'Content-Type', 'X-Forwarded-For', 'Origin', 'Authorization', 'Upgrade', 'Connection', 'Sec-WebSocket-Key',
  'Sec-WebSocket-Version', 'Sec-WebSocket-Extensions', 'Sec-WebSocket-Protocol', 'Expect', 'Transfer-Encoding', 'Cookie',
  'Accept-Encoding', 'Range', 'If-None-Match', 'X-Forwarded-Proto', 'Access-Control-Request-Method', 'Access-Control-Request-Headers',
];
const HEADER_VALUES = [
  '', ' ', 'null', '{HOST}', '[', 'a b', '127.0.0.1:0', 'http://evil.example', 'http://127.0.0.1:1', 'file://', 'null, null',
  'Bearer {TOKEN}', 'Bearer {ADMIN}', 'Bearer {ID}', 'Bearer ', 'Basic {TOKEN}', 'bearer {ADMIN}', 'Bearer {ADMIN}{ADMIN}',
  'application/json', 'text/plain', 'application/json; charset=utf-7', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded',
  '1.2.3.4', '1.2.3.4, 5.6.7.8', ', , ,', '::1', '999.999.999.999', 'unknown', '"quoted"', '100-continue', 'chunked', 'gzip, chunked',
  'websocket', 'Upgrade', 'keep-alive', 'close', '13', '8', '-1', 'bytes=0-1', 'bytes=9-1', '*', 'permessage-deflate', 'x; y=',
];
const headerValue = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...HEADER_VALUES) },
  { weight: 2, arbitrary: fc.string({ maxLength: 80 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40, unit: 'binary-ascii' }) },
  { weight: 1, arbitrary: fc.nat(20_000).map((n) => 'v'.repeat(n)) },
  { weight: 1, arbitrary: fc.array(fc.ipV4(), { minLength: 1, maxLength: 50 }).map((a) => a.join(', ')) },
);
const header = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...HEADER_NAMES), headerValue) },
  { weight: 1, arbitrary: fc.tuple(fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/), headerValue) },
  { weight: 1, arbitrary: fc.tuple(fc.string({ minLength: 1, maxLength: 20, unit: 'binary-ascii' }), fc.string({ maxLength: 20, unit: 'binary-ascii' })) },
);
/** The WebSocket handshake headers, each maybe broken. */
const handshake = fc
  .record({
    upgrade: fc.constantFrom('websocket', 'WebSocket', 'h2c', '', 'websocket, h2c'),
    connection: fc.constantFrom('Upgrade', 'upgrade', 'keep-alive, Upgrade', 'close'),
    key: fc.oneof(fc.constant(GOOD_KEY), fc.base64String({ maxLength: 30 }), fc.constant('')),
    version: fc.constantFrom('13', '8', '12', '', '13, 8', 'x'),
    extra: fc.option(fc.tuple(fc.constantFrom('Sec-WebSocket-Extensions', 'Sec-WebSocket-Protocol'), fc.constantFrom('permessage-deflate', 'x; y=', ',,', 'a b', 'chat'))),
  })
  .map(({ upgrade, connection, key, version, extra }): [string, string][] => [
    ['Upgrade', upgrade],
    ['Connection', connection],
    ['Sec-WebSocket-Key', key],
    ['Sec-WebSocket-Version', version],
    ...(extra ? [extra] : []),
  ]);

const anyJson = fc.jsonValue({ maxDepth: 2 });
const jsonText = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
  fc.record({ name: anyJson, mode: anyJson, interests: anyJson, lang: anyJson }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
  fc.constantFrom(
    '{"__proto__":{"name":"polluted"}}',
    '{"constructor":{"prototype":{"name":"polluted"}}}',
    '{"__proto__":null,"name":null}',
    '{"name":"x","__proto__":{"mode":"text","toString":1}}',
    '{"toString":"x","valueOf":1,"hasOwnProperty":2}',
    '1e999999', '-0', '123456789012345678901234567890', '{"interests":[1e999,-1e999,0]}', 'NaN', 'undefined', '{"name":"\\ud800"}', '{"name":"a\\u0000b"}',
  ),
  fc.nat(7_000).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.nat(3_000).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
  fc.string({ maxLength: 200, unit: 'binary' }),
);
const body = fc.oneof(
  { weight: 1, arbitrary: fc.constant(Buffer.alloc(0)) },
  { weight: 5, arbitrary: jsonText.map((s) => Buffer.from(s, 'utf8')) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.nat(3 * MAX_FRAME_BYTES).map((n) => Buffer.from(`{"name":"${'x'.repeat(n)}"}`)) },
);
const path = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ROUTES) },
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_PATHS) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...ROUTES), fc.webSegment()).map(([r, s]) => `${r}${r.includes('?') ? '&' : '?'}${s}`) },
  { weight: 1, arbitrary: fc.nat(20_000).map((n) => `/${'a'.repeat(n)}`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60, unit: 'binary-ascii' }).map((s) => `/${s}`) },
);
/** Requests at one port. */
const specAt = (target: Target): fc.Arbitrary<Spec> => fc
  .record({
    method: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD') },
      { weight: 1, arbitrary: fc.constantFrom('TRACE', 'CONNECT', 'BREW', 'get', 'M-SEARCH', 'PROPFIND', '') },
      { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,12}$/) },
    ),
    path,
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1x'),
    host: fc.boolean(),
    upgrade: fc.option(handshake, { freq: 3 }),
    headers: fc.array(header, { maxLength: 6 }),
    // A header sent twice or three times, with different values.
    repeated: fc.option(fc.tuple(fc.constantFrom(...HEADER_NAMES), fc.array(headerValue, { minLength: 2, maxLength: 3 }))),
    body,
    framing: fc.constantFrom<Framing>('length', 'length', 'length', 'none', 'chunked', 'short', 'long', 'bad-length', 'length-and-chunked'),
  })
  .map(({ host, upgrade, headers, repeated, ...rest }) => ({
    ...rest,
    target,
    headers: [
      ...(host ? ([['Host', '{HOST}']] as [string, string][]) : []),
      ...(upgrade ?? []),
      ...headers,
      ...(repeated ? repeated[1].map((v): [string, string] => [repeated[0], v]) : []),
    ],
  }));
const RAW_REQUESTS = [
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: {HOST}\r\n Folded: header\r\n\r\n',
  'GET / HTTP/1.1\nHost: {HOST}\n\n',
  'GET /\r\n\r\n',
  '\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
  'POST /register HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
  'POST /register HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nGET /admin/bans HTTP/1.1\r\nHost: {HOST}\r\n\r\n',
];
const sentAt = (target: Target): fc.Arbitrary<Sent> =>
  fc.oneof(
    { weight: 12, arbitrary: specAt(target).map((spec) => ({ kind: 'spec' as const, spec })) },
    {
      weight: 1,
      arbitrary: fc
        .oneof(fc.constantFrom(...RAW_REQUESTS), fc.string({ maxLength: 200, unit: 'binary-ascii' }))
        .map((text) => ({ kind: 'raw' as const, target, bytes: Buffer.from(`${text}\r\n\r\n`, 'latin1') })),
    },
  );

// ---------------------------------------------------------------- rendering

interface Live {
  urls: Record<Target, string>;
  id: string;
  token: string;
}

function fill(text: string, live: Live, target: Target): string {
  return text
    .replaceAll('{TOKEN}', live.token)
    .replaceAll('{ID}', live.id)
    .replaceAll('{ADMIN}', ADMIN_TOKEN)
    .replaceAll('{HOST}', new URL(live.urls[target]).host);
}

/** The request's bytes, and whether it is complete (an incomplete one is half-closed after sending). */
function render(s: Spec, live: Live): { bytes: Buffer; complete: boolean } {
  const head = [`${s.method} ${fill(s.path, live, s.target)} ${s.version}`];
  for (const [name, value] of s.headers) head.push(`${name}: ${fill(value, live, s.target)}`);
  let payload = s.body;
  switch (s.framing) {
    case 'length':
      if (s.body.length > 0 || s.method === 'POST') head.push(`Content-Length: ${s.body.length}`);
      break;
    case 'none':
      break;
    case 'chunked':
      head.push('Transfer-Encoding: chunked');
      payload = Buffer.concat([s.body.length > 0 ? Buffer.concat([Buffer.from(`${s.body.length.toString(16)}\r\n`), s.body, Buffer.from('\r\n')]) : Buffer.alloc(0), Buffer.from('0\r\n\r\n')]);
      break;
    case 'short':
      head.push(`Content-Length: ${Math.floor(s.body.length / 2)}`);
      break;
    case 'long':
      head.push(`Content-Length: ${s.body.length + 10}`);
      break;
    case 'bad-length':
      head.push(`Content-Length: ${['abc', '-1', '1e3', '0x10', '1,2', ''][s.body.length % 6]}`);
      break;
    case 'length-and-chunked':
      head.push(`Content-Length: ${s.body.length}`, 'Transfer-Encoding: chunked');
      break;
  }
  return { bytes: Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), payload]), complete: s.framing !== 'long' };
}

// ---------------------------------------------------------------- checks

/** What an answer must never carry: a stack trace, a file of ours, a system file. */
const LEAK = /\n\s+at |node:internal|file:\/\/|\/work\/|packages\/server|\.[jt]s:\d+:\d+|root:x:0:0/;
/** Statuses Node's HTTP server answers with itself (no body), before any handler runs: bad framing, huge headers, an Expect it cannot meet. */
const PARSER_STATUSES: ReadonlySet<number> = new Set([400, 408, 413, 414, 417, 431]);

function checkResponse(r: RawResponse, target: Target, method: string, what: string): void {
  assert.ok(r.status < 500, `${what}: answered ${r.statusLine}: ${r.body.toString('utf8').slice(0, 200)}`);
  const lengths = r.headers.get('content-length') ?? [];
  assert.ok(lengths.length <= 1, `${what}: ${lengths.length} Content-Length headers`);
  const text = r.body.toString('utf8');
  const type = r.headers.get('content-type')?.[0] ?? '';
  if (r.status === 101) return;
  const isJson = type.startsWith('application/json');
  if (isJson && r.body.length > 0) assert.doesNotThrow(() => JSON.parse(text), `${what}: a JSON Content-Type with a body that is not JSON: ${text.slice(0, 200)}`);
  if (target === 'web') {
    if (isJson && r.status >= 400 && r.body.length > 0) assert.ok(HttpError.safeParse(JSON.parse(text)).success, `${what}: ${text.slice(0, 200)}`);
    assert.doesNotMatch(text, /root:x:0:0/, `${what}: served a system file`);
    return;
  }
  assert.doesNotMatch(text, LEAK, `${what}: the answer leaks internals: ${text.slice(0, 300)}`);
  if (r.status < 400) return;
  if (type === '' && r.body.length === 0) {
    assert.ok(PARSER_STATUSES.has(r.status), `${what}: ${r.statusLine} without a body`);
    return;
  }
  assert.ok(isJson, `${what}: ${r.statusLine} with Content-Type "${type}", not the contract's JSON error: ${text.slice(0, 200)}`);
  if (method !== 'HEAD') {
    const parsed = HttpError.safeParse(JSON.parse(text));
    assert.ok(parsed.success, `${what}: ${r.statusLine} with a body that is not the contract's error: ${text.slice(0, 200)}`);
  }
}

function checkOutcome(outcome: RawOutcome, target: Target, method: string, complete: boolean, what: string): void {
  if (outcome.kind === 'response') return checkResponse(outcome.response, target, method, what);
  // Only a request left incomplete, or CONNECT (Node drops it: nothing here is a proxy), may end without an
  // answer; and one Node's parser refuses, whose socket it destroys with our bytes unread: the RST may
  // then overtake its 400.
  assert.ok(!complete || method === 'CONNECT' || outcome.reset, `${what}: the connection closed without an answer`);
  assert.equal(outcome.received.length, 0, `${what}: the connection closed in the middle of an answer: ${outcome.received.toString('latin1').slice(0, 200)}`);
}

function describeSent(s: Sent): string {
  if (s.kind === 'raw') return `raw bytes to ${s.target}: ${JSON.stringify(s.bytes.toString('latin1').slice(0, 120))}`;
  const { spec: r } = s;
  const headers = r.headers.map(([n, v]) => `${n}: ${v.length > 40 ? `${v.slice(0, 40)}…(${v.length})` : v}`).join(' | ');
  return `${r.method} ${r.path.length > 80 ? `${r.path.slice(0, 80)}…(${r.path.length})` : r.path} ${r.version} to ${r.target} [${headers}] framing=${r.framing} body=${r.body.length}B`;
}

/** The process is up, and wrote no error and no unhandled rejection since `mark`. */
function checkServerHealthy(server: RunningServer, mark: number): void {
  assert.equal(server.process.exitCode, null, `the server exited:\n${server.output().slice(-3000)}`);
  assert.equal(server.process.signalCode, null, `the server was killed:\n${server.output().slice(-3000)}`);
  const out = server.outputSince(mark);
  assert.doesNotMatch(out, /unhandled|uncaught/i, `the server reported an unhandled error:\n${out.slice(-3000)}`);
  const errors = out.split('\n').filter((l) => /"level":(50|60)/.test(l));
  assert.deepEqual(errors, [], 'the server logged errors');
}

// ---------------------------------------------------------------- tests

for (const store of STORES) {
  describe(`HTTP fuzz on the ${store} store`, () => {
    let server: RunningServer;
    let live: Live;

    before(async () => {
      server = await startServerOn(store, {
        ADMIN_TOKEN,
        // The fuzz sends many wrong admin tokens; the lock that follows is tested in moderation.test.ts.
        ADMIN_FAILURES_PER_MIN: '100000',
        TRUST_PROXY: 'true',
        MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
        TURN_URLS: 'turn:127.0.0.1:3478',
        TURN_SECRET: 'http-fuzz-secret',
        // Sessions whose sockets the fuzz opens and drops stay away, never paired, for the whole run.
        GRACE_MS: '60000',
        HTTP_TIMEOUT_MS: '2000',
      });
      const owner = await register(server, { name: uniqueName('fuzzed') });
      live = { urls: { matching: server.matching, signalling: server.signalling, web: server.web }, ...owner };
    });
    after(async () => {
      await WireClient.closeAll();
      await server?.stop();
    });

    for (const target of ['matching', 'signalling', 'web'] as const) {
      it(`random and malformed requests at the ${target} port (seed ${SEED}, ${RUNS} runs) get well-formed answers, never 5xx, and leave the process serving`, async () => {
        const mark = server.mark();
        await fc.assert(
          fc.asyncProperty(fc.array(sentAt(target), { minLength: 1, maxLength: 4 }), async (requests) => {
            for (const r of requests) {
              const { bytes, complete } = r.kind === 'spec' ? render(r.spec, live) : { bytes: Buffer.from(fill(r.bytes.toString('latin1'), live, target), 'latin1'), complete: false };
              const method = r.kind === 'spec' ? r.spec.method : '';
              const outcome = await rawExchange(live.urls[target], bytes, { head: method === 'HEAD', endAfterWrite: !complete });
              checkOutcome(outcome, target, method, complete, describeSent(r));
            }
            checkServerHealthy(server, mark);
          }),
          { seed: SEED, numRuns: RUNS },
        );
      });
    }

    it('afterwards a normal pair still registers, matches, signals and chats', async () => {
      const mark = server.mark();
      const p = await normalSession(server);
      await leaveAll(p.a, p.b);
      checkServerHealthy(server, mark);
    });

    describe('malformed requests the fuzz found, one by one', () => {
      const raw = (target: Target, text: string, opts: { endAfterWrite?: boolean } = {}) =>
        rawExchange(live.urls[target], Buffer.from(fill(text, live, target), 'latin1'), opts);
      /** An upgrade request; `version` null sends no Sec-WebSocket-Version header. */
      const upgrade = (target: 'matching' | 'signalling', path: string, key = GOOD_KEY, version: string | null = '13') =>
        raw(target, `GET ${path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n${version === null ? '' : `Sec-WebSocket-Version: ${version}\r\n`}\r\n`);
      const expectJsonError = (outcome: RawOutcome, status: number, what: string): HttpError => {
        assert.equal(outcome.kind, 'response', `${what}: no answer`);
        const r = (outcome as { response: RawResponse }).response;
        assert.equal(r.status, status, `${what}: ${r.statusLine} ${r.body.toString('utf8').slice(0, 200)}`);
        const type = r.headers.get('content-type')?.[0] ?? '';
        assert.match(type, /^application\/json/, `${what}: ${r.statusLine} with Content-Type "${type}": ${r.body.toString('utf8').slice(0, 200)}`);
        return HttpError.parse(JSON.parse(r.body.toString('utf8')));
      };
      let mark = 0;
      before(() => {
        mark = server.mark();
      });
      afterEach(async () => {
        // The server's log reaches us through a pipe, a moment after its answer.
        await sleep(LOG_SETTLE_MS);
        const since = mark;
        mark = server.mark();
        checkServerHealthy(server, since);
      });

      it('a Host header that is no host: GET /config.json still answers, and the process lives', async () => {
        const outcome = await raw('web', 'GET /config.json HTTP/1.1\r\nHost: [\r\n\r\n');
        assert.equal(outcome.kind === 'response' ? outcome.response.status : 0, 200);
      });

      it('a Range the web port cannot serve (start after end) is ignored, and the process lives', async () => {
        const outcome = await raw('web', 'GET /index.html HTTP/1.1\r\nHost: {HOST}\r\nRange: bytes=29-1\r\n\r\n');
        assert.equal(outcome.kind === 'response' ? outcome.response.status : 0, 200);
      });

      for (const target of ['matching', 'signalling'] as const) {
        it(`${target}: an upgrade to a path with a malformed percent-escape or to "//" gets a 4xx JSON error, not 503`, async () => {
          expectJsonError(await upgrade(target, '/ws/%E0%A4%A?token={TOKEN}'), 401, 'a malformed escape in the session id');
          const slashes = await upgrade(target, '//');
          assert.equal(slashes.kind, 'response');
          const status = (slashes as { response: RawResponse }).response.status;
          assert.ok(status >= 400 && status < 500, `"//": ${status}`);
          expectJsonError(slashes, status, 'an upgrade to "//"');
        });

        it(`${target}: a broken WebSocket handshake with a valid token gets 400 with the contract's JSON error`, async () => {
          for (const key of ['', 'short==', `${GOOD_KEY}x`]) {
            expectJsonError(await upgrade(target, '/ws/{ID}?token={TOKEN}', key), 400, `Sec-WebSocket-Key "${key}"`);
          }
        });
      }

      for (const target of ['matching', 'signalling'] as const) {
        it(`${target}: a WebSocket version this server does not speak gets 426 naming the ones it does (RFC 6455 4.2.2); a missing one gets 400`, async () => {
          const withVersion = (version: string | undefined) => upgrade(target, '/ws/{ID}?token={TOKEN}', GOOD_KEY, version ?? null);
          for (const version of ['7', '14']) {
            const outcome = await withVersion(version);
            const error = expectJsonError(outcome, 426, `Sec-WebSocket-Version ${version}`);
            assert.match(error.message, /is not supported \(13, 8 are\)/);
            const r = (outcome as { response: RawResponse }).response;
            assert.equal(r.statusLine, 'HTTP/1.1 426 Upgrade Required');
            assert.deepEqual(r.headers.get('sec-websocket-version'), ['13, 8'], `Sec-WebSocket-Version ${version}: the versions understood`);
          }
          for (const version of [undefined, '', 'x', '13, 8']) expectJsonError(await withVersion(version), 400, `Sec-WebSocket-Version ${JSON.stringify(version)}`);
        });
      }

      it('a one-trip start with a broken handshake creates no session', async () => {
        const name = uniqueName('broken');
        expectJsonError(await upgrade('matching', `/ws?name=${name}`, 'not-a-key'), 400, 'a one-trip start with a broken key');
        await register(server, { name });
      });

      it('an admin DELETE of a hash that is no percent-encoding is 404', async () => {
        const error = expectJsonError(
          await raw('matching', `DELETE /admin/bans/%E0%A4%A HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {ADMIN}\r\n\r\n`),
          404,
          'DELETE /admin/bans/%E0%A4%A',
        );
        assert.equal(error.status, 'error');
      });

      it('a client that leaves in the middle of a POST body causes no server error', async () => {
        const outcome = await raw('matching', 'POST /register HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\n{"name":', { endAfterWrite: true });
        assert.ok(outcome.kind === 'closed' || outcome.response.status < 500, 'no 5xx for an abandoned body');
        // The server notices the end asynchronously: a request after it orders the check.
        await register(server);
      });

      it('prototype keys are plain data: __proto__ and constructor set no field of a registration or a message', async () => {
        const planted = uniqueName('planted');
        for (const text of [`{"__proto__":{"name":"${planted}"}}`, `{"constructor":{"prototype":{"name":"${planted}"}}}`]) {
          const outcome = await raw('matching', `POST /register HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
          assert.equal(outcome.kind, 'response');
          const body = JSON.parse((outcome as { response: RawResponse }).response.body.toString('utf8')) as { id?: string };
          assert.notEqual(body.id, planted, `${text} named the session`);
        }
        const p = await normalSession(server);
        p.a.m.send(`{"event":"chat","__proto__":{"message":"planted"}}`);
        await p.a.m.expectError('bad-request', { what: 'a chat whose message only its prototype carries' });
        await p.b.m.expectSilence(0, { why: 'nothing was relayed' });
        await leaveAll(p.a, p.b);
      });
    });
  });
}
