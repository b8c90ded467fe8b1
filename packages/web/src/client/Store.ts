// A minimal observable value, shaped for React's useSyncExternalStore.

export type Listener = () => void;

export class Store<T> {
  private listeners = new Set<Listener>();

  constructor(private value: T) {}

  get = (): T => this.value;

  set(value: T): void {
    if (Object.is(value, this.value)) return;
    this.value = value;
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (err) {
        // One broken subscriber must not stop the others from hearing the change.
        console.error('store listener failed', err);
      }
    }
  }

  update(fn: (value: T) => T): void {
    this.set(fn(this.value));
  }

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };
}
