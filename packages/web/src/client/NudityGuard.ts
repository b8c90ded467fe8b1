// Nudity protection in the browser of the person who would see it (issue 13):
// one guard per stranger's video. Frames are taken from the <video> element a
// few times a second, scaled down here and classified in a worker; the server
// never sees video. Whether the video is blurred follows the operator's mode,
// the verdicts so far, and the viewer's own choice, which always wins until a
// new flag.
//
// The model loads off the path of the first frame: the guard waits for the
// stranger's first frame on screen before it asks for the classifier, whose
// code and weights are fetched only then (once per page).
import type { NudityMode, NuditySettings } from './config.js';
import type { FrameClassifier } from './NudityClassifier.js';
import { FRAME_SIZE } from './nudityMessages.js';
import { Store } from './Store.js';

/** Consecutive frames under the threshold that clear a stranger not yet checked. */
export const CLEAR_AFTER_SAFE_FRAMES = 2;
/** Consecutive frames under the threshold that clear a flagged stranger: one safe frame between two flagged ones is no reason to unblur. */
export const CLEAR_AFTER_FLAG_SAFE_FRAMES = 6;
/**
 * The classifier may keep its thread busy at most 1 / BACKOFF_FACTOR of the
 * time: when a frame takes longer than interval / BACKOFF_FACTOR, the next
 * check waits BACKOFF_FACTOR times that frame's cost instead.
 */
export const BACKOFF_FACTOR = 4;
/** Frames that failed to classify in a row before the check gives up for this stranger. */
const MAX_FAILURES = 3;
/** Performance measures kept before old ones are cleared (two a second for hours would pile up). */
const MAX_MEASURES = 200;

/** What the classifier has said of this stranger's video. */
export type Verdict = 'unchecked' | 'safe' | 'flagged';
export type ModelStatus = 'idle' | 'loading' | 'ready' | 'failed';

export interface GuardState {
  readonly mode: NudityMode;
  readonly verdict: Verdict;
  readonly model: ModelStatus;
  /** The viewer's one-click choice for this stranger; null: the filter decides. A new flag clears a `reveal`. */
  readonly choice: 'reveal' | 'blur' | null;
  /** Frames under the threshold since the last one at or over it. */
  readonly safeRun: number;
  /** Frames classified for this stranger. */
  readonly checks: number;
  /** The classifier's time on the last frame, ms. */
  readonly costMs: number | null;
  /** Between checks now, ms: the setting, or more while the device is slow. */
  readonly intervalMs: number;
  /** The device is too slow for the configured rate: fewer frames are checked. */
  readonly slow: boolean;
}

export function initialGuardState(settings: NuditySettings): GuardState {
  return {
    mode: settings.mode,
    verdict: 'unchecked',
    model: 'idle',
    choice: null,
    safeRun: 0,
    checks: 0,
    costMs: null,
    intervalMs: settings.intervalMs,
    slow: false,
  };
}

/** The state after one frame's score. */
export function applyScore(s: GuardState, score: number, threshold: number): GuardState {
  const checks = s.checks + 1;
  if (score >= threshold) {
    // A reveal was a choice about what the viewer had seen; a new flag asks again.
    const choice = s.verdict !== 'flagged' && s.choice === 'reveal' ? null : s.choice;
    return { ...s, checks, verdict: 'flagged', safeRun: 0, choice };
  }
  const safeRun = s.safeRun + 1;
  const needed = s.verdict === 'flagged' ? CLEAR_AFTER_FLAG_SAFE_FRAMES : CLEAR_AFTER_SAFE_FRAMES;
  const verdict = s.verdict === 'safe' || safeRun >= needed ? 'safe' : s.verdict;
  return { ...s, checks, safeRun, verdict };
}

/** The next wait between checks, and whether it is longer than the setting because the device is slow. */
export function nextInterval(settingMs: number, costMs: number): { intervalMs: number; slow: boolean } {
  const intervalMs = Math.max(settingMs, Math.round(costMs * BACKOFF_FACTOR));
  return { intervalMs, slow: intervalMs > settingMs };
}

export function isBlurred(s: GuardState): boolean {
  if (s.mode === 'off') return false;
  if (s.choice) return s.choice === 'blur';
  if (s.verdict === 'flagged') return true;
  return s.mode === 'blur-until-checked' && s.verdict !== 'safe';
}

