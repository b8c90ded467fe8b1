// A memory store and hub driven by a fake clock, with in-memory connections
// that record what they were sent: the pure core, no sockets, no sleeping.
import { pino } from 'pino';
import type { ServerMessage } from '@dyad/protocol';
import { FakeClock } from '../../src/core/clock.js';
import { Hub, type Connection } from '../../src/core/hub.js';
import { MemoryStore, type MemoryStoreOptions } from '../../src/store/memory.js';
import type { Channel } from '../../src/store/store.js';

export const DEFAULTS: MemoryStoreOptions = {
  graceMs: 15_000,
  interestTimeoutMs: 5_000,
  registrationTtlMs: 30_000,
  repairCooldownMs: 60_000,
  signalBuffer: 64,
  fairWaitMs: 10_000,
  reportBanThreshold: 3,
  reportWindowMs: 3_600_000,
  banDurationMs: 86_400_000,
};

export class TestConn implements Connection {
  readonly received: ServerMessage[] = [];
  open = true;
  closedWith?: number;
  constructor(readonly id: string, readonly session: string, readonly channel: Channel) {}
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
  readonly clock = new FakeClock();
  readonly store: MemoryStore;
  readonly hub: Hub;
  constructor(opts: Partial<MemoryStoreOptions> = {}) {
    this.store = new MemoryStore({ ...DEFAULTS, ...opts });
    this.hub = new Hub(this.store, this.clock, () => [], pino({ level: 'silent' }));
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
  constructor(private readonly core: Core, readonly id: string, readonly token: string) {}

  async connect(): Promise<TestConn> {
    const conn = new TestConn(`m${seq++}`, this.id, 'matching');
    this.core.hub.add(conn);
    const r = await this.core.store.attachMatching(this.id, this.token, conn.id, this.core.clock.now());
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

  async send(msg: { event: 'next' } | { event: 'stop' } | { event: 'chat'; message: string } | { event: 'report' }): Promise<void> {
    const { store, clock, hub } = this.core;
    const now = clock.now();
    const fx =
      msg.event === 'next'
        ? await store.next(this.id, this.m.id, now)
        : msg.event === 'stop'
          ? await store.stop(this.id, this.m.id, now)
          : msg.event === 'chat'
            ? await store.chat(this.id, this.m.id, msg.message, now)
            : await store.report(this.id, this.m.id, undefined, now);
    await hub.run(fx);
  }

  async join(room: string): Promise<void> {
    if (!this.s) throw new Error('no signalling socket');
    await this.core.hub.run(await this.core.store.join(this.id, this.s.id, room, this.core.clock.now()));
  }

  async signal(room: string, type: 'offer' | 'answer' | 'candidate', data: Record<string, unknown>): Promise<void> {
    if (!this.s) throw new Error('no signalling socket');
    await this.core.hub.run(await this.core.store.signal(this.id, this.s.id, room, type, data, this.core.clock.now()));
  }

  /** The `matched` event this user holds now, if its last state message is one. */
  matched(): Extract<ServerMessage, { event: 'matched' }> | undefined {
    const state = [...this.m.received].reverse().find((m) => ['matched', 'waiting', 'idle', 'peer-disconnected'].includes(m.event));
    return state?.event === 'matched' ? state : undefined;
  }
}
