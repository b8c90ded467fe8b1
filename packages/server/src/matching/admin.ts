// The admin API: live counts, bans and reports for the operator's review. Off
// unless ADMIN_TOKEN is set; every request must carry it as a bearer token,
// compared in constant time. Failed attempts are limited per client address
// (ADMIN_FAILURES_PER_MIN), shared by every process on Redis.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { Limiter } from '../store/store.js';
import { AdminBanRequest, parseObject } from '@dyad/protocol';
import { clientHash, decodeSegment, readBody, retryAfterSec, sendJson, type Context } from '../http/context.js';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
const unixSeconds = (ms: number): number => Math.ceil(ms / 1000);

/** Most reported addresses listed by GET /admin/reports (the most recently reported first). */
export const ADMIN_REPORTS_LIMIT = 200;
/** Failed attempts are counted per address over this window. */
const FAILURE_WINDOW_SEC = 60;

export class AdminApi {
  private readonly expected: Buffer;
  private readonly failures: Limiter;

  constructor(
    private readonly ctx: Context,
    token: string,
  ) {
    this.expected = digest(token);
    this.failures = ctx.limiter('admin', ctx.settings.adminFailuresPerMin, FAILURE_WINDOW_SEC);
  }

  /** Hashing first gives equal-length inputs, so the comparison leaks neither content nor length. */
  private authorized(req: IncomingMessage): boolean {
    const auth = req.headers.authorization;
    if (!auth?.startsWith('Bearer ')) return false;
    return timingSafeEqual(digest(auth.slice(7).trim()), this.expected);
  }

  /**
   * Count an attempt before its token is looked at, and give the point back
   * once the token proves right: so only failures stay counted, and a burst
   * sent at once is cut off at the limit before any of it is checked. Beyond
   * the limit every request from the address waits, the right token too;
   * otherwise a guesser would still learn which guess is right. Returns the
   * seconds to wait, or undefined when the attempt may go ahead.
   */
  private async attempt(addr: string): Promise<number | undefined> {
    try {
      await this.failures.consume(addr);
      return undefined;
    } catch (rej) {
      if (!(rej instanceof RateLimiterRes)) throw rej;
      return retryAfterSec(rej.msBeforeNext);
    }
  }

  private tooMany(res: ServerResponse, retryAfter: number): void {
    this.ctx.metrics.rejected.inc({ code: 'admin-locked' });
    sendJson(res, 429, { status: 'error', message: 'too many failed admin attempts, wait', retry_after: retryAfter }, { 'Retry-After': String(retryAfter) });
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const { store, hub, settings } = this.ctx;
    // What the console shows (report reasons people wrote, address hashes) is kept by no cache.
    res.setHeader('Cache-Control', 'no-store');
    const addr = clientHash(this.ctx, req);
    const wait = await this.attempt(addr);
    if (wait !== undefined) return this.tooMany(res, wait);
    if (!this.authorized(req)) {
      this.ctx.metrics.rejected.inc({ code: 'admin-unauthorized' });
      return sendJson(res, 401, { status: 'error', message: 'admin token required' }, { 'WWW-Authenticate': 'Bearer' });
    }
    await this.failures.reward(addr).catch(() => undefined);
    const now = hub.clock.now();
    if (req.method === 'GET' && path === '/admin/stats') {
      const [stats, activity] = await Promise.all([store.stats(), store.activity(now)]);
      return sendJson(res, 200, {
        ...stats,
        activity: activity.map((m) => ({ minute: m.minute / 1000, pairings: m.pairings, reports: m.reports })),
        process: { pid: process.pid, sockets: { matching: hub.count('matching'), signalling: hub.count('signalling') } },
      });
    }
    if (req.method === 'GET' && path === '/admin/bans') {
      const bans = await store.listBans(now);
      return sendJson(res, 200, {
        bans: bans.map((b) => ({
          addr: b.addr,
          until: unixSeconds(b.until),
          strike: b.strike,
          reports: b.reports,
          reason: b.manual ? b.reason : `${b.reports} counting report${b.reports === 1 ? '' : 's'}`,
          manual: b.manual,
        })),
      });
    }
    if (req.method === 'POST' && path === '/admin/bans') return this.addBan(req, res, now);
    if (req.method === 'GET' && path === '/admin/reports') {
      const reports = await store.listReports(now, ADMIN_REPORTS_LIMIT);
      return sendJson(res, 200, {
        window_ms: settings.reportWindowMs,
        threshold: settings.reportBanThreshold,
        reports: reports.map((r) => ({
          addr: r.addr,
          reporters: r.reporters,
          counting: r.counting,
          last: unixSeconds(r.last),
          first: unixSeconds(r.first),
          reasons: r.reasons.map((e) => ({ at: unixSeconds(e.at), reason: e.reason })),
          banned: r.banned,
        })),
      });
    }
    const lift = /^\/admin\/bans\/([^/]+)$/.exec(path);
    if (req.method === 'DELETE' && lift?.[1]) {
      const target = decodeSegment(lift[1]);
      const lifted = target !== undefined && (await store.liftBan(target));
      return lifted ? sendJson(res, 200, { status: 'lifted' }) : sendJson(res, 404, { status: 'error', message: 'no such ban' });
    }
    const known = path === '/admin/stats' || path === '/admin/bans' || path === '/admin/reports' || lift !== null;
    if (known) return sendJson(res, 405, { status: 'error', message: `${req.method ?? ''} is not allowed here` });
    sendJson(res, 404, { status: 'error', message: 'not found' });
  }

  /**
   * POST /admin/bans `{"addr","duration_ms","reason"}`: ban an address hash
   * by hand. JSON only: a page of another site cannot send it without a CORS
   * preflight, which an Origin not in ALLOWED_ORIGINS fails.
   */
  private async addBan(req: IncomingMessage, res: ServerResponse, now: number): Promise<void> {
    const { store, hub, settings } = this.ctx;
    // The media type itself, parameters (charset) aside: not application/json-seq or the like.
    if (!/^\s*application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      return sendJson(res, 415, { status: 'error', message: 'send the body as application/json' });
    }
    const body = await readBody(req, settings.maxRequestBodyBytes);
    if (body === undefined) return sendJson(res, 413, { status: 'error', message: 'body too large' });
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return sendJson(res, 400, { status: 'error', message: 'invalid JSON' });
    }
    const parsed = parseObject(AdminBanRequest, value);
    if (!parsed.ok) return sendJson(res, 400, { status: 'error', message: parsed.error });
    const { addr, duration_ms, reason } = parsed.value;
    const made = await store.addBan(addr, duration_ms, reason?.trim() || 'banned by the operator', now);
    await hub.run(made.effects);
    this.ctx.log.info({ addr, until: unixSeconds(made.until) }, 'address banned by the operator');
    sendJson(res, 201, { status: 'banned', addr, until: unixSeconds(made.until) });
  }
}
