// Promises that resolve once a condition holds, re-checked whenever something
// it depends on may have changed (Session calls check() after each event).

export class Readiness {
  private waiters: (() => void)[] = [];

  constructor(private readonly isReady: () => boolean) {}

  when(): Promise<void> {
    if (this.isReady()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  check(): void {
    if (this.waiters.length === 0 || !this.isReady()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
