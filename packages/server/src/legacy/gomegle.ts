// The go-megle protocol (docs/LEGACY.md, LEGACY_PROTOCOLS): one WebSocket on
// the web port's `/ws`, every frame `{event, data}`, ids given by the server.
// One socket carries both of Dyad's channels: the edge keeps a matching and a
// signalling connection in the hub for it, and turns its messages into the
// store's transitions. Pairing, rooms, relaying and limits are Dyad's.
//
// A socket is a session only once it asks for a match: the page opens a
// socket, closes it and opens another on load, and the first one costs
// nothing in the store. Signals go to the partner only (`target_id` must
// name it), once each; a closed socket leaves at once (no grace).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { CloseCode, GM_SEARCHING, GmClientMessage, type ErrorCode, type MatchedEvent } from '@dyad/protocol';
import type { Connection } from '../core/hub.js';
import { encodeSignalData } from '../core/frames.js';
import { newConnId, newSessionId, newToken } from '../core/ids.js';
import { originAllowed } from '../http/client.js';
import { banRefusal, clientHash, requestUrl, type Context } from '../http/context.js';
import { handshakeProblem } from '../http/handshake.js';
import { SocketEdge, refuseHandshake, refuseUpgrade, socketCount, type ServedConnection } from '../http/socket.js';
import { emptyEffects, isRefused, type Effects } from '../store/store.js';
import { parseFrame, signalFrameParts } from './frames.js';
import { legacyStartGate } from './starts.js';

/** One go-megle socket: its session (once it asked for a match) and its room. */
interface GmState {
  id: string;
  token: string;
  /** The socket as the hub's matching connection, once served. */
  conn?: ServedConnection;
  /** The hub's signalling connection of the same socket, once it is a session. */
  signalling?: Connection;
  partner?: string;
  room?: string;
  /** The join of the signalling connection to the current room; signals wait for it. */
  joining?: Promise<void>;
}

export class GoMegleEdge {
  readonly edge: SocketEdge<typeof GmClientMessage>;
  private readonly states = new Map<string, GmState>();
  /** Sockets that ended, until their close is told to the store (a flood ends them without one: the session is expelled). */
  private readonly closing = new Map<string, GmState>();
  /** Whether a start (without a proof of work) from an address may go on (legacyStartGate). */
  private readonly mayStart: (addr: string) => Promise<boolean>;

  constructor(private readonly ctx: Context) {
    const { settings, hub, metrics, log, store } = ctx;
    this.mayStart = legacyStartGate(ctx);
    this.edge = new SocketEdge(
      'matching',
      GmClientMessage,
      hub,
      settings,
      metrics,
      log,
      {
        // Nothing to tell the store until the socket asks for a match.
        attach: async () => ({ ok: true, effects: emptyEffects() }),
        message: async (msg, conn) => {
          const state = this.states.get(conn.id);
          if (!state) return emptyEffects();
          const now = hub.clock.now();
          switch (msg.event) {
            case 'find_match': {
              if (!state.signalling) return this.start(state, conn);
              // Pressed during a call without `leave`: the partner is skipped, and this socket is in no room from now on
              // (unless the store refuses it, past NEXT_RATE_PER_MIN: then the room is as it was, if nothing else ended it).
              const was = { partner: state.partner, room: state.room, joining: state.joining };
              state.partner = state.room = state.joining = undefined;
              const r = await store.next(state.id, conn.id, now);
              if (!isRefused(r)) return r;
              if (state.partner === undefined && state.room === undefined) Object.assign(state, was);
              return this.rateLimited(conn, 'more nexts a minute than allowed');
            }
            case 'leave': {
              if (state.partner === undefined || msg.data.target_id !== state.partner) return this.refuse(conn, 'no-partner', 'not in a room with that partner');
              state.partner = state.room = state.joining = undefined;
              return store.stop(state.id, conn.id, now);
            }
            case 'signal': {
              const { target_id, type, payload } = msg.data;
              if (state.room === undefined || state.signalling === undefined || target_id !== state.partner) {
                return this.refuse(conn, 'invalid-room', 'not in a room with that partner');
              }
              await state.joining;
              return store.signal(state.id, state.signalling.id, state.room, type, encodeSignalData(payload), now);
            }
          }
        },
        released: (conn, flooded) => {
          const state = this.states.get(conn.id);
          this.states.delete(conn.id);
          if (state?.signalling) hub.remove(state.signalling);
          if (state && !flooded) this.closing.set(conn.id, state);
        },
        // No grace: the page never resumes a socket, so any end is a leave.
        closed: async (conn) => {
          const state = this.closing.get(conn.id);
          this.closing.delete(conn.id);
          if (!state?.signalling) return emptyEffects();
          const now = hub.clock.now();
          await hub.run(await store.detachSignalling(state.id, state.signalling.id, true, now));
          return store.detachMatching(state.id, conn.id, true, now);
        },
      },
      socketCount(store, settings.maxSocketsPerAddr),
      ctx,
    );
  }

