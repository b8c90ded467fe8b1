// This process's inbox: the stream every message and close for its sockets
// travels in (lua/effects.ts, finish), read in order by one blocking
// connection and carried out one entry at a time, in their place among what
// the scripts' replies held for these sockets (./order.ts). A transition's
// caller waits until the reader has carried out the entry it wrote
// (carriedOut). docs/SCALING.md, "Delivery between processes".
import { emptyEffects, type Delivery, type Effects } from '../store.js';
import { entryParts, relayedDeliveries, toEffects, type RawResult } from './codec.js';
import { ReplyOrder, compareIds, nextId } from './order.js';
import { sleep, withTimeout, type Connection } from './calls.js';
import { READ_BLOCK_MS, type RouteItem, type SignalRelay } from './relay.js';

/** What the inbox needs of the store it works for. */
export interface InboxHost {
  /** The transitions' connection (the trims go on it, after the calls they follow). */
  readonly client: Connection;
  readonly relay: SignalRelay;
  /** Hand effects to the hub. */
  emit(fx: Effects): Promise<void>;
  closed(): boolean;
}

/** A transition's caller, waiting for the reader to carry out its inbox entry. */
interface Waiter {
  id: string;
  done: () => void;
}

export class Inbox {
  /** Where what a reply holds for this process's sockets goes among the inbox entries (order.ts). */
  readonly order: ReplyOrder;
  /** The last entry carried out. */
  private last = '0-0';
  /** The last entry the inbox was trimmed to (trim). */
  private trimmedTo = '0-0';
  /** Calls waiting for the reader to carry out their own inbox entry, in id order. */
  private readonly waiters: Waiter[] = [];
  /** The inbox entry each delivery being carried out came in (an undelivered one names it). */
  private readonly entryOf = new WeakMap<Delivery, string>();
  private reading: Promise<void> | undefined;

  constructor(
    private readonly host: InboxHost,
    /** Blocking reads of the inbox, on a connection of their own. */
    private readonly reader: Connection,
    readonly key: string,
    private readonly callTimeoutMs: number,
  ) {
    this.order = new ReplyOrder(() => this.last, callTimeoutMs);
  }

  /** The last entry carried out ('0-0': none yet). */
  get lastId(): string {
    return this.last;
  }

  /** The entry a delivery being carried out came in ('' for one that came in a reply). */
  entryOfDelivery(d: Delivery): string {
    return this.entryOf.get(d) ?? '';
  }

  /** Start reading. */
  read(): void {
    this.reading = this.readLoop();
  }

  /** Wait for the reading loop to end (its connection is being closed). */
  async close(): Promise<void> {
    this.wake(() => true);
    await this.reading?.catch(() => undefined);
  }

  /** Resolves once the reader has carried out inbox entry `id`. */
  carriedOut(id: string): Promise<void> {
    if (compareIds(this.last, id) >= 0) return Promise.resolve();
    // Kept in id order (replies come in execution order, so this is nearly always an append):
    // each entry read then wakes a prefix instead of scanning every waiter.
    return new Promise((done) => {
      let i = this.waiters.length;
      while (i > 0 && compareIds((this.waiters[i - 1] as Waiter).id, id) > 0) i--;
      this.waiters.splice(i, 0, { id, done });
    });
  }

  /** Resolves once the reader has carried out every entry the inbox holds now (bounded by callTimeoutMs). */
  async caughtUp(): Promise<void> {
    const last = await this.edgeEntry('last').catch(() => undefined);
    if (last !== undefined) await withTimeout(this.carriedOut(last), this.callTimeoutMs, 'reading the inbox').catch(() => undefined);
  }

  /** The id of the inbox's first or last entry now (bounded by callTimeoutMs, as every call: it never holds up a heal). */
  private async edgeEntry(end: 'first' | 'last'): Promise<string | undefined> {
    const read = end === 'first' ? this.host.client.xrange(this.key, '-', '+', 'COUNT', 1) : this.host.client.xrevrange(this.key, '+', '-', 'COUNT', 1);
    return (await withTimeout(read, this.callTimeoutMs, `reading the inbox's ${end} entry`))[0]?.[0];
  }

  /**
   * Entries lost with Redis will never be read: nobody waits for them any more.
   * The loss is noticed a beat or more after Redis came back, when entries of
   * the new inbox may be on their way already: those are still waited for.
   * Stream ids follow Redis's clock, so the new inbox's entries come after
   * every lost one, and an entry before its first one that has not been
   * carried out is lost.
   */
  async lost(): Promise<void> {
    const first = await this.edgeEntry('first');
    const gone = (id: string): boolean => first === undefined || compareIds(id, first) < 0;
    this.wake(gone);
    this.order.lost(gone);
  }

