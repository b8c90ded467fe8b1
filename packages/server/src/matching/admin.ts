// The admin API: live counts and bans. Off unless ADMIN_TOKEN is set; every
// request must carry it as a bearer token, compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeSegment, sendJson, type Context } from '../http/context.js';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export class AdminApi {
  private readonly expected: Buffer;

  constructor(
    private readonly ctx: Context,
    token: string,
  ) {
    this.expected = digest(token);
  }

  /** Hashing first gives equal-length inputs, so the comparison leaks neither content nor length. */
  private authorized(req: IncomingMessage): boolean {
    const auth = req.headers.authorization;
    if (!auth?.startsWith('Bearer ')) return false;
    return timingSafeEqual(digest(auth.slice(7).trim()), this.expected);
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!this.authorized(req)) {
      this.ctx.metrics.rejected.inc({ code: 'admin-unauthorized' });
      return sendJson(res, 401, { status: 'error', message: 'admin token required' }, { 'WWW-Authenticate': 'Bearer' });
    }
    const { store, hub } = this.ctx;
    const now = hub.clock.now();
    if (req.method === 'GET' && path === '/admin/stats') {
      const stats = await store.stats();
      return sendJson(res, 200, {
        ...stats,
        process: { pid: process.pid, sockets: { matching: hub.count('matching'), signalling: hub.count('signalling') } },
      });
    }
    if (req.method === 'GET' && path === '/admin/bans') {
      const bans = await store.listBans(now);
      return sendJson(res, 200, { bans: bans.map((b) => ({ addr: b.addr, until: Math.ceil(b.until / 1000) })) });
    }
    const lift = /^\/admin\/bans\/([^/]+)$/.exec(path);
    if (req.method === 'DELETE' && lift?.[1]) {
      const addr = decodeSegment(lift[1]);
      const lifted = addr !== undefined && (await store.liftBan(addr));
      return lifted ? sendJson(res, 200, { status: 'lifted' }) : sendJson(res, 404, { status: 'error', message: 'no such ban' });
    }
    sendJson(res, 404, { status: 'error', message: 'not found' });
  }
}
