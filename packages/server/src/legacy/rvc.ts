// The random-video-chat protocol (docs/LEGACY.md, LEGACY_PROTOCOLS), served
// beside Dyad's own on the matching and signalling ports: an edge that turns
// its name-addressed messages into the store's transitions and the store's
// messages into its frames. Pairing, rooms, relaying and every limit are
// Dyad's; what this edge adds is identity by name.
//
// Identity: the client never holds a token, so the edge derives one from the
// name and the client address, with the server's key (ADDRESS_HASH_KEY): the
// same on every process, unguessable, and only ever computed for a request
// from that address. A name is held by one matching socket at a time.
//
// Order: the client opens its matching socket and POSTs its registration at
// once, in either order. The session enters the pool when both are there:
// the POST creates it, and a socket that came first waits for it (woken at
// once on this process, otherwise it looks every PENDING_POLL_MS). Later
// POSTs from the holder of the name are `next`, carried out on the matching
// socket whatever process holds it: its id is derived like the token.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  CloseCode,
  RVC_INVALID_ROOM,
  RVC_NOT_CONNECTED,
  RvcMatchingClientMessage,
  RvcRegisterRequest,
  RvcSignallingClientMessage,
  parseObject,
  rvcName,
  rvcSignalKind,
  type MatchedEvent,
  type RegisterResponse,
  type RvcRegisterResponse,
  type SignalType,
  type VerifiedEvent,
} from '@dyad/protocol';
import type { Connection } from '../core/hub.js';
import { encodeSignalData } from '../core/frames.js';
import { newConnId } from '../core/ids.js';
import { banRefusal, bannedRefusal, clientHash, decodeSegment, sendJson, slowDown, type Context } from '../http/context.js';
import type { ServiceExtension } from '../http/extension.js';
import { SocketEdge, refuseUpgrade, socketCount } from '../http/socket.js';
import { emptyEffects, isRefused, type Effects } from '../store/store.js';
import { legacyName, parseFrame, signalFrameParts } from './frames.js';
import { legacyStartGate } from './starts.js';

/** How often a matching socket opened before its registration looks for it, when the POST went to another process. */
export const PENDING_POLL_MS = 250;

/** What one matching socket knows: its partner's name as its client sees it. */
interface MatchingState {
  name: string;
  partner?: string;
  /** Wakes a socket waiting for its registration. */
  wake?: () => void;
  /** Closes the socket (once it is served). */
  close?: (code: number, reason: string) => void;
}

/** What one signalling socket knows: the room it joined, by Dyad's code and by the client's alias. */
interface SignallingState {
  name: string;
  token: string;
  claimed?: { room_code: string; target: string; role: string };
  room?: string;
  alias?: string;
  partner?: string;
}

const ROLE_INITIATOR = 'initiator';

/** The room code the client sees: `<initiator>_<responder>`, from which it reads its partner's name. */
const aliasOf = (me: string, partner: string, initiator: boolean): string => (initiator ? `${me}_${partner}` : `${partner}_${me}`);

export class RvcEdge {
  readonly matchingEdge: SocketEdge<typeof RvcMatchingClientMessage>;
  readonly signallingEdge: SocketEdge<typeof RvcSignallingClientMessage>;
  /** Matching sockets of this process by id. */
  private readonly matchingStates = new Map<string, MatchingState>();
  private readonly signallingStates = new Map<string, SignallingState>();
  /** Names whose matching socket is open (or opening) on this process, and its id. */
  private readonly held = new Map<string, string>();
  /** Whether a start (without a proof of work) from an address may go on (legacyStartGate). */
  private readonly mayStart: (addr: string) => Promise<boolean>;

  /** What the matching service takes from this edge. */
  readonly matching: ServiceExtension = {
    registerPaths: ['/registerForMatching'],
    register: (req, res, path, body) => this.register(req, res, path, body),
    upgrade: (req, socket, head, url) => this.upgradeMatching(req, socket, head, url),
  };
  /** What the signalling service takes from this edge. */
  readonly signalling: ServiceExtension = {
    upgrade: (req, socket, head, url) => this.upgradeSignalling(req, socket, head, url),
  };

