// Process entry: read settings, start the roles in ROLES, stop cleanly on
// SIGTERM/SIGINT (close 1001, exit 0 within 5 s).
// First, before anything allocates: how V8 ages young objects (ops/young-gen.ts).
import './ops/young-gen.js';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { pino, type Logger } from 'pino';
import { ConfigError, loadSettings, type Settings } from './config.js';
import { systemClock } from './core/clock.js';
import { Hub } from './core/hub.js';
import { iceServers } from './core/ice.js';
import { AddressHasher } from './http/client.js';
import { ConnectionCap, defaultMaxConnections, type ConnectionRefusal } from './http/connections.js';
import { clientHash, peerHash, type Context } from './http/context.js';
import { PaceBook } from './http/pace.js';
import { SendBacklog } from './http/backlog.js';
import { WaitingMessages } from './http/waiting.js';
import { ChatGuard } from './matching/chat-guard.js';
import { RecentStats } from './ops/recent-stats.js';
import { onUpgrade } from './http/socket.js';
import { CountryLookup, RegionDbError, shippedRegionDb } from './geo/locator.js';
import { GoMegleEdge } from './legacy/gomegle.js';
import { RvcEdge } from './legacy/rvc.js';
import { MatchingService } from './matching/service.js';
import { Metrics } from './ops/metrics.js';
import { onceEvery } from './ops/once-every.js';
import { SignallingService } from './signalling/service.js';
import { MemoryStore } from './store/memory.js';
import { RedisStore, checkPrefix } from './store/redis/index.js';
import type { LimiterFactory, Store } from './store/store.js';
import { createWebServer } from './web/service.js';

/**
 * The embedded store, or with REDIS_URL the Redis store, connected and announced (docs/SCALING.md),
 * with the per-address rate limiters that go with it: with Redis they are shared by every process,
 * else a client could spread its requests over them.
 */
async function createStore(settings: Settings, log: Logger): Promise<{ store: Store; limiter: LimiterFactory }> {
  if (!settings.redisUrl && !settings.redisClusterNodes) {
    const store = new MemoryStore(settings);
    return { store, limiter: (name, points, duration) => store.limiter(name, points, duration) };
  }
  const prefix = settings.redisPrefix;
  const bad = checkPrefix(prefix);
  if (bad) throw new ConfigError('REDIS_PREFIX', bad);
  const store = new RedisStore({
    ...settings,
    url: settings.redisUrl,
    cluster: settings.redisClusterNodes,
    prefix,
    callTimeoutMs: settings.redisCallTimeoutMs,
    relayLanes: settings.redisRelayLanes,
    relayBytesInFlight: settings.relayBytesInFlight,
    relayBacklogEntries: settings.relayBacklogEntries,
    log: log.child({ store: 'redis' }),
  });
  await store.start();
  return { store, limiter: (name, points, duration) => store.limiter(name, points, duration) };
}

/**
 * How often Node looks for connections past HTTP_TIMEOUT_MS. Its default, 30 s,
 * would let a slow client (slowloris) hold a connection that much longer.
 */
const timeoutCheckMs = (httpTimeoutMs: number): number => Math.max(50, Math.min(1_000, Math.floor(httpTimeoutMs / 4)));

/** Connections refused by a connection limit are logged at most this often, per limit. */
const CONNECTION_WARNING_EVERY_MS = 60_000;
/** How often the per-address paces let go of keys gone quiet when nothing else makes them look. */
const PACE_SWEEP_MS = 30_000;
/** Per limit that turns connections or requests away: its code in dyad_rejected_total, its setting, and what the log says. */
const REFUSALS: Record<ConnectionRefusal, { code: string; limit: string; warning: string }> = {
  address: { code: 'too-many-connections', limit: 'MAX_CONNECTIONS_PER_ADDR', warning: 'new connections refused: an address holds MAX_CONNECTIONS_PER_ADDR' },
  process: { code: 'connections-full', limit: 'MAX_CONNECTIONS', warning: 'new connections refused: the process holds MAX_CONNECTIONS' },
  requests: { code: 'too-many-requests', limit: 'REQUEST_RATE_PER_ADDR_PER_SEC', warning: 'requests refused: an address is past REQUEST_RATE_PER_ADDR_PER_SEC' },
  'web-requests': { code: 'too-many-requests', limit: 'WEB_REQUEST_RATE_PER_ADDR_PER_SEC', warning: 'web requests refused: an address is past WEB_REQUEST_RATE_PER_ADDR_PER_SEC' },
  chunked: { code: 'length-required', limit: 'Content-Length', warning: 'requests refused: a body sent in chunks (Transfer-Encoding) instead of with its Content-Length' },
};

