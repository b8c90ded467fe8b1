import type { ReactElement } from 'react';
import { useTranslation } from 'react-i18next';
import type { MediaProblem } from '../client/LocalMedia.js';

const KEY = {
  denied: 'media.denied',
  'not-found': 'media.notFound',
  'in-use': 'media.inUse',
  insecure: 'media.insecure',
  unknown: 'media.unknown',
} as const satisfies Record<MediaProblem['kind'], string>;

/** Why the camera cannot be used, in the interface's language. */
export function MediaProblemText({ problem }: { readonly problem: MediaProblem }): ReactElement {
  const { t } = useTranslation();
  return <>{t(KEY[problem.kind])}</>;
}
