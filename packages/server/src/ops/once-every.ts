// Logging that an attacker can trigger at will (a full process, an address at
// its limit, files that cannot be opened) is written at most once a period
// for each kind, so that the log neither floods nor blocks.

/**
 * A gate that lets `emit` run for a key at most once every `everyMs`; `emit`
 * is told how many times the key was asked since it last ran (this time
 * included).
 */
export function onceEvery(everyMs: number, clock: () => number = Date.now): (key: string, emit: (times: number) => void) => void {
  const last = new Map<string, { at: number; times: number }>();
  return (key, emit) => {
    const now = clock();
    const seen = last.get(key);
    const times = (seen?.times ?? 0) + 1;
    if (seen && now - seen.at < everyMs) {
      seen.times = times;
      return;
    }
    last.set(key, { at: now, times: 0 });
    emit(times);
  };
}
