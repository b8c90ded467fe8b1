// Start-up settings: a value that cannot be parsed stops the process with an
// error naming the setting; lists ignore spaces and empty items; fixed ports
// are announced like port 0.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { request } from '../support/http.js';
import { SERVER_ENTRY, runUntilExit, startServer } from '../support/server.js';
import { WireClient } from '../support/ws-client.js';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe('settings refused at start', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ['GRACE_MS=soon', { GRACE_MS: 'soon' }, /GRACE_MS/],
    ['MAX_FRAME_BYTES=big', { MAX_FRAME_BYTES: 'big' }, /MAX_FRAME_BYTES/],
    ['INTEREST_TIMEOUT_MS=5s', { INTEREST_TIMEOUT_MS: '5s' }, /INTEREST_TIMEOUT_MS/],
    ['MATCHING_PORT=http', { MATCHING_PORT: 'http' }, /MATCHING_PORT/],
    ['ALLOWED_ORIGINS=*', { ALLOWED_ORIGINS: '*' }, /ALLOWED_ORIGINS/],
    ['ALLOWED_ORIGINS=file://x', { ALLOWED_ORIGINS: 'file://x' }, /ALLOWED_ORIGINS/],
    // Listening beyond loopback, the default Origin rule would not protect anyone: the pages must be named.
    ['HOST=0.0.0.0 without ALLOWED_ORIGINS', { HOST: '0.0.0.0' }, /ALLOWED_ORIGINS/],
    ['REDIS_CALL_TIMEOUT_MS=0', { REDIS_CALL_TIMEOUT_MS: '0' }, /REDIS_CALL_TIMEOUT_MS/],
    // A guessable admin token would be worse than none.
    ['ADMIN_TOKEN shorter than 16 characters', { ADMIN_TOKEN: 'short-token' }, /ADMIN_TOKEN/],
    ['an unknown role', { ROLES: 'matching,dancing' }, /ROLES|dancing/],
    // Message limits that do not fit together: a burst would count as a flood, or one session alone would not fit its address.
    ['MESSAGE_FLOOD_PER_SEC below MESSAGE_BURST', { MESSAGE_BURST: '400', MESSAGE_FLOOD_PER_SEC: '300' }, /MESSAGE_FLOOD_PER_SEC/],
    ['MESSAGE_RATE_PER_ADDR_PER_SEC below MESSAGE_RATE_PER_SEC', { MESSAGE_RATE_PER_SEC: '200', MESSAGE_RATE_PER_ADDR_PER_SEC: '100' }, /MESSAGE_RATE_PER_ADDR_PER_SEC/],
    ['MESSAGE_BURST_PER_ADDR below MESSAGE_BURST', { MESSAGE_BURST: '250', MESSAGE_BURST_PER_ADDR: '100' }, /MESSAGE_BURST_PER_ADDR/],
    ['MESSAGE_BURST=0', { MESSAGE_BURST: '0' }, /MESSAGE_BURST/],
    // The items a join delivers at once must fit: 2 x SIGNAL_BUFFER x MAX_FRAME_BYTES at least.
    ['SOCKET_SEND_BUFFER_BYTES below 2 x SIGNAL_BUFFER x MAX_FRAME_BYTES', { SOCKET_SEND_BUFFER_BYTES: '65536' }, /SOCKET_SEND_BUFFER_BYTES/],
    ['SOCKET_SEND_BUFFER_PER_ADDR_BYTES below SOCKET_SEND_BUFFER_BYTES', { SOCKET_SEND_BUFFER_PER_ADDR_BYTES: '1048576' }, /SOCKET_SEND_BUFFER_PER_ADDR_BYTES/],
    ['SOCKET_SEND_BUFFER_TOTAL_BYTES below SOCKET_SEND_BUFFER_PER_ADDR_BYTES', { SOCKET_SEND_BUFFER_TOTAL_BYTES: '3145728' }, /SOCKET_SEND_BUFFER_TOTAL_BYTES/],
    ['ADDRESS_BLOCKS_MAX=-1', { ADDRESS_BLOCKS_MAX: '-1' }, /ADDRESS_BLOCKS_MAX/],
    ['BAN_STRIKES_MAX=-1', { BAN_STRIKES_MAX: '-1' }, /BAN_STRIKES_MAX/],
    ['LIMITER_KEYS_MAX=0', { LIMITER_KEYS_MAX: '0' }, /LIMITER_KEYS_MAX/],
    ['ROLES=matching without REDIS_URL', { ROLES: 'matching' }, /REDIS_URL/],
    ['ROLES=signalling without REDIS_URL', { ROLES: 'signalling' }, /REDIS_URL/],
    // The services' paths under PUBLIC_URL are the proxy's (/matching, /signalling): a path of its own would be lost.
    ['PUBLIC_URL with a path', { PUBLIC_URL: 'https://chat.example/dyad' }, /PUBLIC_URL/],
    ['PUBLIC_URL=ftp://chat.example', { PUBLIC_URL: 'ftp://chat.example' }, /PUBLIC_URL/],
    ['NUDITY_FILTER=strict', { NUDITY_FILTER: 'strict' }, /NUDITY_FILTER/],
    ['NUDITY_THRESHOLD=1.5', { NUDITY_THRESHOLD: '1.5' }, /NUDITY_THRESHOLD/],
    ['NUDITY_THRESHOLD=high', { NUDITY_THRESHOLD: 'high' }, /NUDITY_THRESHOLD/],
    ['NUDITY_CHECK_INTERVAL_MS=10', { NUDITY_CHECK_INTERVAL_MS: '10' }, /NUDITY_CHECK_INTERVAL_MS/],
    ['REGION_FILTER=maybe', { REGION_FILTER: 'maybe' }, /REGION_FILTER/],
    // Shorter than a /16 would put whole regions' providers under one limit; longer than 128 is no prefix.
    ['IPV6_PREFIX_LENGTH=8', { IPV6_PREFIX_LENGTH: '8' }, /IPV6_PREFIX_LENGTH/],
    ['IPV6_PREFIX_LENGTH=129', { IPV6_PREFIX_LENGTH: '129' }, /IPV6_PREFIX_LENGTH/],
    // Every WebSocket is a connection: fewer connections than sockets would make the socket limit a lie.
    ['MAX_CONNECTIONS_PER_ADDR below MAX_SOCKETS_PER_ADDR', { MAX_SOCKETS_PER_ADDR: '64', MAX_CONNECTIONS_PER_ADDR: '32' }, /MAX_CONNECTIONS_PER_ADDR/],
    ['IPV6_PREFIX_LENGTH=/64', { IPV6_PREFIX_LENGTH: '/64' }, /IPV6_PREFIX_LENGTH/],
    // The IP-to-country database is read at start: a missing or unreadable file stops the process there.
    ['REGION_DB naming a missing file', { REGION_DB: '/nonexistent/dyad-countries.mmdb' }, /REGION_DB.*\/nonexistent\/dyad-countries\.mmdb/],
    ['REGION_DB naming a file that is no database', { REGION_DB: SERVER_ENTRY }, /REGION_DB/],
  ];
  for (const [what, env, names] of cases) {
    it(`${what}: the process exits non-zero with an error naming it`, async () => {
      const exit = await runUntilExit(env);
      assert.ok(!exit.timedOut, `${what}: the process kept running (it must refuse to start):\n${exit.output.slice(-1500)}`);
      assert.notEqual(exit.code, 0, `${what}: exit code`);
      assert.match(exit.output, names, `${what}: the error names the setting:\n${exit.output.slice(-1500)}`);
    });
  }
});

