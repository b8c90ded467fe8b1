import { useEffect, useState } from 'react';
import type { ReactElement } from 'react';
import type { Mode, OnlineResponse } from '@dyad/protocol';
import { useTranslation } from 'react-i18next';
import { ONLINE_POLL_MS, fetchOnline } from '../client/online.js';

/** The deployment's counts while `matchingUrl` is set, asked again every ONLINE_POLL_MS while the page is seen. */
export function useOnlineCounts(matchingUrl: string | null, doFetch?: typeof fetch): OnlineResponse | null {
  const [counts, setCounts] = useState<OnlineResponse | null>(null);
  useEffect(() => {
    if (!matchingUrl) return;
    let live = true;
    const ask = () => {
      if (globalThis.document?.visibilityState === 'hidden') return;
      void fetchOnline(matchingUrl, doFetch).then((c) => live && c && setCounts(c));
    };
    ask();
    const timer = setInterval(ask, ONLINE_POLL_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [matchingUrl, doFetch]);
  return counts;
}

/** "12 online · 3 waiting": everyone, and those waiting for the visitor's mode. */
export function OnlineCount({ counts, mode }: { readonly counts: OnlineResponse | null; readonly mode: Mode }): ReactElement {
  const { t } = useTranslation();
  // The line keeps its place while the counts are on their way, so nothing below it moves when they come.
  if (!counts) return <p className="online-count" aria-hidden="true" />;
  return (
    <p className="online-count" data-testid="online-count">
      <span className="online-dot" aria-hidden="true" />
      <span className="sr-only">{t('online.label')}: </span>
      {t('online.counts', { online: counts.online, waiting: counts.waiting[mode] })}
    </p>
  );
}
