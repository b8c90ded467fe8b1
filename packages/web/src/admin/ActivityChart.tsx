import type { ReactElement } from 'react';
import type { AdminActivityMinute } from '@dyad/protocol';

const W = 300;
const H = 80;

/** Pairings and reports per minute over the last hour: two lines, drawn as SVG (no chart library). */
export function ActivityChart({ minutes }: { minutes: readonly AdminActivityMinute[] }): ReactElement {
  const top = Math.max(1, ...minutes.map((m) => Math.max(m.pairings, m.reports)));
  const line = (pick: (m: AdminActivityMinute) => number): string =>
    minutes.map((m, i) => `${((i / Math.max(1, minutes.length - 1)) * W).toFixed(1)},${(H - (pick(m) / top) * (H - 4)).toFixed(1)}`).join(' ');
  return (
    <figure className="admin-chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Pairings and reports per minute, last hour; highest ${top} a minute`}>
        <polyline points={line((m) => m.pairings)} fill="none" stroke="currentColor" strokeWidth="1.5" />
        <polyline points={line((m) => m.reports)} fill="none" stroke="#dc2626" strokeWidth="1.5" />
      </svg>
      <figcaption>
        Last hour, per minute: <span>pairings</span> and <span className="admin-red">reports</span> (highest {top})
      </figcaption>
    </figure>
  );
}
