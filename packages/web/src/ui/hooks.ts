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

/** Elements that take focus with Tab, in document order. */
const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

export function focusableIn(root: HTMLElement): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(FOCUSABLE)];
}

/**
 * Keeps Tab and Shift+Tab inside `root` while it is shown and gives focus back
 * to what had it before when it goes (a modal dialog's focus contract).
 */
export function useFocusTrap(root: { readonly current: HTMLElement | null }): void {
  useEffect(() => {
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const onKey = (e: KeyboardEvent) => {
      const el = root.current;
      if (e.key !== 'Tab' || !el) return;
      const items = focusableIn(el);
      const first = items[0];
      const last = items[items.length - 1];
      if (!first || !last) return;
      const active = document.activeElement;
      if (e.shiftKey && (active === first || !el.contains(active))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (active === last || !el.contains(active))) {
        e.preventDefault();
        first.focus();
      }
    };
    document.addEventListener('keydown', onKey, true);
    return () => {
      document.removeEventListener('keydown', onKey, true);
      // The opener may be gone (or disabled) by now; then focus stays where the screen puts it.
      if (opener?.isConnected) opener.focus();
    };
  }, [root]);
}

/**
 * Esc closes the popover or dialog on top, and only that: listened to in the
 * capture phase and stopped there, so the chat screen's Esc (skip the
 * stranger) never sees it.
 */
export function useEscapeToClose(onClose: () => void): void {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape') return;
      e.stopImmediatePropagation();
      e.preventDefault();
      onClose();
    };
    window.addEventListener('keydown', onKey, true);
    return () => window.removeEventListener('keydown', onKey, true);
  }, [onClose]);
}

/** A phone or tablet: focusing a text field there opens the on-screen keyboard over the video. */
export const touchFirst = (): boolean => globalThis.matchMedia?.('(pointer: coarse)').matches ?? false;
