// A store and a hub driven by a test clock, with in-memory connections that
// record what they were sent: the lifecycle without sockets or sleeping. The
// store comes from a factory, so the same tests run on every Store.
import { pino } from 'pino';
import type { ServerMessage } from '@dyad/protocol';
import { FakeClock, settle } from '../../src/core/clock.js';
import { encodeSignalData } from '../../src/core/frames.js';
import { Hub, type Connection } from '../../src/core/hub.js';
import { emptyEffects, isRefused, type Admission, type Channel, type ChatSeen, type Effects, type NextRefused, type RegisterResult, type Store, type StoreOptions } from '../../src/store/store.js';

export const DEFAULTS: StoreOptions = {
  graceMs: 15_000,
  interestTimeoutMs: 5_000,
  registrationTtlMs: 30_000,
  repairCooldownMs: 60_000,
  signalBuffer: 64,
  keptBytesPerRoom: 262_144,
  keptBytesPerProcess: 67_108_864,
  keptBytesReservedPerRoom: 65_536,
  keptBytesReservedTotal: 134_217_728,
  maxSessionsPerAddr: 1_000_000,
  blockMs: 86_400_000,
  addressBlocksMax: 100_000,
  banStrikesMax: 100_000,
  limiterKeysMax: 100_000,
  pendingRegistrationsMax: 20_000,
  fairWaitMs: 10_000,
  reportBanThreshold: 3,
  reportWindowMs: 3_600_000,
  // Reports count at once here, unless a test asks for a conversation first.
  reportMinRoomMs: 0,
  banDurationMs: 86_400_000,
  banMaxMs: 604_800_000,
  banStrikeWindowMs: 2_592_000_000,
  nextRatePerMin: 120,
  registerRatePerMin: 1_000_000,
};

/** Makes a fresh, empty store; `close()` is called after each test. */
export type StoreFactory = (opts: StoreOptions) => Promise<Store>;

export class TestConn implements Connection {
  readonly received: ServerMessage[] = [];
  open = true;
  closedWith?: number;
  constructor(
    readonly id: string,
    readonly session: string,
    readonly channel: Channel,
    readonly addr = 'test',
  ) {}
  isOpen(): boolean {
    return this.open;
  }
  send(text: string): void {
    this.received.push(JSON.parse(text) as ServerMessage);
  }
  close(code: number): void {
    this.open = false;
    this.closedWith = code;
  }
  events(): string[] {
    return this.received.map((m) => m.event);
  }
  last(): ServerMessage | undefined {
    return this.received.at(-1);
  }
}

let seq = 0;

export class Core {
  readonly clock: FakeClock;
  readonly store: Store;
  readonly hub: Hub;
  private readonly inflight = new Set<Promise<unknown>>();

  private constructor(store: Store) {
    this.clock = new FakeClock(undefined, () => this.idle());
    this.store = this.track(store);
    this.hub = new Hub(this.store, this.clock, () => [], pino({ level: 'silent' }));
  }

  static async create(factory: StoreFactory, opts: Partial<StoreOptions> = {}): Promise<Core> {
    return new Core(await factory({ ...DEFAULTS, ...opts }));
  }

  /** Every store call is followed, so that `idle()` can wait for the hub's work to finish. */
  private track(store: Store): Store {
    const inflight = this.inflight;
    return new Proxy(store, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const r: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (r instanceof Promise) {
            inflight.add(r);
            r.then(
              () => inflight.delete(r),
              () => inflight.delete(r),
            );
          }
          return r;
        };
      },
    });
  }

  /** Wait until no store call is in flight and what followed them has run. */
  async idle(): Promise<void> {
    for (;;) {
      await settle();
      if (this.inflight.size === 0) {
        await settle();
        if (this.inflight.size === 0) return;
      } else {
        await Promise.allSettled([...this.inflight]);
      }
    }
  }

  /**
   * A one-trip start: register and open the matching socket in one store call
   * (registerAttached); the socket is in the hub before the call, as the edge's
   * held socket is. Its result when refused.
   */
  async arrive(opts: { name?: string; addr?: string; admission?: Admission } = {}): Promise<User | RegisterResult> {
    const token = `t${seq++}`;
    const conn = new TestConn(`m${seq++}`, opts.name ?? '', 'matching');
    this.hub.add(conn);
    const r = await this.store.registerAttached({ name: opts.name, mode: 'video', interests: [], token, addr: opts.addr ?? `a${seq}` }, conn.id, this.clock.now(), opts.admission);
    if (r.status !== 'ok') {
      this.hub.remove(conn);
      return r;
    }
    await this.hub.run(r.effects);
    const user = new User(this, r.id, token);
    user.m = conn;
    return user;
  }

  /** Register a session and open its matching socket. */
  async join(opts: { name?: string; interests?: string[]; lang?: string; mode?: 'video' | 'text'; addr?: string } = {}): Promise<User> {
    const token = `t${seq++}`;
    const r = await this.store.register(
      { name: opts.name, mode: opts.mode ?? 'video', interests: opts.interests ?? [], lang: opts.lang, token, addr: opts.addr ?? `a${seq}` },
      this.clock.now(),
    );
    if (r.status !== 'ok') throw new Error(`register: ${r.status}`);
    await this.hub.run(r.effects);
    const user = new User(this, r.id, token);
    await user.connect();
    return user;
  }
}

