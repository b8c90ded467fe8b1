// The hub carries out what the store decided: it writes deliveries to the
// sockets this process holds, closes sockets, and arms the timers that call
// the store back. It holds no session state of its own.
import type { IceServer, IceServersEvent, ServerMessage } from '@dyad/protocol';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from './clock.js';
import { signalFrame } from './frames.js';
import type { Channel, Delivery, Effects, Pairing, Store, TimerOrder } from '../store/store.js';
import type { DisconnectReason } from '@dyad/protocol';
import { onceEvery } from '../ops/once-every.js';

/** A timer's failure of one kind (the store away, say, fails every timer alike) is logged at most this often, with how many times. */
const TIMER_FAILURE_LOG_EVERY_MS = 60_000;

/** A socket as the hub sees it: the edges adapt `ws` to this. */
export interface Connection {
  readonly id: string;
  readonly session: string;
  readonly channel: Channel;
  /** Keyed hash of the client address, for per-address limits. */
  readonly addr: string;
  /** False once the socket is closing or closed, or can take nothing more (the edge then drops it). */
  isOpen(): boolean;
  send(text: string): void;
  close(code: number, reason: string): void;
}

export interface HubEvents {
  paired?(p: Pairing): void;
  ended?(reason: DisconnectReason): void;
}

export class Hub {
  private readonly conns = new Map<string, Connection>();
  private readonly timers = new Set<TimerHandle>();
  /** Matching sockets here whose session is in a room, and when their TURN credentials were issued (renewIce). */
  private readonly iceIssued = new Map<Connection, number>();
  private closed = false;

  private readonly timerFailures = onceEvery(TIMER_FAILURE_LOG_EVERY_MS);

  constructor(
    readonly store: Store,
    readonly clock: Clock,
    private readonly iceServersFor: (session: string) => IceServer[],
    private readonly log: Logger,
    private readonly events: HubEvents = {},
  ) {
    store.subscribe((fx) => this.run(fx));
  }

  /**
   * Carry out deliveries to `conn.id` on `conn`. A connection taking over the
   * id of another (a held socket once its upgrade is done) takes over its
   * TURN renewal too, so nothing refers to the one it replaces.
   */
  add(conn: Connection): void {
    const before = this.conns.get(conn.id);
    this.conns.set(conn.id, conn);
    if (before === undefined || before === conn) return;
    const issued = this.iceIssued.get(before);
    if (issued === undefined) return;
    this.iceIssued.delete(before);
    this.iceIssued.set(conn, issued);
  }

  remove(conn: Connection): void {
    if (this.conns.get(conn.id) === conn) this.conns.delete(conn.id);
    this.iceIssued.delete(conn);
  }

  /** Sockets whose TURN credentials are followed for renewal (renewIce). */
  get following(): number {
    return this.iceIssued.size;
  }

  count(channel: Channel): number {
    let n = 0;
    for (const c of this.conns.values()) if (c.channel === channel) n++;
    return n;
  }

  get connections(): Iterable<Connection> {
    return this.conns.values();
  }

  /** Serialize one message for one recipient (matched carries the recipient's own ICE credentials). */
  encode(to: string, msg: ServerMessage): string {
    if (msg.event === 'matched') return JSON.stringify({ ...msg, ice_servers: this.iceServersFor(to) });
    return JSON.stringify(msg);
  }

  /** Carry out a store transition's effects, in order: deliveries, closes, timers. */
  async run(fx: Effects): Promise<void> {
    for (const d of fx.deliver) {
      const conn = this.conns.get(d.conn);
      if (conn?.isOpen()) {
        conn.send(d.msg ? this.encode(d.to, d.msg) : signalFrame(d.signal));
        if (d.msg && d.channel === 'matching') this.followIce(conn, d.msg.event);
      } else await this.keep(d);
    }
    for (const c of fx.close) this.conns.get(c.conn)?.close(c.code, c.reason);
    for (const t of fx.timers) this.arm(t);
    for (const p of fx.paired) this.events.paired?.(p);
    for (const r of fx.ended) this.events.ended?.(r);
  }

  /**
   * A `matched` carries fresh credentials; from then until the room ends for
   * the socket (what it is told next about its state), renewIce keeps them fresh.
   */
  private followIce(conn: Connection, event: ServerMessage['event']): void {
    if (event === 'matched') this.iceIssued.set(conn, this.clock.now());
    else if (event === 'waiting' || event === 'idle' || event === 'peer-disconnected') this.iceIssued.delete(conn);
  }

  /**
   * Send fresh ICE servers (`ice-servers`, with `ttl` in seconds) to every
   * matching socket here in a room whose credentials are `maxAgeMs` old or
   * older: one sweep over this process's rooms instead of a timer per session.
   */
  renewIce(maxAgeMs: number, ttlSec: number): void {
    if (this.closed) return;
    const now = this.clock.now();
    for (const [conn, issued] of this.iceIssued) {
      if (!conn.isOpen()) this.iceIssued.delete(conn);
      else if (now - issued >= maxAgeMs) {
        conn.send(JSON.stringify({ event: 'ice-servers', ice_servers: this.iceServersFor(conn.session), ttl: ttlSec } satisfies IceServersEvent));
        this.iceIssued.set(conn, now);
      }
    }
  }

  /** The socket went away under a delivery: the store keeps it as for an absent member. */
  private async keep(d: Delivery): Promise<void> {
    await this.run(await this.store.undelivered(d, this.clock.now()));
  }

  private arm(t: TimerOrder): void {
    if (this.closed) return;
    const handle = this.clock.setTimer(t.delayMs, () => {
      this.timers.delete(handle);
      void this.fire(t);
    });
    this.timers.add(handle);
  }

  private async fire(t: TimerOrder): Promise<void> {
    const now = this.clock.now();
    try {
      const fx =
        t.kind === 'interest'
          ? await this.store.onInterestTimeout(t.id, now)
          : t.kind === 'registration'
            ? await this.store.onRegistrationExpired(t.id, now)
            : t.kind === 'matching-grace'
              ? await this.store.onMatchingGraceExpired(t.id, t.conn ?? '', now)
              : await this.store.onSignallingGraceExpired(t.id, t.conn ?? '', now);
      await this.run(fx);
    } catch (err) {
      const kind = err instanceof Error ? err.name : 'error';
      this.timerFailures(`${t.kind} ${kind}`, (times) => this.log.error({ err, timer: t.kind, times }, 'timer failed (times: since the last such line)'));
    }
  }

  /** Stop timers; the edges close the sockets. Idempotent. */
  close(): void {
    this.closed = true;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
  }
}
