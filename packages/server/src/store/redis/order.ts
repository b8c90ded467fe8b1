// The order between two ways messages reach this process's sockets: entries
// of its inbox stream, read by the inbox reader, and what a transition's reply
// holds for this process's own sockets (lua/effects.ts, finish: `i`, placed after the
// inbox entry `l`). Both are carried out in the order Redis ran the scripts
// that made them:
// - a reply's messages go once the reader has carried out the entry named in
//   the reply, and before anything later;
// - an inbox entry waits while a call that may have run before the entry was
//   written has not been answered, and while a reply that ran before the entry
//   still has messages to carry out. An entry written by a script names the
//   last such call (lua/effects.ts, finish: `q`), so it waits only for replies already
//   on their way; one relayed by a process names none and waits for every call
//   sent before it was read.
// Calls go out on one connection and Redis answers them in the order it ran
// them, so replies are carried out in the order they come. Every wait is
// bounded (maxWaitMs): a call never answered, or an entry lost with a Redis
// restart, may cost a socket the order of its messages, never the messages
// of every socket after it.

/** Order of two stream ids ("ms-seq"); '' comes before every id. Runs for every inbox entry, so no arrays. */
export function compareIds(a: string, b: string): number {
  if (a === '' || b === '') return a === b ? 0 : a === '' ? -1 : 1;
  const i = a.indexOf('-');
  const j = b.indexOf('-');
  const ms = Number(a.slice(0, i)) - Number(b.slice(0, j));
  return ms !== 0 ? ms : Number(a.slice(i + 1)) - Number(b.slice(j + 1));
}

/** The smallest stream id after `id`. */
export function nextId(id: string): string {
  const [ms = '0', seq = '0'] = id.split('-');
  return `${ms}-${Number(seq) + 1}`;
}

/**
 * An inbox entry that has waited this long for a reply (ready) is a long
 * wait: the reader then has what it carried out so far trimmed, instead of
 * only after its batch, so that a process killed meanwhile leaves nothing
 * delivered in its inbox for a takeover to tell again (ms).
 */
export const LONG_WAIT_MS = 2;

interface Held {
  /** The last inbox entry when the script ran ('' for none). */
  after: string;
  run: () => Promise<void>;
  done: () => void;
}

export class ReplyOrder {
  private sent = 0;
  /** Calls sent and not answered: number -> when sent (a Map keeps insertion order: oldest first). */
  private readonly unanswered = new Map<number, number>();
  /** Replies with messages for this process's sockets, not carried out yet, in the order they came. */
  private readonly held: Held[] = [];
  private pumping = false;
  /** The entry the reader waits to carry out, while it waits. */
  private waitingAt: string | undefined;
  private wakers = new Set<() => void>();

  constructor(
    /** The last inbox entry the reader has carried out. */
    private readonly carried: () => string,
    /** Longest wait for an answer, or for the reader to reach an entry. */
    private readonly maxWaitMs: number,
  ) {}

  /** A call is being sent: its number, for answered. */
  send(): number {
    this.sent += 1;
    this.unanswered.set(this.sent, performance.now());
    return this.sent;
  }

  /**
   * The answer to call `seq` came (or it failed). `run` carries out what the
   * reply holds for this process's sockets, after inbox entry `after`; the
   * promise resolves once it has run. To be called in the turn the reply is
   * read, so that no inbox entry after it can slip ahead.
   */
  answered(seq: number, inline?: { after: string; run: () => Promise<void> }): Promise<void> | undefined {
    let ran: Promise<void> | undefined;
    if (inline) {
      ran = new Promise<void>((done) => this.held.push({ ...inline, done }));
      void this.pump();
    }
    this.unanswered.delete(seq);
    this.wake();
    return ran;
  }

  /** The reader has carried out another entry. */
  progressed(): void {
    this.wake();
  }

  /** Redis lost the inbox: no reply waits any more for an entry that was in it (`gone`: one the reader has not passed and never will). */
  lost(gone: (after: string) => boolean): void {
    for (const h of this.held) if (h.after !== '' && !this.passed(h.after) && gone(h.after)) h.after = '';
    this.wake();
  }

  /** The last call sent: an inbox entry read now may follow any call up to it (see ready). */
  stamp(): number {
    return this.sent;
  }

  /**
   * Resolves when inbox entry `id` may be carried out: every call up to
   * `after` (the last that may have run before the entry was written: the
   * one it names, else the stamp when it was read) has been answered, and
   * what the replies before it hold has been carried out. `longWait` runs
   * once the entry has waited LONG_WAIT_MS (most waits are for a reply
   * already on its way, and end sooner).
   */
  async ready(id: string, after: number, longWait?: () => void): Promise<void> {
    if (!this.blocked(id, after)) return;
    this.waitingAt = id;
    // A reply waiting for an entry before this one need wait no more: the reader is past it.
    this.wake();
    const since = performance.now();
    let told = longWait === undefined;
    try {
      while (this.blocked(id, after)) {
        if (!told && performance.now() - since >= LONG_WAIT_MS) {
          told = true;
          longWait?.();
        }
        await this.woken(told ? this.maxWaitMs : LONG_WAIT_MS);
      }
    } finally {
      this.waitingAt = undefined;
    }
  }

  /** Replies held now (for tests). */
  get holding(): number {
    return this.held.length;
  }

  private blocked(id: string, after: number): boolean {
    for (const [seq, sentAt] of this.unanswered) {
      if (seq > after) break;
      // Unanswered for longer than a call may take: given up on.
      if (performance.now() - sentAt < this.maxWaitMs) return true;
      this.unanswered.delete(seq);
    }
    // Replies come in the order their scripts ran: if the first held one ran after the entry, all did.
    const first = this.held[0];
    return first !== undefined && compareIds(first.after, id) < 0;
  }

  /**
   * Has the reader passed entry `after`? It has when it carried it out, and
   * when it waits at a later entry: entries come in order, so one that is not
   * there by then (lost with a Redis restart) never comes.
   */
  private passed(after: string): boolean {
    if (compareIds(this.carried(), after) >= 0) return true;
    return this.waitingAt !== undefined && compareIds(this.waitingAt, after) > 0;
  }

  /** Until something changes, or `ms` (maxWaitMs by default). */
  private woken(ms = this.maxWaitMs): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  private wake(): void {
    if (this.wakers.size === 0) return;
    // Taken whole and a new set begun, not cleared (see http/socket.ts, flush).
    const wakers = this.wakers;
    this.wakers = new Set();
    for (const w of wakers) w();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let h = this.held[0]; h; h = this.held[0]) {
        const since = performance.now();
        while (!this.passed(h.after) && performance.now() - since < this.maxWaitMs) await this.woken();
        try {
          await h.run();
        } finally {
          this.held.shift();
          h.done();
          this.wake();
        }
      }
    } finally {
      this.pumping = false;
    }
  }
}