  constructor(private readonly ctx: Context) {
    const { settings, hub, metrics, log, store } = ctx;
    this.mayStart = legacyStartGate(ctx);
    const sockets = socketCount(store, settings.maxSocketsPerAddr);
    this.matchingEdge = new SocketEdge(
      'matching',
      RvcMatchingClientMessage,
      hub,
      settings,
      metrics,
      log,
      {
        attach: async (conn, token) => {
          if (!(await this.registered(conn, token))) return { ok: false, reason: 'unauthorized' };
          return store.attachMatching(conn.session, token, conn.id, hub.clock.now());
        },
        message: async (msg, conn) => {
          const state = this.matchingStates.get(conn.id);
          // Chat goes only to the partner of this socket's room, named as the client knows it.
          if (state?.partner === undefined || msg.peer !== state.partner) return this.refuse(conn, RVC_NOT_CONNECTED);
          // The chat guards of Dyad's own chat: pace, repeats, the operator's words.
          const verdict = await ctx.chatGuard.check(conn.addr, conn.session, msg.message);
          if (!verdict.ok) return this.refuse(conn, verdict.message, 'rate-limited');
          return store.chat(conn.session, conn.id, verdict.message, hub.clock.now());
        },
        released: (conn) => {
          this.matchingStates.delete(conn.id);
          if (this.held.get(conn.session) === conn.id) this.held.delete(conn.session);
        },
        // No grace: the client never reopens its socket, so any end is a leave.
        closed: (conn) => store.detachMatching(conn.session, conn.id, true, hub.clock.now()),
      },
      sockets,
      ctx,
    );
    this.signallingEdge = new SocketEdge(
      'signalling',
      RvcSignallingClientMessage,
      hub,
      settings,
      metrics,
      log,
      {
        attach: (conn, token) => store.attachSignalling(conn.session, token, conn.id, hub.clock.now()),
        message: async (msg, conn) => {
          const state = this.signallingStates.get(conn.id);
          if (!state) return emptyEffects();
          const now = hub.clock.now();
          if (msg.event === 'join') {
            // The client names the room by its alias; the room is the one its own session is in, or none.
            const room = await store.roomOf(conn.session, state.token);
            if (room === undefined) return this.refuse(conn, RVC_INVALID_ROOM);
            state.claimed = { room_code: msg.room_code, target: msg.target, role: msg.role };
            state.room = room;
            return store.join(conn.session, conn.id, room, now);
          }
          if (state.alias === undefined || state.room === undefined || msg.room_code !== state.alias) return this.refuse(conn, RVC_INVALID_ROOM);
          if (msg.target !== state.partner || (msg.from !== undefined && msg.from !== '' && msg.from !== state.name)) {
            return this.refuse(conn, RVC_NOT_CONNECTED);
          }
          const { type, data } = toDyadSignal(msg.data);
          return store.signal(conn.session, conn.id, state.room, type, encodeSignalData(data), now);
        },
        released: (conn) => this.signallingStates.delete(conn.id),
        closed: (conn) => store.detachSignalling(conn.session, conn.id, true, hub.clock.now()),
      },
      sockets,
      ctx,
    );
  }

  /** The token of `name` for a client at `addr` (a keyed hash: see the top of this file). */
  private tokenFor(name: string, addr: string): string {
    return this.ctx.addresses.hashText(`random-video-chat\0token\0${name}\0${addr}`);
  }

  /** The id of the matching socket of `name` for a client at `addr`, whichever process holds it. */
  private connFor(name: string, addr: string): string {
    return `rvc-${this.ctx.addresses.hashText(`random-video-chat\0conn\0${name}\0${addr}`)}`;
  }

