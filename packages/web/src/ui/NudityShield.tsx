// The stranger's video under the nudity guard: a hook that keeps one guard
// per stranger, and the blur panel and controls drawn over the video. The
// viewer can always show or blur the video with one click, and report.
import { useCallback, useEffect, useRef, useState } from 'react';
import type { ReactElement } from 'react';
import { useTranslation } from 'react-i18next';
import type { TFunction } from 'i18next';
import type { NuditySettings } from '../client/config.js';
import { sharedClassifier } from '../client/NudityClassifier.js';
import { NudityGuard, isBlurred, type GuardState } from '../client/NudityGuard.js';
import { Store } from '../client/Store.js';
import { useStore } from './hooks.js';
import './nudity.css';

export interface NudityView {
  /** Null while the filter is off or there is no stranger's video. */
  readonly state: GuardState | null;
  readonly blurred: boolean;
  /** The <video> element frames are taken from (a ref callback). */
  readonly setVideo: (el: HTMLVideoElement | null) => void;
  reveal(): void;
  blur(): void;
}

const NO_GUARD = new Store<GuardState | null>(null);

export function useNudityGuard(settings: NuditySettings, stream: MediaStream | null): NudityView {
  const [current, setCurrent] = useState<{ guard: NudityGuard; stream: MediaStream } | null>(null);
  const video = useRef<HTMLVideoElement | null>(null);
  const guardRef = useRef<NudityGuard | null>(null);

  useEffect(() => {
    if (!stream || settings.mode === 'off') {
      setCurrent(null);
      return;
    }
    // A new stranger starts unchecked, and the viewer's last choice does not carry over.
    const guard = new NudityGuard(settings, sharedClassifier);
    guardRef.current = guard;
    guard.watch(video.current);
    setCurrent({ guard, stream });
    return () => {
      guard.dispose();
      if (guardRef.current === guard) guardRef.current = null;
    };
  }, [stream, settings]);

  const setVideo = useCallback((el: HTMLVideoElement | null) => {
    video.current = el;
    guardRef.current?.watch(el);
  }, []);

  const guard = current && current.stream === stream ? current.guard : null;
  const state = useStore<GuardState | null>(guard ? guard.store : NO_GUARD);
  // Before the guard of a new stranger exists (one render), blur-until-checked already blurs.
  const blurred = state ? isBlurred(state) : stream !== null && settings.mode === 'blur-until-checked';
  return {
    state,
    blurred,
    setVideo,
    reveal: () => guard?.reveal(),
    blur: () => guard?.blur(),
  };
}

export interface NudityShieldProps {
  readonly view: NudityView;
  readonly canReport: boolean;
  onReport(): void;
}

function headline(s: GuardState | null, t: TFunction): { title: string; hint: string | null } {
  if (s?.choice === 'blur') return { title: t('nudity.blurredByYou'), hint: null };
  if (s?.verdict === 'flagged') return { title: t('nudity.flagged'), hint: t('nudity.flaggedHint') };
  if (s?.model === 'failed') return { title: t('nudity.failed'), hint: null };
  return { title: t('nudity.checking'), hint: t('nudity.checkingHint') };
}

export function NudityShield({ view, canReport, onReport }: NudityShieldProps): ReactElement | null {
  const { t } = useTranslation();
  const s = view.state;
  if (!s && !view.blurred) return null;
  const { title, hint } = headline(s, t);
  return (
    <div
      className="nudity"
      data-testid="nudity"
      data-verdict={s?.verdict ?? 'unchecked'}
      data-blurred={view.blurred ? 'true' : 'false'}
      data-checks={s?.checks ?? 0}
      data-model={s?.model ?? 'idle'}
    >
      {view.blurred ? (
        <div className="nudity-panel" role="group" aria-label={title}>
          <p className="nudity-title">{title}</p>
          {hint && <p className="nudity-hint">{hint}</p>}
          <div className="row">
            <button type="button" className="btn btn-primary" onClick={view.reveal}>
              {t('nudity.show')}
            </button>
            {canReport && (
              <button type="button" className="btn btn-danger-ghost nudity-report" onClick={onReport}>
                {t('nudity.report')}
              </button>
            )}
          </div>
        </div>
      ) : (
        <div className="nudity-corner">
          {s?.verdict === 'flagged' && <span className="nudity-badge">{t('nudity.flaggedBadge')}</span>}
          <button type="button" className="btn nudity-blur" onClick={view.blur}>
            {t('nudity.blur')}
          </button>
        </div>
      )}
      {s?.slow && (
        <p className="nudity-slow" role="status">
          {t('nudity.slow', { seconds: s.intervalMs / 1000 })}
        </p>
      )}
    </div>
  );
}
