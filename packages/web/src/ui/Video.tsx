import { useEffect, useRef } from 'react';
import type { ReactElement } from 'react';

export interface VideoProps {
  readonly stream: MediaStream | null;
  readonly muted?: boolean;
  /** The local preview is mirrored, as people expect to see themselves. */
  readonly mirrored?: boolean;
  readonly className?: string;
  readonly label: string;
  readonly testId?: string;
}

export function Video({ stream, muted = false, mirrored = false, className, label, testId }: VideoProps): ReactElement {
  const ref = useRef<HTMLVideoElement>(null);
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
      ref={ref}
      className={`${className ?? ''}${mirrored ? ' mirrored' : ''}`}
      autoPlay
      playsInline
      muted={muted}
      aria-label={label}
      data-testid={testId}
    />
  );
}