  /** An `error` to this socket alone (its client shows the original's messages). */
  private refuse(conn: Connection, message: string, code: 'bad-request' | 'rate-limited' = 'bad-request'): Effects {
    const fx = emptyEffects();
    if (code === 'rate-limited') this.ctx.metrics.rejected.inc({ code });
    fx.deliver.push({ to: conn.session, channel: conn.channel, conn: conn.id, msg: { event: 'error', code, message } });
    return fx;
  }

  // ------------------------------------------------------------ registration

  /**
   * `POST /registerForMatching`, and `POST /register` with a body of just a
   * name that this protocol allows (any other body is Dyad's registration).
   */
  private async register(req: IncomingMessage, res: ServerResponse, path: string, body: unknown): Promise<boolean> {
    if (path === '/register' && !RvcRegisterRequest.safeParse(body).success) return false;
    const parsed = parseObject(RvcRegisterRequest, body);
    if (!parsed.ok) return reply(res, 400, { status: 'error', message: parsed.error } satisfies RvcRegisterResponse);
    const { store, hub, metrics } = this.ctx;
    const name = parsed.value.name;
    const addr = clientHash(this.ctx, req);
    const token = this.tokenFor(name, addr);
    const now = hub.clock.now();
    const presence = await store.presence(token);
    if (presence?.open) {
      // The holder of the name asks again: its next partner (its socket may be on another process).
      const r = await store.next(name, this.connFor(name, addr), now);
      if (isRefused(r)) return reply(res, 429, this.limited('too many nexts, slow down', r.retryMs));
      await hub.run(r);
    } else if (presence === undefined) {
      if (!(await this.mayStart(addr))) return reply(res, 429, this.limited('too many starts from this address without a proof of work', 60_000));
      const result = await store.register({ name, mode: 'video', interests: [], token, addr }, now);
      metrics.registrations.inc({ result: result.status });
      if (result.status === 'rate-limited') return reply(res, 429, this.limited('too many registrations, slow down', result.retryMs));
      if (result.status === 'busy') return reply(res, 503, this.limited('too many registrations wait; try again shortly', result.retryMs));
      if (result.status === 'too-many-sessions') return reply(res, 429, this.limited('too many sessions from this address', result.retryMs));
      if (result.status === 'banned') return reply(res, 403, bannedRefusal(result.until).body);
      if (result.status !== 'ok') return reply(res, 409, { status: 'exists', message: 'Username already exists' });
      await hub.run(result.effects);
    }
    // Registered, its socket not open yet: the socket enters the pool when it comes (or now, if it waits here).
    const waiting = this.held.get(name);
    if (waiting !== undefined) this.matchingStates.get(waiting)?.wake?.();
    const queued = { status: 'queued', message: 'User added to matching queue' } as const;
    if (path === '/register') sendJson(res, 200, { ...queued, id: name, token } satisfies RegisterResponse);
    else sendJson(res, 200, queued satisfies RvcRegisterResponse);
    return true;
  }

  /** A 429's body (slowDown), counted. */
  private limited(message: string, retryMs: number): { status: 'error'; message: string; retry_after: number } {
    this.ctx.metrics.rejected.inc({ code: 'rate-limited' });
    return slowDown(message, retryMs);
  }

