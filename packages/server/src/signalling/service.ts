// The signalling service: relays offer/answer/ICE between the two members of
// a room over `/ws/{id}?token=`. A thin edge: membership, roles and buffering
// are the store's.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { SignallingClientMessage } from '@dyad/protocol';
import { encodeSignalData } from '../core/frames.js';
import { clientHash, sessionAccess, sendJson, serveOps, type Context } from '../http/context.js';
import type { ServiceExtension } from '../http/extension.js';
import { SocketEdge, onUpgrade, refuseUpgrade, socketCount, upgradeTarget } from '../http/socket.js';

export class SignallingService {
  readonly server: Server;
  readonly edge: SocketEdge<typeof SignallingClientMessage>;

  constructor(
    private readonly ctx: Context,
    /** The legacy random-video-chat edge, when LEGACY_PROTOCOLS turns it on. */
    private readonly extension: ServiceExtension = {},
  ) {
    const { settings, hub, metrics, log, store } = ctx;
    this.edge = new SocketEdge('signalling', SignallingClientMessage, hub, settings, metrics, log, {
      message: (msg, conn) => {
        const now = hub.clock.now();
        switch (msg.event) {
          case 'join':
            return store.join(conn.session, conn.id, msg.room_code, now);
          case 'signal':
            // Encoded once here; from now on the data travels and is kept as this text.
            return store.signal(conn.session, conn.id, msg.room_code, msg.type, encodeSignalData(msg.data), now);
          case 'leave':
            return store.leave(conn.session, conn.id, msg.room_code, now);
        }
      },
      closed: (conn, left) => store.detachSignalling(conn.session, conn.id, left, hub.clock.now()),
      attach: (conn, token) => store.attachSignalling(conn.session, token, conn.id, hub.clock.now()),
       }, socketCount(store, settings.maxSocketsPerAddr), ctx);
    this.server = createServer({ headersTimeout: settings.httpTimeoutMs, requestTimeout: settings.httpTimeoutMs }, (req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (req.method === 'GET' && path === '/') return sendJson(res, 200, { message: 'Dyad signalling service' });
      serveOps(ctx, path, res)
        .then((served) => served || sendJson(res, 404, { status: 'error', message: 'not found' }))
        .catch((err: unknown) => {
          log.error({ err }, 'request failed');
          if (!res.headersSent) sendJson(res, 500, { status: 'error', message: 'internal error' });
        });
    });
    onUpgrade(this.server, log, (req, socket, head) => this.upgrade(req, socket, head));
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { settings } = this.ctx;
    const target = upgradeTarget(req, socket, settings.allowedOrigins, false);
    if (!target) return;
    const { url, id: pathId } = target;
    if (this.extension.upgrade && (await this.extension.upgrade(req, socket, head, url))) return;
    const addr = clientHash(this.ctx, req);
    const token = url.searchParams.get('token') ?? '';
    const access = await sessionAccess(this.ctx, addr, this.edge.admit(addr, socket), pathId, token);
    if ('body' in access) return refuseUpgrade(socket, access.status, access.body);
    const { id } = access;
    this.edge.upgrade(req, socket, head, (ws) => this.edge.serve(ws, id, addr, token));
  }
}
