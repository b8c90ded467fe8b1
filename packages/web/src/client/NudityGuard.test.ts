// The guard's rules, as pure functions: when a stranger's video is blurred,
// how verdicts follow scores, and how checks back off on a slow device. The
// real model runs in the browser tests (e2e/nudity.e2e.test.ts).
import { describe, expect, it } from 'vitest';
import { DEFAULT_NUDITY, parseConfig } from './config.js';
import type { NudityMode } from './config.js';
import {
  BACKOFF_FACTOR,
  CLEAR_AFTER_FLAG_SAFE_FRAMES,
  CLEAR_AFTER_SAFE_FRAMES,
  applyScore,
  initialGuardState,
  isBlurred,
  nextInterval,
} from './NudityGuard.js';
import type { GuardState } from './NudityGuard.js';
import { nudityScore } from './nudityMessages.js';

const THRESHOLD = 0.7;
const SAFE = 0.1;
const FLAGGED = 0.9;

const start = (mode: NudityMode): GuardState => initialGuardState({ ...DEFAULT_NUDITY, mode });
const scores = (s: GuardState, ...list: number[]): GuardState => list.reduce((acc, x) => applyScore(acc, x, THRESHOLD), s);

describe('blur-until-checked', () => {
  it(`is blurred until ${CLEAR_AFTER_SAFE_FRAMES} frames in a row are safe`, () => {
    let s = start('blur-until-checked');
    expect(isBlurred(s)).toBe(true);
    for (let i = 1; i < CLEAR_AFTER_SAFE_FRAMES; i++) {
      s = scores(s, SAFE);
      expect(isBlurred(s)).toBe(true);
    }
    s = scores(s, SAFE);
    expect(s.verdict).toBe('safe');
    expect(isBlurred(s)).toBe(false);
  });

  it(`blurs again on a flagged frame, and clears only after ${CLEAR_AFTER_FLAG_SAFE_FRAMES} safe frames in a row`, () => {
    let s = scores(start('blur-until-checked'), SAFE, SAFE, FLAGGED);
    expect(s.verdict).toBe('flagged');
    expect(isBlurred(s)).toBe(true);
    s = scores(s, ...Array<number>(CLEAR_AFTER_FLAG_SAFE_FRAMES - 1).fill(SAFE), FLAGGED);
    expect(isBlurred(s)).toBe(true);
    s = scores(s, ...Array<number>(CLEAR_AFTER_FLAG_SAFE_FRAMES).fill(SAFE));
    expect(isBlurred(s)).toBe(false);
  });

  it('a score at the threshold counts as flagged', () => {
    expect(scores(start('blur-until-checked'), THRESHOLD).verdict).toBe('flagged');
  });
});

describe('blur-on-detect', () => {
  it('is clear until a frame is flagged', () => {
    let s = start('blur-on-detect');
    expect(isBlurred(s)).toBe(false);
    s = scores(s, SAFE);
    expect(isBlurred(s)).toBe(false);
    s = scores(s, FLAGGED);
    expect(isBlurred(s)).toBe(true);
  });
});

describe('off', () => {
  it('never blurs, whatever the scores', () => {
    expect(isBlurred(scores(start('off'), FLAGGED, FLAGGED))).toBe(false);
  });
});

describe("the viewer's choice", () => {
  it('Show wins over a flag and holds while the frames stay flagged', () => {
    let s = scores(start('blur-until-checked'), FLAGGED);
    s = { ...s, choice: 'reveal' };
    expect(isBlurred(s)).toBe(false);
    s = scores(s, FLAGGED, FLAGGED);
    expect(isBlurred(s)).toBe(false);
  });

  it('a new flag after the viewer showed an unflagged video blurs it again', () => {
    let s: GuardState = { ...start('blur-until-checked'), choice: 'reveal' };
    expect(isBlurred(s)).toBe(false);
    s = scores(s, FLAGGED);
    expect(s.choice).toBe(null);
    expect(isBlurred(s)).toBe(true);
  });

  it('Blur holds when every frame is safe', () => {
    let s: GuardState = { ...start('blur-on-detect'), choice: 'blur' };
    s = scores(s, SAFE, SAFE, SAFE);
    expect(isBlurred(s)).toBe(true);
  });
});

describe('backoff', () => {
  it(`waits the setting while a frame costs at most 1/${BACKOFF_FACTOR} of it, and ${BACKOFF_FACTOR}x the cost beyond`, () => {
    expect(nextInterval(500, 100)).toEqual({ intervalMs: 500, slow: false });
    expect(nextInterval(500, 125)).toEqual({ intervalMs: 500, slow: false });
    expect(nextInterval(500, 300)).toEqual({ intervalMs: 1_200, slow: true });
  });
});

describe('score', () => {
  it('counts Porn and Hentai, not Sexy, Drawing or Neutral', () => {
    expect(
      nudityScore([
        { className: 'Porn', probability: 0.3 },
        { className: 'Hentai', probability: 0.2 },
        { className: 'Sexy', probability: 0.4 },
        { className: 'Neutral', probability: 0.1 },
      ]),
    ).toBeCloseTo(0.5);
  });
});

describe('/config.json', () => {
  const urls = { matching_url: 'http://h:8000', signalling_url: 'http://h:8001' };
  it('reads the nudity settings', () => {
    const c = parseConfig({ ...urls, nudity_filter: 'blur-until-checked', nudity_threshold: 0.05, nudity_check_interval_ms: 250 });
    expect(c?.nudity).toEqual({ mode: 'blur-until-checked', threshold: 0.05, intervalMs: 250 });
  });
  it('falls back to the defaults field by field for what it does not understand', () => {
    const c = parseConfig({ ...urls, nudity_filter: 'strict', nudity_threshold: 0.2, nudity_check_interval_ms: 5 });
    expect(c?.nudity).toEqual({ mode: DEFAULT_NUDITY.mode, threshold: 0.2, intervalMs: DEFAULT_NUDITY.intervalMs });
    expect(parseConfig(urls)?.nudity).toEqual(DEFAULT_NUDITY);
  });
});