type FrameSource = Pick<HTMLVideoElement, 'readyState' | 'videoWidth' | 'addEventListener' | 'removeEventListener'> &
  Partial<Pick<HTMLVideoElement, 'requestVideoFrameCallback' | 'cancelVideoFrameCallback'>> &
  CanvasImageSource;

export class NudityGuard {
  readonly store: Store<GuardState>;
  private video: FrameSource | null = null;
  private started = false;
  private disposed = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private unwatch: (() => void) | null = null;

  constructor(
    private readonly settings: NuditySettings,
    private readonly classifier: () => FrameClassifier,
  ) {
    this.store = new Store(initialGuardState(settings));
  }

  get blurred(): boolean {
    return isBlurred(this.store.get());
  }

  /** The element showing the stranger's video; checking starts once it presents its first frame. */
  watch(video: FrameSource | null): void {
    if (this.disposed || video === this.video) return;
    this.unwatch?.();
    this.unwatch = null;
    this.video = video;
    if (!video || this.started || this.settings.mode === 'off') return;
    if (video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA && video.videoWidth > 0) {
      this.begin();
      return;
    }
    if (video.requestVideoFrameCallback) {
      const handle = video.requestVideoFrameCallback(() => this.begin());
      this.unwatch = () => video.cancelVideoFrameCallback?.(handle);
    } else {
      const onData = () => this.begin();
      video.addEventListener('loadeddata', onData, { once: true });
      this.unwatch = () => video.removeEventListener('loadeddata', onData);
    }
  }

  reveal(): void {
    this.store.update((s) => ({ ...s, choice: 'reveal' }));
  }

  blur(): void {
    this.store.update((s) => ({ ...s, choice: 'blur' }));
  }

  dispose(): void {
    this.disposed = true;
    this.unwatch?.();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.video = null;
  }

  private begin(): void {
    if (this.started || this.disposed) return;
    this.started = true;
    this.unwatch = null;
    this.store.update((s) => ({ ...s, model: 'loading' }));
    const startedAt = performance.now();
    this.classifier()
      .load()
      .then(
        (info) => {
          measure('dyad:nudity-load', startedAt, { backend: info.backend, workerLoadMs: info.loadMs });
          if (this.disposed) return;
          this.store.update((s) => ({ ...s, model: 'ready' }));
          this.schedule(0);
        },
        (err: unknown) => {
          // Said once per stranger, for whoever looks at the console; the screen says it too.
          console.warn('nudity check unavailable:', err instanceof Error ? err.message : err);
          if (!this.disposed) this.store.update((s) => ({ ...s, model: 'failed' }));
        },
      );
  }

  private schedule(ms: number): void {
    if (this.disposed) return;
    this.timer = setTimeout(() => void this.check(), ms);
  }

  private async check(): Promise<void> {
    this.timer = null;
    const video = this.video;
    const { intervalMs } = this.store.get();
    // Nothing to look at (no frame yet, a hidden tab): look again later.
    if (!video || video.readyState < HTMLMediaElement.HAVE_CURRENT_DATA || video.videoWidth === 0 || document.hidden) {
      this.schedule(intervalMs);
      return;
    }
    const startedAt = performance.now();
    try {
      const frame = await createImageBitmap(video, { resizeWidth: FRAME_SIZE, resizeHeight: FRAME_SIZE, resizeQuality: 'low' });
      const verdict = await this.classifier().classify(frame);
      measure('dyad:nudity-check', startedAt, { workMs: verdict.workMs, score: verdict.score });
      if (this.disposed) return;
      this.failures = 0;
      const next = nextInterval(this.settings.intervalMs, verdict.workMs);
      this.store.update((s) => ({ ...applyScore(s, verdict.score, this.settings.threshold), costMs: verdict.workMs, ...next }));
      this.schedule(next.intervalMs);
    } catch {
      if (this.disposed) return;
      if (++this.failures >= MAX_FAILURES) {
        this.store.update((s) => ({ ...s, model: 'failed' }));
        return;
      }
      this.schedule(intervalMs);
    }
  }
}

/** A User Timing entry, so benchmarks and tests in a real browser can read what a check costs. */
function measure(name: string, start: number, detail: Record<string, unknown>): void {
  if (typeof performance.measure !== 'function') return;
  if (performance.getEntriesByName(name, 'measure').length >= MAX_MEASURES) performance.clearMeasures(name);
  performance.measure(name, { start, end: performance.now(), detail });
}
