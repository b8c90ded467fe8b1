// The matching service: POST /register, /ice-servers, and the matching
// WebSocket (one-trip `/ws?...` and `/ws/{id}?token=`). A thin edge: every
// decision is the store's.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  ChatSeenParam,
  MatchingClientMessage,
  RegisterRequest,
  normalizeInterests,
  normalizeLang,
  parseObject,
  type RegisterResponse,
} from '@dyad/protocol';
import { clientAddress, originAllowed } from '../http/client.js';
import type { ServiceExtension } from '../http/extension.js';
import { ClientGoneError, banRefusal, bannedRefusal, clientHash, readBody, sendJson, serveOps, sessionAccess, slowDown, takePoint, type Context, type Refusal } from '../http/context.js';
import { PaceBook } from '../http/pace.js';
import { HeldConnection, SocketEdge, onUpgrade, refuseUpgrade, socketCount, upgradeTarget } from '../http/socket.js';
import { iceServers } from '../core/ice.js';
import type { Connection } from '../core/hub.js';
import { emptyEffects, isRefused, type Effects, type Limiter } from '../store/store.js';
import { AdminApi } from './admin.js';
import { OnlineCounts } from './online.js';
import { PROOF_SPENT, ProofOfWork, powKey } from './pow.js';
import { newToken } from '../core/ids.js';
import { wantedPlace, type Place } from '../geo/regions.js';

type Registered = { id: string; token: string };

/** The renewal sweep of TURN credentials runs at least this far apart, however short TURN_TTL is. */
const ICE_RENEWAL_MIN_INTERVAL_MS = 250;


/** The one key of a limit counted over all addresses together. */
const ALL_ADDRESSES = 'all';

export class MatchingService {
  readonly server: Server;
  readonly edge: SocketEdge<typeof MatchingClientMessage>;
  /** GET /online's pace per address: ONLINE_RATE_PER_MIN at once, then that many a minute (per process). */
  private readonly onlineRequests: PaceBook;
  /** Address-wide blocks per blocking address within BLOCK_MS (BLOCKS_PER_ADDR; none when 0). */
  private readonly addressBlocks: Limiter | undefined;
  /** Recorded reports per reporting address within REPORT_WINDOW_MS (REPORTS_PER_ADDR; none when 0). */
  private readonly reportsMade: Limiter | undefined;
  /** Reports recorded from all addresses in the current window (REPORTS_KEPT_MAX), under one key. */
  private readonly reportsKept: Limiter | undefined;
  private readonly online: OnlineCounts;
  private readonly admin: AdminApi | undefined;
  private readonly pow: ProofOfWork;

