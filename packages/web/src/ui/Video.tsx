import { useCallback, useEffect, useRef } from 'react';
import type { ReactElement } from 'react';

export interface VideoProps {
  readonly stream: MediaStream | null;
  readonly muted?: boolean;
  /** The local preview is mirrored, as people expect to see themselves. */
  readonly mirrored?: boolean;
  readonly className?: string;
  readonly label: string;
  readonly testId?: string;
  /** Drawn blurred (the nudity guard), sound unchanged. */
  readonly blurred?: boolean;
  /** Told the element when it mounts and unmounts (the nudity guard takes frames from it). */
  readonly elementRef?: (el: HTMLVideoElement | null) => void;
}

export function Video({ stream, muted = false, mirrored = false, className, label, testId, blurred = false, elementRef }: VideoProps): ReactElement {
  const ref = useRef<HTMLVideoElement>(null);
  const setRef = useCallback(
    (el: HTMLVideoElement | null) => {
      ref.current = el;
      elementRef?.(el);
    },
    [elementRef],
  );
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (el.srcObject !== stream) el.srcObject = stream;
    // play() rejects when the element is detached or interrupted; the next stream retries.
    if (stream) void el.play?.()?.catch(() => undefined);
  }, [stream]);
  // React sets `muted` as a property only; the attribute matters to some autoplay policies.
  useEffect(() => {
    if (ref.current) ref.current.muted = muted;
  }, [muted]);
  return (
    <video
      ref={setRef}
      className={`${className ?? ''}${mirrored ? ' mirrored' : ''}${blurred ? ' video-blurred' : ''}`}
      autoPlay
      playsInline
      muted={muted}
      aria-label={label}
      data-testid={testId}
    />
  );
}
