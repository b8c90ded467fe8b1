// Liveness and recovery: what this process holds (its sockets' sessions, what
// each matching socket was last told, the socket opens and closes Redis has
// not heard of yet), its heartbeat, and what it gives back to Redis when Redis
// lost its data or took this process for dead while it was only slow (heal).
// docs/SCALING.md, "Liveness" and "Redis restarts".
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { emptyEffects, type Channel, type ChatSeen, type Effects } from '../store.js';
import type { ScriptName } from './lua.js';
import type { Inbox } from './inbox.js';
import type { SignalRelay } from './relay.js';
import type { SocketCounts } from './sockets.js';

/** The arguments of an attach script: the socket, and for a matching socket what the client has of its chat (chat_seen). */
export function attachArgs(id: string, th: string, conn: string, seen?: ChatSeen): string[] {
  return seen ? [id, th, conn, seen.room, String(seen.seq)] : [id, th, conn];
}

/** Sessions per heal or touch call. */
const BATCH = 200;

type Hint = 'waiting' | 'matched' | 'idle';

/** A session's profile as the attach scripts return it: enough to make it again after Redis lost it. */
export interface Profile {
  mode: string;
  int: string;
  lang: string;
  /** JSON of the session's place fields (country, region, wanted place, show flag; lua/admission.ts, profile). */
  geo: string;
  addr: string;
}

/** What this process knows of a session whose socket it holds. */
interface Local extends Profile {
  id: string;
  th: string;
  /** Matching and signalling conns held here. */
  m?: string;
  s?: string;
}

/** A socket open or close that could not reach Redis: replayed, in order, once it is back. */
export type Pending =
  | { kind: 'attach'; channel: Channel; id: string; th: string; conn: string; now: number; seen?: ChatSeen }
  | { kind: 'detach'; channel: Channel; id: string; conn: string; left: boolean; now: number }
  | { kind: 'expel'; channel: Channel; id: string; th: string; conn: string; now: number }
  /** A call of matching socket conn that may have run lost its reply (and the state it told): told afresh. */
  | { kind: 'retell'; id: string; conn: string };

/** What recovery needs of the store it works for. */
export interface RecoveryHost {
  /** Run one transition (the store's script runner). */
  exec(name: ScriptName, now: number, args: readonly (string | number)[], opts?: { codes?: number }): Promise<{ fx: Effects; x: unknown }>;
  /** Hand effects to the hub. */
  emit(fx: Effects): Promise<void>;
  readonly inbox: Inbox;
  readonly relay: SignalRelay;
  readonly sockets: SocketCounts;
  /** A heartbeat lives this long unless refreshed. */
  readonly heartbeatTtlMs: number;
  readonly log: Logger | undefined;
  /** The process is closing or has let go of its sockets: no heartbeat any more. */
  stopped(): boolean;
}

export class Recovery {
  private readonly local = new Map<string, Local>();
  /** State last told to each matching socket held here (a heal after data loss starts from it). */
  private readonly hints = new Map<string, Hint>();
  private readonly pending: Pending[] = [];
  /** The queued open or close being sent now (replay), and whether its socket closed meanwhile. */
  private sending: Pending | undefined;
  private sendingClosed = false;
  private epoch: string | undefined;
  private beaten = false;
  /** The heartbeat under way, if any: whoever asks for another meanwhile waits for this one. */
  private beating: Promise<boolean> | undefined;
  private healing = false;
  /** A heal that has yet to finish (Redis failed again under it), made again, whole, at the next beat: whether Redis had lost its data. */
  private unhealed: boolean | undefined;
  /** Where the heartbeat under way is (for a log if it is held up). */
  stage = '';

  constructor(private readonly host: RecoveryHost) {}

  // ------------------------------------------------------------ what this process holds

  /** A socket of session id is open here (attach said so, with the session's profile). */
  remember(id: string, th: string, p: Profile, channel: Channel, conn: string): void {
    let l = this.local.get(id);
    if (!l || l.th !== th) {
      l = { id, th, mode: p.mode, int: p.int, lang: p.lang, geo: p.geo, addr: p.addr };
      this.local.set(id, l);
    }
    if (channel === 'matching') l.m = conn;
    else l.s = conn;
  }

