import { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import type { Store } from '../client/Store.js';

export function useStore<T>(store: Store<T>): T {
  return useSyncExternalStore(store.subscribe, store.get, store.get);
}

/** A value kept in localStorage under `key`; falls back quietly where storage is unavailable. */
export function usePersistentState<T>(key: string, initial: T, isValid: (v: unknown) => v is T): [T, (v: T) => void] {
  const [value, setValue] = useState<T>(() => {
    try {
      const raw = globalThis.localStorage?.getItem(key);
      if (raw !== null && raw !== undefined) {
        const parsed: unknown = JSON.parse(raw);
        if (isValid(parsed)) return parsed;
      }
    } catch {
      // private mode or corrupted value: start fresh
    }
    return initial;
  });
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    try {
      globalThis.localStorage?.setItem(key, JSON.stringify(value));
    } catch {
      // storage full or blocked; the setting still applies for this visit
    }
  }, [key, value]);
  return [value, setValue];
}