  /**
   * Wait until the session of this matching socket is registered (its POST
   * may come after the socket), at most REGISTRATION_TTL_MS; false when it
   * never was or the socket closed meanwhile.
   */
  private async registered(conn: Connection, token: string): Promise<boolean> {
    const state = this.matchingStates.get(conn.id);
    // The socket's state goes when it ends (released), which also ends this wait.
    const deadline = this.ctx.hub.clock.now() + this.ctx.settings.registrationTtlMs;
    while (state && conn.isOpen() && this.matchingStates.get(conn.id) === state) {
      if (await this.ctx.store.verify(conn.session, token)) return true;
      const left = deadline - this.ctx.hub.clock.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          state.wake = undefined;
          resolve();
        }, Math.min(left, PENDING_POLL_MS));
        state.wake = () => {
          clearTimeout(timer);
          state.wake = undefined;
          resolve();
        };
      });
    }
    return false;
  }

  // ------------------------------------------------------------ sockets

  /** `/ws/{name}` without a token: the name, the address's count and bans, then one socket per name. */
  private async admit(
    req: IncomingMessage,
    socket: Duplex,
    url: URL,
    edge: SocketEdge<typeof RvcMatchingClientMessage> | SocketEdge<typeof RvcSignallingClientMessage>,
  ): Promise<{ name: string; addr: string; token: string } | undefined | 'not-ours'> {
    const m = /^\/ws\/([^/]+)$/.exec(url.pathname);
    if (!m?.[1] || url.searchParams.has('token')) return 'not-ours';
    const name = decodeSegment(m[1]);
    const valid = rvcName.safeParse(name);
    if (!valid.success) {
      refuseUpgrade(socket, 400, { status: 'error', message: `name: ${valid.error.issues[0]?.message ?? 'invalid'}` });
      return undefined;
    }
    const addr = clientHash(this.ctx, req);
    const refused = await edge.admit(addr, socket);
    if (refused) {
      refuseUpgrade(socket, refused.status, refused.body);
      return undefined;
    }
    const banned = await banRefusal(this.ctx, addr);
    if (banned) {
      refuseUpgrade(socket, banned.status, banned.body);
      return undefined;
    }
    return { name: valid.data, addr, token: this.tokenFor(valid.data, addr) };
  }

  private async upgradeMatching(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<boolean> {
    const who = await this.admit(req, socket, url, this.matchingEdge);
    if (who === 'not-ours') return false;
    if (!who) return true;
    const { name, addr, token } = who;
    const id = this.connFor(name, addr);
    // One matching socket per name: here, and (for this address's token) on any process.
    const taken = { status: 'exists', message: 'that name is held by another socket' } as const;
    const holder = this.held.get(name);
    if (holder !== undefined) {
      // A socket from another address holds the name without its registration
      // (it can never attach: the name is registered from this address), as an
      // attacker's socket opened before the POST would: it gives way to the
      // registrant's (fourth review, legacy finding L2).
      const registrant = holder !== id && (await this.ctx.store.verify(name, token));
      if (!registrant || this.held.get(name) !== holder) {
        refuseUpgrade(socket, 409, taken);
        return true;
      }
      this.matchingStates.get(holder)?.close?.(CloseCode.unauthorized, 'that name was registered from another address');
      this.held.delete(name);
    }
    this.held.set(name, id);
    if ((await this.ctx.store.presence(token))?.open) {
      this.held.delete(name);
      refuseUpgrade(socket, 409, taken);
      return true;
    }
    if (socket.destroyed) {
      this.held.delete(name);
      return true;
    }
    const state: MatchingState = { name };
    this.matchingStates.set(id, state);
    let served = false;
    this.matchingEdge.upgrade(req, socket, head, (ws) => {
      served = true;
      state.close = (code, reason) => ws.close(code, reason);
      this.matchingEdge.serve(ws, name, addr, token, { id, render: (text) => this.renderMatching(state, text) });
    });
    // An upgrade that fails after this point never opens a socket (a served one is released by the edge): give the name back.
    socket.once('close', () => {
      if (served || this.matchingStates.get(id) !== state) return;
      this.matchingStates.delete(id);
      if (this.held.get(name) === id) this.held.delete(name);
    });
    return true;
  }

  private async upgradeSignalling(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<boolean> {
    const who = await this.admit(req, socket, url, this.signallingEdge);
    if (who === 'not-ours') return false;
    if (!who) return true;
    const { name, addr, token } = who;
    if (!(await this.ctx.store.verify(name, token))) {
      refuseUpgrade(socket, 401, { status: 'error', message: 'no session of that name from this address' });
      return true;
    }
    const id = newConnId();
    const state: SignallingState = { name, token };
    this.signallingStates.set(id, state);
    this.signallingEdge.upgrade(req, socket, head, (ws) => {
      this.signallingEdge.serve(ws, name, addr, token, { id, render: (text) => this.renderSignalling(state, text) });
    });
    socket.once('close', () => this.signallingStates.delete(id));
    return true;
  }

  // ------------------------------------------------------------ what the client gets

  private renderMatching(state: MatchingState, text: string): string | undefined {
    const msg = parseFrame(text);
    switch (msg?.event) {
      case 'matched': {
        const m = msg as MatchedEvent;
        const partner = legacyName(m.peer, state.name);
        state.partner = partner;
        return JSON.stringify({ event: 'matched', room_code: aliasOf(state.name, partner, m.initiator), initiator: m.initiator });
      }
      case 'chat':
        return JSON.stringify({ event: 'chat', sender: state.partner ?? legacyName(msg.sender, state.name), message: msg.message, timestamp: msg.timestamp });
      case 'waiting':
        return JSON.stringify({ event: 'waiting' });
      case 'peer-disconnected':
        // The client hears of it on its signalling socket, as from the original.
        state.partner = undefined;
        return undefined;
      case 'error':
        return JSON.stringify({ event: 'error', message: msg.message });
      default:
        // idle, typing, ice-servers: nothing the client knows.
        return undefined;
    }
  }

  private renderSignalling(state: SignallingState, text: string): string | undefined {
    const sig = signalFrameParts(text);
    if (sig) {
      if (state.alias === undefined) return undefined;
      return JSON.stringify({ event: 'signal', room_code: state.alias, from: state.partner, type: null, data: toRvcData(sig.type, sig.data) });
    }
    const msg = parseFrame(text);
    switch (msg?.event) {
      case 'verified': {
        const v = msg as VerifiedEvent;
        const partner = legacyName(v.peer, state.name);
        const alias = aliasOf(state.name, partner, v.role === ROLE_INITIATOR);
        const c = state.claimed;
        // The join named a room, a partner and a role: all three must be this session's.
        if (!c || c.room_code !== alias || c.role !== v.role || c.target !== partner) {
          state.alias = state.room = state.partner = undefined;
          return JSON.stringify({ event: 'error', message: RVC_INVALID_ROOM });
        }
        state.alias = alias;
        state.partner = partner;
        return JSON.stringify({ event: 'verified', room_code: alias, role: v.role });
      }
      case 'peer-disconnected': {
        const partner = state.partner;
        state.alias = state.room = state.partner = undefined;
        return JSON.stringify({ event: 'peer-disconnected', message: `${partner ?? 'Peer'} has disconnected` });
      }
      case 'error':
        return JSON.stringify({ event: 'error', message: msg.code === 'invalid-room' ? RVC_INVALID_ROOM : msg.message });
      default:
        // peer-joined: the client does not know it.
        return undefined;
    }
  }

  /** Tell every client we are going away (1001). */
  closeAll(): void {
    this.matchingEdge.closeAll();
    this.signallingEdge.closeAll();
  }
}

/** A simple-peer signal as Dyad's: candidates unwrapped; simple-peer's own requests travel as candidates without a `candidate` string, which Dyad's clients skip. */
function toDyadSignal(data: Record<string, unknown>): { type: SignalType; data: Record<string, unknown> } {
  const kind = rvcSignalKind(data);
  if (kind === 'offer' || kind === 'answer') return { type: kind, data };
  if (kind === 'candidate') return { type: 'candidate', data: data.candidate as Record<string, unknown> };
  return { type: 'candidate', data };
}

/** A Dyad signal's data as simple-peer takes it. */
function toRvcData(type: SignalType, data: Record<string, unknown>): Record<string, unknown> {
  if (type === 'candidate') return typeof data.candidate === 'string' ? { type: 'candidate', candidate: data } : data;
  return data.type === type ? data : { ...data, type };
}

/** Answer a registration; true (the request is answered). */
const reply = (res: ServerResponse, status: number, body: { status: string; message: string }): true => {
  sendJson(res, status, body);
  return true;
};