  /**
   * A socket here has closed. An open of it still queued (it failed with the
   * connection) is dropped: sent after this close, it would give the session
   * back a socket that is gone (a ghost, paired and never answering). An open
   * already being sent goes before the close, on the same connection.
   */
  forget(id: string, channel: Channel, conn: string): void {
    const opens = (p: Pending | undefined): boolean => (p?.kind === 'attach' || p?.kind === 'retell') && p.conn === conn && p.id === id;
    for (let i = this.pending.length - 1; i >= 0; i--) if (this.pending[i] !== this.sending && opens(this.pending[i])) this.pending.splice(i, 1);
    if (opens(this.sending)) this.sendingClosed = true;
    const l = this.local.get(id);
    if (channel === 'matching') this.hints.delete(conn);
    if (!l) return;
    if (channel === 'matching' && l.m === conn) l.m = undefined;
    if (channel === 'signalling' && l.s === conn) l.s = undefined;
    if (l.m === undefined && l.s === undefined) this.local.delete(id);
  }

  /** Is conn session id's signalling socket, here? */
  holdsSignalling(id: string, conn: string): boolean {
    return this.local.get(id)?.s === conn;
  }

  /** Follow what each matching socket here was last told, for a heal after Redis lost its data. */
  observe(fx: Effects): void {
    for (const d of fx.deliver) {
      if (d.channel !== 'matching') continue;
      const e = d.msg?.event;
      if (e === 'waiting' || e === 'matched' || e === 'idle') this.hints.set(d.conn, e);
      else if (e === 'peer-disconnected') this.hints.set(d.conn, 'idle');
    }
  }

  /** A socket open or close that did not reach Redis: sent once Redis is back (replay). */
  queue(p: Pending): void {
    this.pending.push(p);
  }

  /**
   * A socket here closed (or was expelled) while a heal is under way: the heal
   * may have taken it in before and restore it in Redis after the close got
   * there (a ghost that would be paired and never leave), so the close is sent
   * again once the heal is done. Sent twice, it does nothing the second time (a
   * detach acts only on the socket it names, an expulsion on the session of its
   * token). True when queued.
   */
  queueIfHealing(p: Pending & { kind: 'detach' | 'expel' }): boolean {
    if (this.healing) this.pending.push(p);
    return this.healing;
  }

  /** This process has let go of its sockets (shutdown). */
  clear(): void {
    this.local.clear();
    this.hints.clear();
    this.pending.length = 0;
  }

  // ------------------------------------------------------------ heartbeat