  constructor(
    private readonly ctx: Context,
    /** The legacy random-video-chat edge, when LEGACY_PROTOCOLS turns it on. */
    private readonly extension: ServiceExtension = {},
  ) {
    const { settings, hub, metrics, log, store } = ctx;
    this.pow = new ProofOfWork(settings, powKey(settings, ctx.sharedKey), ctx.limiter);
    this.onlineRequests = new PaceBook(settings.onlineRatePerMin / 60, settings.onlineRatePerMin);
    ctx.metrics.watchAddresses('online', this.onlineRequests);
    this.addressBlocks = settings.blocksPerAddr > 0 ? ctx.limiter('address-blocks', settings.blocksPerAddr, Math.ceil(settings.blockMs / 1000)) : undefined;
    this.reportsMade = settings.reportsPerAddr > 0 ? ctx.limiter('reports-made', settings.reportsPerAddr, Math.ceil(settings.reportWindowMs / 1000)) : undefined;
    this.reportsKept = settings.reportsKeptMax > 0 ? ctx.limiter('reports-kept', settings.reportsKeptMax, Math.ceil(settings.reportWindowMs / 1000)) : undefined;
    this.online = new OnlineCounts(ctx.counts);
    this.admin = settings.adminToken ? new AdminApi(ctx, settings.adminToken) : undefined;
    this.edge = new SocketEdge('matching', MatchingClientMessage, hub, settings, metrics, log, {
      message: (msg, conn) => {
        const now = hub.clock.now();
        switch (msg.event) {
          case 'next':
            // A `next` still queued when its socket began to close is not run: it would pair
            // someone with a member who has gone (a clean close then ends the room as a leave).
            // Looked at a microtask later, once the rest of the read it came in (its close frame) is parsed.
            return Promise.resolve().then(() =>
              conn.isOpen()
                ? store.next(conn.session, conn.id, now).then((r) => (isRefused(r) ? this.refuse(conn, 'rate-limited', `more than ${settings.nextRatePerMin} nexts a minute`) : r))
                : emptyEffects(),
            );
          case 'stop':
            return store.stop(conn.session, conn.id, now);
          case 'chat':
            return ctx.chatGuard.check(conn.addr, conn.session, msg.message).then((v) =>
              v.ok ? store.chat(conn.session, conn.id, v.message, now) : this.refuse(conn, 'rate-limited', v.message),
            );
          case 'typing':
            return store.typing(conn.session, conn.id, msg.typing);
          case 'report':
            return this.report(conn, msg.reason, now);
          case 'block':
            return this.within(this.addressBlocks, conn.addr).then((wide) => store.block(conn.session, conn.id, now, wide));
        }
      },
      closed: (conn, left) => store.detachMatching(conn.session, conn.id, left, hub.clock.now()),
      attach: (conn, token, seen) => store.attachMatching(conn.session, token, conn.id, hub.clock.now(), seen),
       }, socketCount(store, settings.maxSocketsPerAddr), ctx);
    this.server = createServer({ headersTimeout: settings.httpTimeoutMs, requestTimeout: settings.httpTimeoutMs }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (err instanceof ClientGoneError) return log.debug({ err: err.message }, 'request abandoned');
        log.error({ err }, 'request failed');
        if (!res.headersSent) sendJson(res, 500, { status: 'error', message: 'internal error' });
      });
    });
    onUpgrade(this.server, log, (req, socket, head) => this.upgrade(req, socket, head));
    // TURN credentials cannot be revoked, so they are short-lived; sessions in a
    // room get fresh ones at half their lifetime, checked a quarter lifetime apart.
    if (settings.turnUrls.length > 0 && settings.turnSecret) {
      const ttlMs = settings.turnTtlSec * 1000;
      setInterval(() => hub.renewIce(ttlMs / 2, settings.turnTtlSec), Math.max(ICE_RENEWAL_MIN_INTERVAL_MS, Math.floor(ttlMs / 4))).unref();
    }
  }

  private cors(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (!originAllowed(req, this.ctx.settings.allowedOrigins)) {
      sendJson(res, 403, { status: 'error', message: 'origin not allowed' });
      return false;
    }
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Vary', 'Origin');
    return true;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && path === '/') return sendJson(res, 200, { message: 'Dyad matching service' });
    if (req.method === 'GET' && (await serveOps(this.ctx, path, res))) return;
    if (!this.cors(req, res)) return;
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, POST, DELETE, OPTIONS',
        'Access-Control-Allow-Headers': 'Content-Type, Authorization',
        'Access-Control-Max-Age': '600',
      });
      res.end();
      return;
    }
    if (path === '/register' || this.extension.registerPaths?.includes(path)) {
      if (req.method !== 'POST') return sendJson(res, 405, { status: 'error', message: 'use POST' }, { Allow: 'POST' });
      return this.registerHttp(req, res, path);
    }
    if (path === '/ice-servers' && req.method === 'GET') return this.iceServers(req, res);
    if (path === '/online' && req.method === 'GET') return this.onlineCounts(req, res);
    if (path === '/pow' && req.method === 'GET') return this.powChallenge(req, res);
    if (this.admin && path.startsWith('/admin/')) return this.admin.handle(req, res, path);
    sendJson(res, 404, { status: 'error', message: 'not found' });
  }

  private async registerHttp(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const body = await readBody(req, this.ctx.settings.maxRequestBodyBytes);
    if (body === undefined) return sendJson(res, 413, { status: 'error', message: 'body too large' });
    let value: unknown = {};
    if (body.trim() !== '') {
      try {
        value = JSON.parse(body);
      } catch {
        return sendJson(res, 400, { status: 'error', message: 'invalid JSON' });
      }
    }
    if (this.extension.register && (await this.extension.register(req, res, path, value))) return;
    if (path !== '/register') return sendJson(res, 404, { status: 'error', message: 'not found' });
    const { settings } = this.ctx;
    const result = await this.register(clientHash(this.ctx, req), this.ctx.locate?.(clientAddress(req, settings.trustProxy)), value);
    if ('body' in result) return sendJson(res, result.status, result.body);
    const ok: RegisterResponse = { status: 'queued', message: 'User added to matching queue', id: result.id, token: result.token };
    sendJson(res, 200, ok);
  }

  /**
   * Validate, check the proof of work and create a session: shared by POST /register and the
   * one-trip start. `addr` is the client address's keyed hash, made once per request by the
   * caller; `place` its country and region, when known. The store checks the rest in the same
   * call as it registers (store.ts Admission): REGISTER_RATE_PER_MIN, that the proof is not
   * spent, a ban, and for a one-trip start (`held`, its socket) MAX_SOCKETS_PER_ADDR.
   */
  private async register(addr: string, place: Place | undefined, value: unknown, held?: HeldConnection): Promise<Refusal | Registered> {
    const { store, metrics, hub, settings } = this.ctx;
    const parsed = parseObject(RegisterRequest, value);
    if (!parsed.ok) {
      metrics.registrations.inc({ result: 'invalid' });
      return { status: 400, body: { status: 'error', message: parsed.error } };
    }
    const r = parsed.value;
    const proof = await this.pow.check(addr, r.altcha, hub.clock.now());
    if (!proof.ok) {
      metrics.registrations.inc({ result: proof.code });
      return { status: proof.code === 'pow-required' ? 428 : 403, body: { status: 'error', code: proof.code, message: proof.message } };
    }
    const token = newToken();
    const now = hub.clock.now();
    const session = {
      name: r.name,
      mode: r.mode ?? 'video',
      interests: normalizeInterests(r.interests ?? []),
      lang: normalizeLang(r.lang),
      // Only the country code and its region go with the session (issue 17); the address never does.
      ...(place ? { country: place.country, area: place.area } : {}),
      // With REGION_FILTER off nobody has a place, so a region would only delay pairing: every choice is anywhere.
      wants: this.ctx.locate ? wantedPlace(r.region, place) : undefined,
      showCountry: r.show_country === true,
      token,
      addr,
    };
    const admission = proof.proof ? { proof: proof.proof } : {};
    // A one-trip start opens its socket in the same call: the socket holds what it is sent until its upgrade is done.
    const result = held
      ? await store.registerAttached(session, held.id, now, { ...admission, maxSockets: settings.maxSocketsPerAddr })
      : await store.register(session, now, admission);
    metrics.registrations.inc({ result: result.status });
    switch (result.status) {
      case 'ok':
        break;
      case 'exists':
        return { status: 409, body: { status: 'exists', message: 'that name has a live session' } };
      case 'banned':
        return bannedRefusal(result.until);
      case 'rate-limited':
        return { status: 429, body: slowDown('too many registrations, slow down', result.retryMs) };
      case 'proof-spent':
        return { status: 403, body: { status: 'error', ...PROOF_SPENT } };
      case 'too-many-sockets':
        return this.edge.tooManySockets();
      case 'busy':
        return { status: 503, body: slowDown('too many registrations wait for their socket; try again shortly', result.retryMs) };
      case 'too-many-sessions':
        return { status: 429, body: slowDown('too many sessions from this address; end one first', result.retryMs) };
    }
    if (held) held.session = result.id;
    await hub.run(result.effects);
    return { id: result.id, token };
  }

  /** An `error` to the socket `conn` alone, instead of a store transition. */
  private refuse(conn: Connection, code: 'rate-limited', message: string): Effects {
    this.ctx.metrics.rejected.inc({ code });
    const fx = emptyEffects();
    fx.deliver.push({ to: conn.session, channel: 'matching', conn: conn.id, msg: { event: 'error', code, message } });
    return fx;
  }

  /**
   * Whether `addr` is within `limit`: an address-wide block (BLOCKS_PER_ADDR),
   * a recorded report (REPORTS_PER_ADDR). Each is kept per pair of addresses
   * (for BLOCK_MS, REPORT_WINDOW_MS), so without these counts many addresses
   * meeting one another would fill memory with every pair of them; past them
   * a block or a report keeps only the two sessions apart.
   */
  private async within(limit: Limiter | undefined, addr: string): Promise<boolean> {
    return limit ? takePoint(limit, addr) : false;
  }

  /**
   * A report, recorded when within REPORTS_PER_ADDR from its address and
   * within REPORTS_KEPT_MAX from everyone. A report of no one (no current or
   * recent partner) gives back what it took of them: else one session could
   * spend REPORTS_KEPT_MAX from address after address, and no report would be
   * recorded, nor any ban made, until the window ends.
   */
  private async report(conn: { session: string; id: string; addr: string }, reason: string | undefined, now: number): Promise<Effects> {
    const made = await this.within(this.reportsMade, conn.addr);
    const kept = made && (await this.within(this.reportsKept, ALL_ADDRESSES));
    const { effects, partner } = await this.ctx.store.report(conn.session, conn.id, reason, now, kept);
    if (!partner) {
      if (made) await this.reportsMade?.reward(conn.addr);
      if (kept) await this.reportsKept?.reward(ALL_ADDRESSES);
    }
    return effects;
  }

  /** GET /online: aggregates only, cached (OnlineCounts), ONLINE_RATE_PER_MIN per address. */
  private async onlineCounts(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { settings } = this.ctx;
    const addr = clientHash(this.ctx, req);
    const now = performance.now();
    if (!this.onlineRequests.takeOnce(addr, now)) {
      return sendJson(res, 429, slowDown('too many requests, slow down', this.onlineRequests.waitMs(addr, now)));
    }
    const counts = await this.online.get();
    sendJson(res, 200, counts, { 'Cache-Control': `max-age=${Math.floor(settings.onlineCacheMs / 1000)}` });
  }

  /** GET /pow: whether a start from here needs a proof of work now, and a challenge when it does. Never cached. */
  private async powChallenge(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { hub } = this.ctx;
    const required = await this.pow.required(clientHash(this.ctx, req));
    const body = required ? { required, challenge: await this.pow.challenge(hub.clock.now()) } : { required };
    // Date is read by the client to know when the challenge ends on its own clock (a browser hides it across origins unless exposed).
    sendJson(res, 200, body, { 'Cache-Control': 'no-store', 'Access-Control-Expose-Headers': 'Date' });
  }

  /**
   * TURN credentials only for people who are there: a session whose matching
   * socket is open (PROTOCOL.md v1.2 allows 409 otherwise), from an address
   * that is not banned. `matched` carries them too, and `ice-servers` renews them.
   */
  private async iceServers(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { settings, hub, store } = this.ctx;
    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
    const session = token ? await store.presence(token) : undefined;
    if (!session) return sendJson(res, 401, { status: 'error', message: 'a valid bearer token is required' });
    const banned = await banRefusal(this.ctx, clientHash(this.ctx, req));
    if (banned) return sendJson(res, banned.status, banned.body);
    if (!session.open) return sendJson(res, 409, { status: 'error', message: 'the session has no open matching socket: open it first' });
    sendJson(res, 200, { ice_servers: iceServers(settings, session.id, hub.clock.now()), ttl: settings.turnTtlSec });
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { settings } = this.ctx;
    const target = upgradeTarget(req, socket, settings.allowedOrigins, true);
    if (!target) return;
    const { url, id: pathId } = target;
    if (this.extension.upgrade && (await this.extension.upgrade(req, socket, head, url))) return;
    const address = clientAddress(req, settings.trustProxy);
    const addr = clientHash(this.ctx, req);
    if (!pathId) {
      // One-trip start: the query is the registration body, and the socket is opened, and counted, in the same store call.
      const held = this.edge.hold(addr);
      let result: Refusal | Registered | undefined;
      try {
        result = await this.register(addr, this.ctx.locate?.(address), oneTripQuery(url.searchParams), held);
      } finally {
        if (result === undefined || 'body' in result) this.edge.release(held);
      }
      if ('body' in result) return refuseUpgrade(socket, result.status, result.body);
      this.edge.counted(addr, socket);
      const { id, token } = result;
      // A client gone before its upgrade leaves as by a clean close (the upgrade then never calls back).
      const gone = (): void => this.edge.release(held);
      if (socket.destroyed) return gone();
      socket.once('close', gone);
      this.edge.upgrade(req, socket, head, (ws) => {
        socket.off('close', gone);
        ws.send(JSON.stringify({ event: 'session', id, token }));
        this.edge.serve(ws, id, addr, token, { held });
      });
      return;
    }
    // A one-trip start is checked by its registration; a session registered elsewhere is checked here.
    const token = url.searchParams.get('token') ?? '';
    const seenParam = url.searchParams.get('chat_seen');
    const seen = seenParam === null || seenParam === '' ? undefined : ChatSeenParam.safeParse(seenParam);
    if (seen && !seen.success) return refuseUpgrade(socket, 400, { status: 'error', message: 'chat_seen must be <room_code>:<seq>' });
    const access = await sessionAccess(this.ctx, addr, this.edge.admit(addr, socket), pathId, token);
    if ('body' in access) return refuseUpgrade(socket, access.status, access.body);
    const { id } = access;
    this.edge.upgrade(req, socket, head, (ws) => this.edge.serve(ws, id, addr, token, seen ? { chatSeen: seen.data } : {}));
  }

}

/**
 * The one-trip query as a registration body: empty values are absent, interests comma-separated,
 * show_country `true`/`1` or `false`/`0` (anything else stays text, which the schema refuses).
 */
export function oneTripQuery(q: URLSearchParams): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const key of ['name', 'mode', 'lang', 'region', 'altcha'] as const) {
    const v = q.get(key);
    if (v !== null && v !== '') body[key] = v;
  }
  const show = q.get('show_country');
  if (show !== null && show !== '') body.show_country = show === 'true' || show === '1' ? true : show === 'false' || show === '0' ? false : show;
  const interests = q.get('interests');
  if (interests !== null && interests.trim() !== '') {
    body.interests = interests.split(',').filter((s) => s.trim() !== '');
  }
  return body;
}