const listen = (server: Server, port: number, host: string, httpTimeoutMs: number): Promise<number> =>
  new Promise((resolve, reject) => {
    // Read by Node when the server starts listening; set here once for every role's server.
    (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = timeoutCheckMs(httpTimeoutMs);
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });

async function main(): Promise<void> {
  let settings: Settings;
  try {
    settings = loadSettings();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dyad: invalid setting ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // Logs never block the process: a reader of standard output that stops reading (or is gone) costs at most
  // LOG_BUFFER_BYTES of memory and then loses log lines, never the service or a clean stop.
  const logOut = pino.destination({ dest: 1, sync: false, maxLength: LOG_BUFFER_BYTES });
  logOut.on('error', () => undefined);
  process.stdout.on('error', () => undefined);
  const log = pino({ level: settings.logLevel, base: { pid: process.pid }, redact: ['token', '*.token', 'req.url'] }, logOut);
  // The IP-to-country database, read whole once, where sessions start (issue 17): unreadable, the process stops here.
  let countries: CountryLookup | undefined;
  if (settings.regionFilter && settings.roles.includes('matching')) {
    const file = settings.regionDb ?? shippedRegionDb();
    try {
      countries = await CountryLookup.open(file);
    } catch (err) {
      if (err instanceof RegionDbError) {
        process.stderr.write(`dyad: invalid setting REGION_DB: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
  }
  let store: Store;
  let limiter: LimiterFactory;
  try {
    ({ store, limiter } = await createStore(settings, log));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dyad: invalid setting ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const hub = new Hub(store, systemClock, (id) => iceServers(settings, id, Date.now()), log, {
    paired: (p) => {
      metrics.pairs.inc({ mode: p.mode });
      for (const ms of p.waitedMs) metrics.matchWait.observe(ms / 1000);
    },
    ended: (reason) => metrics.roomsEnded.inc({ reason }),
  });
  // The store's counts for /online and /metrics: one copy, at most ONLINE_CACHE_MS old.
  const counts = new RecentStats(() => store.stats(), systemClock, settings.onlineCacheMs);
  const metrics = new Metrics(counts, () => hub, settings.onlineCacheMs);
  let accepting = true;
  const limiterOf = memo((name, points, durationSec) => {
    const made = limiter(name, points, durationSec);
    // The embedded store's limits hold their keys here: dyad_address_entries{limit} shows how many.
    if (made.size !== undefined) metrics.watchAddresses(name, made);
    return made;
  });
  const sharedKey = process.env.ADDRESS_HASH_KEY || undefined;
  const ctx: Context = {
    settings,
    store,
    hub,
    metrics,
    log,
    addresses: new AddressHasher(sharedKey, settings.ipv6PrefixLength),
    sharedKey,
    addressPaces: new PaceBook(settings.messageRatePerAddrPerSec, settings.messageBurstPerAddr),
    addressBytes: new PaceBook(settings.messageBytesPerAddrPerSec, settings.messageBytesBurstPerAddr),
    sendBacklog: new SendBacklog(settings.socketSendBufferPerAddrBytes, settings.socketSendBufferTotalBytes),
    waitingMessages: new WaitingMessages(settings.messageBytesWaitingTotal),
    // One limiter per name, from the store chosen above (shared by every process on Redis).
    limiter: limiterOf,
    chatGuard: new ChatGuard(settings, limiterOf, sharedKey),
    counts,
    ...(countries ? { locate: (address: string) => countries.place(address) } : {}),
    accepting: () => accepting,
  };

  const has = (role: string) => settings.roles.includes(role as Settings['roles'][number]);
  // The legacy protocols the operator turned on (docs/LEGACY.md): edges of their own over the same hub and store.
  const legacy = new Set(settings.legacyProtocols);
  const rvc = legacy.has('random-video-chat') && (has('matching') || has('signalling')) ? new RvcEdge(ctx) : undefined;
  const gm = legacy.has('go-megle') && has('web') ? new GoMegleEdge(ctx) : undefined;
  const matching = has('matching') ? new MatchingService(ctx, rvc?.matching) : undefined;
  const signalling = has('signalling') ? new SignallingService(ctx, rvc?.signalling) : undefined;
  const servers: Server[] = [];
  const ports = { matching: settings.matchingPort, signalling: settings.signallingPort };

  const requestPaces = new PaceBook(settings.requestRatePerAddrPerSec, settings.requestBurstPerAddr);
  metrics.watchAddresses('requests', requestPaces);
  const webRequestPaces = new PaceBook(settings.webRequestRatePerAddrPerSec, settings.webRequestBurstPerAddr);
  metrics.watchAddresses('web-requests', webRequestPaces);
  metrics.watchAddresses('messages', ctx.addressPaces);
  metrics.watchAddresses('message-bytes', ctx.addressBytes);
  // Keys gone quiet are let go as others come and go, and on a quiet process too (sixth review, S2).
  const perAddress = [requestPaces, webRequestPaces, ctx.addressPaces, ctx.addressBytes];
  setInterval(() => {
    const now = performance.now();
    for (const book of perAddress) book.sweep(now);
  }, PACE_SWEEP_MS).unref();
  // Once a minute at most for each: a full process turns everyone away, and an address at its limit may be an attack.
  const warnings = onceEvery(CONNECTION_WARNING_EVERY_MS);
  const warnOnce = (key: string, fields: object, message: string): void => warnings(key, () => log.warn(fields, message));
  const cap = new ConnectionCap(
    {
      total: settings.maxConnections || defaultMaxConnections(),
      // Behind a trusted proxy every connection comes from the proxy: it is the one to limit them per client.
      ...(settings.trustProxy ? {} : { perAddress: { max: settings.maxConnectionsPerAddr, keyOf: (socket) => peerHash(ctx, socket) } }),
      requests: {
        book: requestPaces,
        keyOf: (req) => clientHash(ctx, req),
      },
      webRequests: webRequestPaces,
      upgradeIdleMs: settings.httpTimeoutMs,
    },
    (why) => {
      const refusal = REFUSALS[why];
      metrics.rejected.inc({ code: refusal.code });
      warnOnce(why, { limit: refusal.limit }, refusal.warning);
    },
  );
  const start = async (name: string, server: Server, port: number): Promise<number> => {
    cap.watch(server, { requests: name === 'web' ? 'web' : 'services' });
    const bound = await listen(server, port, settings.host, settings.httpTimeoutMs);
    // Listening, an error of the listening socket is a connection lost, never the process: Node
    // reports an accept that failed (at the open-file limit, when libuv cannot shed it) here.
    server.on('error', (err) => warnOnce('accept', { err, role: name }, 'accepting a connection failed'));
    servers.push(server);
    const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
    process.stdout.write(`${name} listening on http://${host}:${bound}\n`);
    return bound;
  };
  if (matching) ports.matching = await start('matching', matching.server, settings.matchingPort);
  if (signalling) ports.signalling = await start('signalling', signalling.server, settings.signallingPort);
  if (has('web')) {
    const web = createWebServer(settings, { matchingPort: () => ports.matching, signallingPort: () => ports.signalling }, log);
    if (gm) onUpgrade(web, log, (req, socket, head) => gm.upgrade(req, socket, head));
    await start('web', web, settings.webPort);
  }
  if (countries) log.info({ db: settings.regionDb ?? 'shipped', ...countries.about }, 'region filter on');
  log.info({ roles: settings.roles, store: settings.redisClusterNodes ? 'redis-cluster' : settings.redisUrl ? 'redis' : 'memory', legacy: settings.legacyProtocols }, 'started');

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    accepting = false;
    // Armed before anything else can wait: whatever happens below, the process exits in time.
    const deadline = setTimeout(() => exitNow(logOut), settings.shutdownTimeoutMs);
    deadline.unref();
    log.info({ signal }, 'shutting down');
    for (const s of servers) s.close();
    matching?.edge.closeAll();
    signalling?.edge.closeAll();
    rvc?.closeAll();
    gm?.closeAll();
    try {
      await hub.run(await store.shutdown(Date.now()));
    } catch (err) {
      log.error({ err }, 'store release failed');
    }
    hub.close();
    // Give clients a moment to answer the close frame, then drop whatever is left.
    await waitForClients([matching?.edge.wss, signalling?.edge.wss, rvc?.matchingEdge.wss, rvc?.signallingEdge.wss, gm?.edge.wss], SOCKET_CLOSE_WAIT_MS);
    for (const s of servers) s.closeAllConnections();
    await store.close();
    log.info('stopped');
    await flushLog(logOut, LOG_FLUSH_WAIT_MS);
    exitNow(logOut);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/** One limiter per name, so that services counting the same thing share it. */
function memo<L>(make: (name: string, points: number, durationSec: number) => L): (name: string, points: number, durationSec: number) => L {
  const made = new Map<string, L>();
  return (name, points, durationSec) => {
    let l = made.get(name);
    if (!l) made.set(name, (l = make(name, points, durationSec)));
    return l;
  };
}

/** Log lines waiting for a slow standard output beyond this many bytes are dropped. */
const LOG_BUFFER_BYTES = 4 * 1024 * 1024;
/** How long a stopping process waits for its last log lines to be written. */
const LOG_FLUSH_WAIT_MS = 200;

/** Write out what the log holds and let it go, waiting at most `ms` (a reader that stopped reading must not hold the exit). */
function flushLog(out: { end(): void; once(event: 'close', cb: () => void): unknown }, ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
    out.once('close', resolve);
    try {
      out.end();
    } catch {
      resolve();
    }
  });
}

/**
 * Exit 0 at once. The log is let go first: otherwise its exit hook would write out what is still buffered,
 * synchronously, and wait for ever on a reader that stopped reading.
 */
function exitNow(out: { destroy(): void }): never {
  try {
    out.destroy();
  } catch {
    // nothing left to release
  }
  process.exit(0);
}

/** How long a stopping process waits for clients to complete the close handshake. */
const SOCKET_CLOSE_WAIT_MS = 1_000;

async function waitForClients(servers: ({ clients: Set<{ terminate(): void }> } | undefined)[], ms: number): Promise<void> {
  const end = Date.now() + ms;
  const open = () => servers.reduce((n, s) => n + (s?.clients.size ?? 0), 0);
  while (open() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  for (const s of servers) for (const ws of s?.clients ?? []) ws.terminate();
}

main().catch((err: unknown) => {
  process.stderr.write(`dyad: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