describe('settings accepted at start', () => {
  it('lists ignore spaces and empty items (ROLES=" matching , signalling ,, web ,")', async () => {
    const server = await startServer({ ROLES: ' matching , signalling ,, web ,' });
    try {
      assert.equal((await request(`${server.matching}/healthz`)).status, 200);
    } finally {
      await server.stop();
    }
  });

  it('/config.json hands the client the nudity filter: blur-on-detect at 0.7 every 500 ms by default, or as set', async () => {
    const [plain, set] = await Promise.all([
      startServer(),
      startServer({ NUDITY_FILTER: ' Blur-Until-Checked ', NUDITY_THRESHOLD: '0.05', NUDITY_CHECK_INTERVAL_MS: '250' }),
    ]);
    try {
      const read = async (web: string) => {
        const res = await request(`${web}/config.json`);
        assert.equal(res.status, 200);
        return res.json() as Record<string, unknown>;
      };
      const [a, b] = await Promise.all([read(plain.web), read(set.web)]);
      assert.deepEqual(
        [a.nudity_filter, a.nudity_threshold, a.nudity_check_interval_ms],
        ['blur-on-detect', 0.7, 500],
      );
      assert.deepEqual([b.nudity_filter, b.nudity_threshold, b.nudity_check_interval_ms], ['blur-until-checked', 0.05, 250]);
    } finally {
      await Promise.all([plain.stop(), set.stop()]);
    }
  });

  it('fixed ports are announced with the same listening lines', async () => {
    const [m, s] = [await freePort(), await freePort()];
    const server = await startServer({ MATCHING_PORT: String(m), SIGNALLING_PORT: String(s) });
    try {
      assert.equal(server.matching, `http://127.0.0.1:${m}`);
      assert.equal(server.signalling, `http://127.0.0.1:${s}`);
    } finally {
      await server.stop();
    }
  });
});