  /** `/ws` on the web port. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { settings } = this.ctx;
    if (!originAllowed(req, settings.allowedOrigins)) return refuseUpgrade(socket, 403, { status: 'error', message: 'origin not allowed' });
    const url = requestUrl(req);
    if (url?.pathname !== '/ws') return refuseUpgrade(socket, 404, { status: 'error', message: 'not found' });
    const bad = handshakeProblem(req);
    if (bad) return refuseHandshake(socket, bad);
    const addr = clientHash(this.ctx, req);
    const refused = await this.edge.admit(addr, socket);
    if (refused) return refuseUpgrade(socket, refused.status, refused.body);
    const banned = await banRefusal(this.ctx, addr);
    if (banned) return refuseUpgrade(socket, banned.status, banned.body);
    const state: GmState = { id: newSessionId(), token: newToken() };
    const connId = newConnId();
    this.states.set(connId, state);
    this.edge.upgrade(req, socket, head, (ws) => {
      state.conn = this.edge.serve(ws, state.id, addr, state.token, { id: connId, render: (text) => this.renderMatching(state, text) });
    });
    socket.once('close', () => {
      if (!state.conn) this.states.delete(connId);
    });
  }

  /** The first `find_match`: the socket becomes a session with both channels open, and enters the pool. */
  private async start(state: GmState, conn: Connection): Promise<Effects> {
    const { store, hub, metrics } = this.ctx;
    const now = hub.clock.now();
    if (!(await this.mayStart(conn.addr))) return this.rateLimited(conn, 'too many starts from this address without a proof of work');
    const result = await store.register({ name: state.id, mode: 'video', interests: [], token: state.token, addr: conn.addr }, now);
    metrics.registrations.inc({ result: result.status });
    if (result.status === 'rate-limited') return this.rateLimited(conn, 'too many registrations from this address, slow down');
    if (result.status === 'busy') return this.rateLimited(conn, 'too many registrations wait; try again shortly');
    if (result.status === 'too-many-sessions') return this.rateLimited(conn, 'too many sessions from this address');
    if (result.status === 'banned') {
      const fx = this.refuse(conn, 'banned', 'this address is banned');
      fx.close.push({ to: conn.session, channel: 'matching', conn: conn.id, code: CloseCode.banned, reason: 'banned' });
      return fx;
    }
    if (result.status !== 'ok') return this.refuse(conn, 'bad-request', 'try again');
    await hub.run(result.effects);
    const served = state.conn;
    // The socket may have gone while it registered (a close right behind find_match, read in
    // the same turn): released has run, so nothing here would ever be taken out of the hub
    // again. The registration, its socket never opened, runs out in REGISTRATION_TTL_MS.
    if (!served || this.states.get(conn.id) !== state) return emptyEffects();
    const signalling: Connection = {
      id: newConnId(),
      session: state.id,
      channel: 'signalling',
      addr: conn.addr,
      isOpen: () => served.isOpen(),
      send: (text) => {
        const out = this.renderSignalling(text);
        if (out !== undefined) served.write(out);
      },
      close: (code, reason) => served.close(code, reason),
    };
    state.signalling = signalling;
    hub.add(signalling);
    const s = await store.attachSignalling(state.id, state.token, signalling.id, now);
    if (s.ok) await hub.run(s.effects);
    const m = await store.attachMatching(state.id, state.token, conn.id, now);
    return m.ok ? m.effects : emptyEffects();
  }

  private refuse(conn: Connection, code: ErrorCode, message: string): Effects {
    const fx = emptyEffects();
    fx.deliver.push({ to: conn.session, channel: 'matching', conn: conn.id, msg: { event: 'error', code, message } });
    return fx;
  }

  /** A `rate-limited` error to this socket, counted. */
  private rateLimited(conn: Connection, message: string): Effects {
    this.ctx.metrics.rejected.inc({ code: 'rate-limited' });
    return this.refuse(conn, 'rate-limited', message);
  }

  /** What the matching connection is sent, as go-megle frames. */
  private renderMatching(state: GmState, text: string): string | undefined {
    const msg = parseFrame(text);
    switch (msg?.event) {
      case 'waiting':
        return JSON.stringify({ event: 'waiting', data: { message: GM_SEARCHING } });
      case 'matched': {
        const m = msg as MatchedEvent;
        state.partner = m.peer;
        state.room = m.room_code;
        state.joining = this.join(state, m.room_code);
        // The room code stays on the server: the page gets an alias of it, the same for both members.
        const matchId = this.ctx.addresses.hashText(`go-megle\0match\0${m.room_code}`);
        return JSON.stringify({ event: 'match_found', data: { partner_id: m.peer, initiator: m.initiator, match_id: matchId } });
      }
      case 'peer-disconnected': {
        const from = state.partner;
        state.partner = state.room = state.joining = undefined;
        return from === undefined ? undefined : JSON.stringify({ event: 'partner_left', data: { from } });
      }
      case 'error':
        return JSON.stringify({ event: 'error', data: { code: msg.code, message: msg.message } });
      default:
        // idle, chat, typing, ice-servers: go-megle has none of them.
        return undefined;
    }
  }

  /** What the signalling connection is sent: the partner's signals; errors; the rest is the matching side's to tell. */
  private renderSignalling(text: string): string | undefined {
    const sig = signalFrameParts(text);
    if (sig) {
      // simple-peer's own requests (from a random-video-chat partner) mean nothing here.
      if (sig.type === 'candidate' && typeof sig.data.candidate !== 'string') return undefined;
      return JSON.stringify({ event: 'signal', data: { sender_id: sig.from, type: sig.type, payload: sig.data } });
    }
    const msg = parseFrame(text);
    if (msg?.event === 'error') return JSON.stringify({ event: 'error', data: { code: msg.code, message: msg.message } });
    return undefined;
  }

  /** Join the room on the socket's signalling connection: what the partner sent meanwhile is kept and comes with it. */
  private async join(state: GmState, room: string): Promise<void> {
    const { store, hub, log } = this.ctx;
    if (!state.signalling) return;
    try {
      await hub.run(await store.join(state.id, state.signalling.id, room, hub.clock.now()));
    } catch (err) {
      log.error({ err }, 'go-megle join failed');
    }
  }

  /** Tell every client we are going away (1001). */
  closeAll(): void {
    this.edge.closeAll();
  }
}
