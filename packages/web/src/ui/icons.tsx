// Inline icons (no icon font or CDN). 24x24, stroke follows currentColor.
import type { ReactElement } from 'react';

export type IconName =
  | 'mic'
  | 'mic-off'
  | 'cam'
  | 'cam-off'
  | 'flip'
  | 'next'
  | 'stop'
  | 'flag'
  | 'settings'
  | 'send'
  | 'close';

const PATHS: Record<IconName, ReactElement> = {
  mic: (
    <>
      <rect x="9" y="3" width="6" height="11" rx="3" />
      <path d="M5 11a7 7 0 0 0 14 0M12 18v3" />
    </>
  ),
  'mic-off': (
    <>
      <path d="M15 10V6a3 3 0 0 0-5.7-1.3M9 9v2a3 3 0 0 0 4.9 2.3M5 11a7 7 0 0 0 11.6 5.3M19 11a7 7 0 0 1-.6 2.8M12 18v3M3 3l18 18" />
    </>
  ),
  cam: (
    <>
      <rect x="3" y="6" width="13" height="12" rx="2" />
      <path d="m16 10 5-3v10l-5-3z" />
    </>
  ),
  flip: (
    <>
      <path d="M4 9a8 8 0 0 1 14.3-3.5L20 8M20 4v4h-4M20 15a8 8 0 0 1-14.3 3.5L4 16M4 20v-4h4" />
      <circle cx="12" cy="12" r="2.5" />
    </>
  ),
  'cam-off': (
    <>
      <path d="M10.5 6H14a2 2 0 0 1 2 2v3.5l5-3.5v10l-2.5-1.75M16 16a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2M3 3l18 18" />
    </>
  ),
  next: <path d="M5 5l7 7-7 7M13 5l7 7-7 7" />,
  stop: <rect x="6" y="6" width="12" height="12" rx="2" />,
  flag: <path d="M5 21V4m0 0h11l-2 4 2 4H5" />,
  settings: (
    <>
      <circle cx="12" cy="12" r="3" />
      <path d="M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-2.9 1.2V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-2.9-1.2l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1A1.7 1.7 0 0 0 3 14.1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.2-2.9l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1A1.7 1.7 0 0 0 10 3.1V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 2.9 1.2l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0 1.2 2.9h.1a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z" />
    </>
  ),
  send: <path d="M4 12 20 4l-4 16-4-7zM12 13l8-9" />,
  close: <path d="M6 6l12 12M18 6 6 18" />,
};

export function Icon({ name }: { name: IconName }): ReactElement {
  return (
    <svg
      className="icon"
      viewBox="0 0 24 24"
      width="20"
      height="20"
      fill="none"
      stroke="currentColor"
      strokeWidth="2"
      strokeLinecap="round"
      strokeLinejoin="round"
      aria-hidden="true"
      focusable="false"
    >
      {PATHS[name]}
    </svg>
  );
}