  /** After a restart the inbox starts again from nothing; read it from its start if our place is past its end. */
  async rewind(): Promise<void> {
    const last = await this.edgeEntry('last');
    if (last === undefined || compareIds(last, this.last) < 0) this.last = '0-0';
  }

  /** Has the reader carried out entry `id`? */
  private readonly carried = (id: string): boolean => compareIds(this.last, id) >= 0;

  /** Wake the waiters whose entry is `done` (by default: carried out). Waiters are in id order, so they are a prefix. */
  private wake(done: (id: string) => boolean = this.carried): void {
    let n = 0;
    while (n < this.waiters.length && done((this.waiters[n] as Waiter).id)) n++;
    if (n === 0) return;
    for (const w of this.waiters.splice(0, n)) w.done();
  }


  /** Read the inbox in order; resumes from the last id read after any reconnect. */
  private async readLoop(): Promise<void> {
    while (!this.host.closed()) {
      try {
        const res = await this.reader.xread('COUNT', 256, 'BLOCK', READ_BLOCK_MS, 'STREAMS', this.key, this.last);
        if (!res) continue;
        const stamp = this.order.stamp();
        for (const [, entries] of res) await this.host.relay.locked(() => this.carryOut(entries, stamp));
        this.trim();
      } catch {
        if (this.host.closed()) break;
        await sleep(200);
      }
    }
  }

  /**
   * Entries carried out are done with: the stream holds only what is still
   * on its way, which a client resuming elsewhere takes over (lua/sockets.ts,
   * takeInFlight; a message carried out and not yet trimmed when this process
   * dies is told twice). Sent after the undelivered calls of what was carried
   * out, on the same connection, so Redis sees those first; not waited for.
   */
  private trim(): void {
    if (this.trimmedTo === this.last) return;
    this.trimmedTo = this.last;
    this.host.client.xtrim(this.key, 'MINID', nextId(this.last)).catch(() => undefined);
  }

  /** Carry out a batch of inbox entries, in order. */
  private async carryOut(entries: [id: string, fields: string[]][], stamp: number): Promise<void> {
    const relay = this.host.relay;
    // A script's entry (field fx, JSON), or signals relayed by a process (RELAYED, see codec.ts).
    const batch = entries.map(([id, fields]) => {
      const { json, records } = entryParts(fields);
      return { id, raw: json !== undefined ? (JSON.parse(json) as RawResult) : undefined, relayed: records !== undefined ? relayedDeliveries(records) : undefined };
    });
    // Signals relayed through a lane before these entries were written must not
    // be overtaken by them (a candidate before a later offer, the last signals
    // before the sender left): whatever the lanes hold now is read first. Only
    // entries for signalling sockets can be overtaken.
    if (relay.laneCount > 0 && batch.some((e) => e.relayed !== undefined || (e.raw !== undefined && touchesSignalling(e.raw)))) await relay.pollLanes();
    for (const { id, raw, relayed } of batch) {
      if (relay.laneCount > 0) await relay.pumpLanes();
      // An entry written by a script names the last of this process's calls with messages in
      // their reply that ran before it (q); one that names none (relayed by a process, or
      // written while this process had no such call) may follow any call sent before it was
      // read. What was carried out so far is trimmed once a wait is long (LONG_WAIT_MS in
      // order.ts), not only after the batch.
      await this.order.ready(id, typeof raw?.q === 'string' ? Number(raw.q) : stamp, () => this.trim());
      if (relayed) {
        const deliver = relayed.filter((d) => relay.relayable(d) !== 'ended');
        for (const d of deliver) this.entryOf.set(d, id);
        await this.host.emit({ ...emptyEffects(), deliver });
      } else if (raw) {
        const fx = toEffects(raw);
        if (raw.f !== undefined) fx.deliver = fx.deliver.filter((d) => relay.relayable(d) !== 'ended');
        for (const d of fx.deliver) this.entryOf.set(d, id);
        // Routes after the entry's messages: what a join hands over (kept signals) reaches the socket before anything relayed.
        const routes = Array.isArray(raw.r) ? (raw.r as RouteItem[]) : undefined;
        await this.host.emit(fx);
        if (routes) relay.applyRoutes(routes);
      }
      this.last = id;
      this.wake();
      this.order.progressed();
    }
    if (relay.laneCount > 0) await relay.pumpLanes();
  }
}

/** Does an inbox entry carry anything for a signalling socket (a relayed signal could be overtaken by it)? */
function touchesSignalling(raw: RawResult): boolean {
  if (Array.isArray(raw.r) && raw.r.length > 0) return true;
  const on = (list: unknown): boolean => Array.isArray(list) && list.some((x) => (x as { channel?: unknown }).channel === 'signalling');
  return on(raw.d) || on(raw.c);
}