export class User {
  m!: TestConn;
  s?: TestConn;
  /** How long the store said to wait after its last refused `next`. */
  refusedRetryMs?: number;
  constructor(
    private readonly core: Core,
    readonly id: string,
    readonly token: string,
  ) {}

  /** Open (or reopen) the matching socket; `seen`: the last chat line the client has (chat_seen). */
  async connect(seen?: ChatSeen): Promise<TestConn> {
    const conn = new TestConn(`m${seq++}`, this.id, 'matching');
    this.core.hub.add(conn);
    const r = await this.core.store.attachMatching(this.id, this.token, conn.id, this.core.clock.now(), seen);
    if (!r.ok) throw new Error('attach refused');
    this.m = conn;
    await this.core.hub.run(r.effects);
    return conn;
  }

  async connectSignalling(): Promise<TestConn> {
    const conn = new TestConn(`s${seq++}`, this.id, 'signalling');
    this.core.hub.add(conn);
    const r = await this.core.store.attachSignalling(this.id, this.token, conn.id, this.core.clock.now());
    if (!r.ok) throw new Error('attach refused');
    this.s = conn;
    await this.core.hub.run(r.effects);
    return conn;
  }

  /** The matching socket ends; `left` for a clean close. */
  async drop(left = false): Promise<void> {
    this.m.open = false;
    this.core.hub.remove(this.m);
    await this.core.hub.run(await this.core.store.detachMatching(this.id, this.m.id, left, this.core.clock.now()));
  }

  async dropSignalling(left = false): Promise<void> {
    if (!this.s) throw new Error('no signalling socket');
    this.s.open = false;
    this.core.hub.remove(this.s);
    await this.core.hub.run(await this.core.store.detachSignalling(this.id, this.s.id, left, this.core.clock.now()));
  }

  async send(
    msg:
      | { event: 'next' }
      | { event: 'stop' }
      | { event: 'chat'; message: string }
      | { event: 'typing'; typing: boolean }
      /** `recorded` as the edge decides it (REPORTS_PER_ADDR): by default, yes. */
      | { event: 'report'; reason?: string; recorded?: boolean }
      /** `addressWide` as the edge decides it (BLOCKS_PER_ADDR): by default, yes. */
      | { event: 'block'; addressWide?: boolean },
  ): Promise<void> {
    const { store, clock, hub } = this.core;
    const now = clock.now();
    const fx =
      msg.event === 'next'
        ? this.limited(await store.next(this.id, this.m.id, now))
        : msg.event === 'stop'
          ? await store.stop(this.id, this.m.id, now)
          : msg.event === 'chat'
            ? await store.chat(this.id, this.m.id, msg.message, now)
            : msg.event === 'typing'
              ? await store.typing(this.id, this.m.id, msg.typing)
              : msg.event === 'block'
                ? await store.block(this.id, this.m.id, now, msg.addressWide ?? true)
                : (await store.report(this.id, this.m.id, msg.reason, now, msg.recorded ?? true)).effects;
    await hub.run(fx);
  }

  /** A refused `next` as the matching edge answers it: `error` `rate-limited` to this socket. */
  private limited(r: Effects | NextRefused): Effects {
    if (!isRefused(r)) return r;
    this.refusedRetryMs = r.retryMs;
    const fx = emptyEffects();
    fx.deliver.push({ to: this.id, channel: 'matching', conn: this.m.id, msg: { event: 'error', code: 'rate-limited', message: 'too many nexts' } });
    return fx;
  }

  async join(room: string): Promise<void> {
    if (!this.s) throw new Error('no signalling socket');
    await this.core.hub.run(await this.core.store.join(this.id, this.s.id, room, this.core.clock.now()));
  }

  async signal(room: string, type: 'offer' | 'answer' | 'candidate', data: Record<string, unknown>): Promise<void> {
    if (!this.s) throw new Error('no signalling socket');
    await this.core.hub.run(await this.core.store.signal(this.id, this.s.id, room, type, encodeSignalData(data), this.core.clock.now()));
  }

  async leave(room: string): Promise<void> {
    if (!this.s) throw new Error('no signalling socket');
    await this.core.hub.run(await this.core.store.leave(this.id, this.s.id, room, this.core.clock.now()));
  }

  /** The `matched` event this user holds now, if its last state message is one. */
  matched(): Extract<ServerMessage, { event: 'matched' }> | undefined {
    const state = [...this.m.received].reverse().find((m) => ['matched', 'waiting', 'idle', 'peer-disconnected'].includes(m.event));
    return state?.event === 'matched' ? state : undefined;
  }
}
