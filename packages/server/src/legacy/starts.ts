// Starts of the legacy clients, which cannot solve a proof of work.
import { takePoint, type Context } from '../http/context.js';

/**
 * A legacy client's start (a random-video-chat name's first POST, a go-megle
 * page's first find_match) carries no proof of work. While POW_MODE asks
 * Dyad's own clients for one, these are held to POW_RATE_PER_MIN starts an
 * address a minute (at least one), as POW_MODE=above-rate lets Dyad's own
 * through before it asks; both protocols count together (one limit of the
 * name). The gate: whether a start from `addr` may go on, counted.
 */
export function legacyStartGate(ctx: Pick<Context, 'settings' | 'limiter'>): (addr: string) => Promise<boolean> {
  const { powMode, powRatePerMin } = ctx.settings;
  if (powMode === 'off') return async () => true;
  const starts = ctx.limiter('legacy-starts', Math.max(1, powRatePerMin), 60);
  return (addr) => takePoint(starts, addr);
}