  /**
   * Refresh this process's heartbeat: true once written (by this call or by
   * the one it joined). It also notices that Redis lost its data (the epoch
   * key changed) or that this process was taken for dead (its heartbeat had
   * lapsed), and then heals; then replays what failed.
   */
  beat(): Promise<boolean> {
    if (this.host.stopped()) return Promise.resolve(false);
    this.beating ??= this.beatOnce().finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  private async beatOnce(): Promise<boolean> {
    const { exec, sockets, relay } = this.host;
    let written = false;
    try {
      this.stage = 'writing the heartbeat';
      const { x } = await exec('beat', Date.now(), [this.host.heartbeatTtlMs, randomBytes(8).toString('base64url')]);
      written = true;
      const r = x as { prev: string; epoch: string };
      const lost = this.epoch !== undefined && r.epoch !== this.epoch;
      const lapsed = this.beaten && r.prev === '';
      this.epoch = r.epoch;
      this.beaten = true;
      // Socket counts go on their own connection, beside the rest: they never hold up a heal or a replay.
      const counts = sockets.resync();
      // On their own: a stalled shard holding a lane must not hold up the heartbeat.
      relay.keep();
      // A heal cut short is made again at the next beat: what it gave back already is left as it is.
      if (lost || lapsed) this.unhealed = lost || this.unhealed === true;
      if (this.unhealed !== undefined) {
        await this.heal(this.unhealed);
        this.unhealed = undefined;
      }
      this.stage = 'replaying';
      if (this.pending.length > 0) await this.replay();
      this.stage = 'writing socket counts';
      await counts;
    } catch {
      // Redis unreachable: the next beat tries again.
    }
    return written;
  }

  // ------------------------------------------------------------ recovery

  /** Give back to Redis what this process's open sockets need (see docs/SCALING.md, "Redis restarts"). */
  private async heal(lost: boolean): Promise<void> {
    if (this.healing) return;
    this.healing = true;
    const { exec, emit, inbox, relay, sockets, log } = this.host;
    // What this process knew of rooms may be stale now: its signals go through the scripts until the heal gives their routes back.
    relay.clearRoutes(true);
    try {
      log?.warn({ lost, sessions: this.local.size }, lost ? 'redis lost its data: restoring sessions' : 'heartbeat lapsed: re-announcing sockets');
      if (lost) {
        // Entries lost with Redis will never be read: nobody waits for them any more,
        // and relayed signals need not wait for them.
        this.stage = 'heal: the inbox lost';
        await inbox.lost();
        relay.forgetCaused();
        await inbox.rewind();
      }
      // Redis lost this process's socket counts, or the reaper removed them: they are what it holds.
      const counts = sockets.syncAll();
      const all = [...this.local.values()].map((l) => ({ ...l, hint: l.m === undefined ? undefined : this.hints.get(l.m) }));
      for (let i = 0; i < all.length; i += BATCH) {
        const batch = all.slice(i, i + BATCH);
        this.stage = `heal: call ${i / BATCH + 1} of ${Math.ceil(all.length / BATCH)}`;
        const { fx, x } = await exec('heal', Date.now(), [lost ? '1' : '0', JSON.stringify(batch)], { codes: batch.length });
        const orphans = (x as { orphans?: unknown }).orphans;
        if (Array.isArray(orphans)) {
          // Their session is gone for good: say so, as for any ended session.
          for (const o of orphans as { id: string; channel: Channel; conn: string }[]) {
            fx.deliver.push({ to: o.id, channel: o.channel, conn: o.conn, msg: { event: 'error', code: 'unauthorized', message: 'session ended' } });
            fx.close.push({ to: o.id, channel: o.channel, conn: o.conn, code: 4001, reason: 'session ended' });
          }
        }
        this.stage = `heal: carrying out call ${i / BATCH + 1}`;
        await emit(fx);
      }
      this.stage = 'heal: socket counts';
      await counts;
    } finally {
      this.healing = false;
    }
  }

  /** Send Redis, in order, the socket opens and closes it has not heard of. */
  private async replay(): Promise<void> {
    // Taken off the queue once sent: a failure leaves it first for the next beat, unless its socket closed meanwhile.
    const drop = (p: Pending): void => {
      const i = this.pending.indexOf(p);
      if (i >= 0) this.pending.splice(i, 1);
    };
    while (this.pending.length > 0) {
      const p = this.pending[0];
      if (!p) break;
      this.sending = p;
      this.sendingClosed = false;
      let fx: Effects;
      try {
        fx = await this.send(p);
      } catch (err) {
        if (this.sendingClosed) drop(p);
        throw err;
      } finally {
        this.sending = undefined;
      }
      drop(p);
      await this.host.emit(fx);
    }
  }

  /** One queued open or close, sent: what it caused, for the hub. */
  private async send(p: Pending): Promise<Effects> {
    const { exec, inbox } = this.host;
    if (p.kind === 'retell') {
      // Only while the socket is still the session's, here and in Redis: a resumption elsewhere is never replaced.
      return this.local.get(p.id)?.m === p.conn ? (await exec('retell', Date.now(), [p.id, p.conn], { codes: 1 })).fx : emptyEffects();
    }
    if (p.kind === 'expel') return (await exec('expel', p.now, [p.id, p.th, p.channel, p.conn])).fx;
    if (p.kind === 'detach') return (await exec(p.channel === 'matching' ? 'detachMatching' : 'detachSignalling', p.now, [p.id, p.conn, p.left ? '1' : '0', inbox.lastId])).fx;
    const r = await exec(p.channel === 'matching' ? 'attachMatching' : 'attachSignalling', p.now, attachArgs(p.id, p.th, p.conn, p.seen), { codes: 1 });
    const x = r.x as { ok: boolean; profile?: Profile };
    // Closed while this was sent: its close follows it, and nothing of the socket is kept here.
    if (x.ok && x.profile && !this.sendingClosed) this.remember(p.id, p.th, x.profile, p.channel, p.conn);
    if (!x.ok) {
      r.fx.deliver.push({ to: p.id, channel: p.channel, conn: p.conn, msg: { event: 'error', code: 'unauthorized', message: 'session ended' } });
      r.fx.close.push({ to: p.id, channel: p.channel, conn: p.conn, code: 4001, reason: 'unauthorized' });
    }
    return r.fx;
  }

  /** Give the keys of every session with a socket here their full lifetime again. */
  async touch(): Promise<void> {
    const ids = [...this.local.keys()];
    for (let i = 0; i < ids.length; i += BATCH) await this.host.exec('touch', Date.now(), ids.slice(i, i + BATCH));
    // The counts of addresses with sockets here outlive their last write only by the sessions' lifetime.
    await this.host.sockets.syncAll();
  }
}
