// The coordinator's side of the load-generator workers: start them, hand out
// tasks, merge their progress, collect their results.
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT, spawnRaised, cpuSeconds } from './procs.js';
import type { FromWorker, HoldStatus, HoldTask, Task, ToWorker } from './tasks.js';

const WORKER_ENTRY = path.join(REPO_ROOT, 'bench/lib/worker.ts');
const READY_TIMEOUT_MS = 20_000;

interface Slot {
  child: ChildProcess;
  progress: Record<string, number>;
  /** The task it runs now: progress of any other is stale. */
  task?: number;
  /** The pending answer the worker owes, if any. */
  waiter?: { accept: (m: FromWorker) => boolean; resolve: (m: FromWorker) => void; reject: (e: Error) => void };
  /** Settles when the worker's current task has ended, however it ended. */
  busy: Promise<unknown>;
}

let nextTaskId = 1;
/** How long a new task waits for a worker still busy with an abandoned one. */
const BUSY_WAIT_MS = 60_000;

export class Workers {
  private constructor(private readonly slots: Slot[]) {}

  static async start(n: number): Promise<Workers> {
    const slots: Slot[] = [];
    await Promise.all(
      Array.from({ length: n }, async () => {
        const child = spawnRaised(process.execPath, ['--import', 'tsx', WORKER_ENTRY], {
          cwd: REPO_ROOT,
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          serialization: 'advanced',
        });
        const slot: Slot = { child, progress: {}, busy: Promise.resolve() };
        child.on('message', (m: FromWorker) => {
          if (m.op === 'progress') {
            // A late report of an earlier task must not pass for this one's (a cycle would start too soon).
            if (m.id === slot.task) slot.progress = m.data;
            return;
          }
          const w = slot.waiter;
          if (m.op === 'error' && w && !w.accept(m)) return;
          if (m.op === 'error') {
            slot.waiter = undefined;
            w?.reject(new Error(`load generator: ${m.message}`));
          } else if (w?.accept(m)) {
            slot.waiter = undefined;
            w.resolve(m);
          }
        });
        child.on('exit', (code) => {
          slot.waiter?.reject(new Error(`load generator exited with ${code}`));
          slot.waiter = undefined;
        });
        await new Promise<void>((resolve, reject) => {
          slot.waiter = { accept: (m) => m.op === 'ready', resolve: () => resolve(), reject };
          setTimeout(() => reject(new Error('load generator did not start')), READY_TIMEOUT_MS).unref();
        });
        slots.push(slot);
      }),
    );
    return new Workers(slots);
  }

  get size(): number {
    return this.slots.length;
  }

  /** Sum of the latest progress counters of every worker. */
  progress(): Record<string, number> {
    const sum: Record<string, number> = {};
    for (const s of this.slots) for (const [k, v] of Object.entries(s.progress)) sum[k] = (sum[k] ?? 0) + v;
    return sum;
  }

  /** CPU seconds used so far by all workers (read from /proc, so it includes the kernel's share). */
  cpuSeconds(): number {
    return this.slots.reduce((n, s) => n + cpuSeconds(s.child.pid ?? 0), 0);
  }

  private ask(slot: Slot, msg: ToWorker, accept: (m: FromWorker) => boolean): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      slot.waiter = { accept, resolve, reject };
      slot.child.send(msg);
    });
  }

  /**
   * One task per worker (tasks.length ≤ size); resolves with each worker's
   * result. A worker still running a task its caller gave up on (a section
   * that failed) is waited for first, and answers are matched by task id, so
   * a late answer can never be taken for a new one.
   */
  async run<R>(tasks: Task[]): Promise<R[]> {
    // Forget the last task's progress before waiting: a caller polling
    // progress() meanwhile must not take it for this task's.
    this.forgetProgress();
    await this.idle();
    const answers = tasks.map((task, i) => {
      const slot = this.slots[i] as Slot;
      const id = nextTaskId++;
      slot.task = id;
      const answer = this.ask(slot, { op: 'run', id, task }, (m) => (m.op === 'done' || m.op === 'error') && m.id === id);
      slot.busy = answer.catch(() => undefined);
      return answer;
    });
    return (await Promise.all(answers)).map((m) => (m as { result: R }).result);
  }

  private forgetProgress(): void {
    for (const s of this.slots) {
      s.progress = {};
      s.task = undefined;
    }
  }

  /** Tell every worker to start the load it has set up. */
  go(): void {
    for (const s of this.slots) s.child.send({ op: 'go' } satisfies ToWorker);
  }

  /** Wait (bounded) until no worker runs a task. */
  async idle(): Promise<void> {
    await Promise.race([Promise.all(this.slots.map((s) => s.busy)), new Promise((r) => setTimeout(r, BUSY_WAIT_MS).unref())]);
  }

  async hold(tasks: HoldTask[]): Promise<HoldStatus[]> {
    this.forgetProgress();
    await this.idle();
    const answers = await Promise.all(
      tasks.map((task, i) => {
        const slot = this.slots[i] as Slot;
        const id = nextTaskId++;
        slot.task = id;
        return this.ask(slot, { op: 'run', id, task }, (m) => m.op === 'status');
      }),
    );
    return answers.map((m) => (m as { status: HoldStatus }).status);
  }

  /** Grow each worker's held sessions to its total; resolves when every handshake has ended. */
  async grow(totals: number[]): Promise<HoldStatus[]> {
    const answers = await Promise.all(
      totals.map((total, i) => this.ask(this.slots[i] as Slot, { op: 'grow', total }, (m) => m.op === 'status')),
    );
    return answers.map((m) => (m as { status: HoldStatus }).status);
  }

  async release(n: number): Promise<HoldStatus[]> {
    const answers = await Promise.all(
      this.slots.slice(0, n).map((s) => this.ask(s, { op: 'release' }, (m) => m.op === 'status')),
    );
    return answers.map((m) => (m as { status: HoldStatus }).status);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.child.exitCode !== null) return resolve();
            s.child.once('exit', () => resolve());
            try {
              s.child.send({ op: 'exit' } satisfies ToWorker);
            } catch {
              s.child.kill('SIGKILL');
            }
            setTimeout(() => s.child.kill('SIGKILL'), 3_000).unref();
          }),
      ),
    );
  }
}