/** The service URLs of a /config.json body. */
const urlsOf = (body: unknown): { matching_url: unknown; signalling_url: unknown } => {
  const { matching_url, signalling_url } = body as Record<string, unknown>;
  return { matching_url, signalling_url };
};

describe('PUBLIC_URL: every service behind one https origin (deploy/Caddyfile)', () => {
  const PUBLIC = 'https://chat.example';

  it('/config.json names the services under it, and its origin is the one allowed', async () => {
    const server = await startServer({ PUBLIC_URL: `${PUBLIC}/` });
    try {
      const res = await request(`${server.web}/config.json`);
      // Only the URLs: /config.json carries other fields too (it is extended by adding).
      assert.deepEqual(urlsOf(res.json()), { matching_url: `${PUBLIC}/matching`, signalling_url: `${PUBLIC}/signalling` });
      const ok = await WireClient.connect(`${server.matchingWs}/ws?mode=text`, { channel: 'matching', origin: PUBLIC });
      assert.equal(ok.kind, 'open', `Origin ${PUBLIC}: ${ok.kind === 'refused' ? `HTTP ${ok.status} ${ok.body}` : ''}`);
      if (ok.kind === 'open') await ok.client.close();
      // It replaces the loopback default: a page on another origin is refused, even on this machine.
      const loopback = await WireClient.connect(`${server.matchingWs}/ws?mode=text`, { channel: 'matching', origin: 'http://127.0.0.1:5173' });
      if (loopback.kind === 'open') await loopback.client.close();
      assert.equal(loopback.kind === 'refused' ? loopback.status : 101, 403, 'Origin http://127.0.0.1:5173 beside PUBLIC_URL');
    } finally {
      await server.stop();
    }
  });

  it('ALLOWED_ORIGINS and PUBLIC_*_URL, when set, win over it', async () => {
    const server = await startServer({ PUBLIC_URL: PUBLIC, PUBLIC_SIGNALLING_URL: 'https://signal.chat.example', ALLOWED_ORIGINS: 'https://other.example' });
    try {
      const res = await request(`${server.web}/config.json`);
      assert.deepEqual(urlsOf(res.json()), { matching_url: `${PUBLIC}/matching`, signalling_url: 'https://signal.chat.example' });
      const refused = await WireClient.connect(`${server.matchingWs}/ws?mode=text`, { channel: 'matching', origin: PUBLIC });
      if (refused.kind === 'open') await refused.client.close();
      assert.equal(refused.kind === 'refused' ? refused.status : 101, 403, `Origin ${PUBLIC} outside ALLOWED_ORIGINS`);
    } finally {
      await server.stop();
    }
  });
});
