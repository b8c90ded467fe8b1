// The page's side of the nudity worker: one per page, made on first use (the
// first check of the first call), kept for the next strangers so the model
// loads once.
import type { FromWorker, ToWorker } from './nudityMessages.js';

export interface ClassifierInfo {
  /** The TensorFlow.js backend the model runs on (webgl, cpu). */
  readonly backend: string;
  readonly loadMs: number;
}

export interface FrameVerdict {
  /** 0 to 1: how likely the frame shows nudity. */
  readonly score: number;
  /** The classifier's own time on the frame, in its worker. */
  readonly workMs: number;
}

export interface FrameClassifier {
  /** Loads the model (once); rejects when it cannot be loaded here. */
  load(): Promise<ClassifierInfo>;
  /** Classifies one frame; the bitmap is transferred (and closed) whatever the outcome. */
  classify(frame: ImageBitmap): Promise<FrameVerdict>;
}

class WorkerClassifier implements FrameClassifier {
  private worker: Worker | null = null;
  private loaded: Promise<ClassifierInfo> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: FrameVerdict): void; reject(e: Error): void }>();
  private onLoaded: { resolve(v: ClassifierInfo): void; reject(e: Error): void } | null = null;

  load(): Promise<ClassifierInfo> {
    this.loaded ??= new Promise<ClassifierInfo>((resolve, reject) => {
      this.onLoaded = { resolve, reject };
      // Vite bundles the worker and what it imports (TensorFlow.js, the model) as files of their own.
      const worker = new Worker(new URL('./nudity.worker.ts', import.meta.url), { type: 'module', name: 'nudity' });
      worker.onmessage = (e: MessageEvent<FromWorker>) => this.receive(e.data);
      worker.onerror = (e) => this.fail(new Error(e.message || 'the nudity worker failed'));
      this.worker = worker;
      this.send({ type: 'load' });
    });
    return this.loaded;
  }

  classify(frame: ImageBitmap): Promise<FrameVerdict> {
    if (!this.worker) {
      frame.close();
      return Promise.reject(new Error('the classifier is not loaded'));
    }
    const id = this.nextId++;
    return new Promise<FrameVerdict>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send({ type: 'classify', id, frame }, [frame]);
    });
  }

  private send(message: ToWorker, transfer: Transferable[] = []): void {
    this.worker?.postMessage(message, transfer);
  }

  private receive(message: FromWorker): void {
    switch (message.type) {
      case 'ready':
        this.onLoaded?.resolve({ backend: message.backend, loadMs: message.loadMs });
        this.onLoaded = null;
        return;
      case 'failed':
        this.fail(new Error(message.message));
        return;
      case 'verdict':
      case 'error': {
        const waiter = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.type === 'verdict') waiter?.resolve({ score: message.score, workMs: message.workMs });
        else waiter?.reject(new Error(message.message));
        return;
      }
    }
  }

  /** The worker is gone or cannot load the model: everything waiting fails, and a later load() starts afresh. */
  private fail(err: Error): void {
    this.onLoaded?.reject(err);
    this.onLoaded = null;
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
    this.worker?.terminate();
    this.worker = null;
    this.loaded = null;
  }
}

let shared: WorkerClassifier | null = null;

/** The page's classifier; nothing is fetched until its load() is called. */
export function sharedClassifier(): FrameClassifier {
  shared ??= new WorkerClassifier();
  return shared;
}
