// Starts of the legacy clients, which cannot solve a proof of work.
import type { Context } from '../http/context.js';
import type { Limiter } from '../store/store.js';

/**
 * A legacy client's start (a random-video-chat name's first POST, a go-megle
 * page's first find_match) carries no proof of work. While POW_MODE asks
 * Dyad's own clients for one, these are held to POW_RATE_PER_MIN starts an
 * address a minute (at least one), as POW_MODE=above-rate lets Dyad's own
 * through before it asks; both protocols count together. None with
 * POW_MODE=off.
 */
export function legacyStarts(ctx: Pick<Context, 'settings' | 'limiter'>): Limiter | undefined {
  const { powMode, powRatePerMin } = ctx.settings;
  return powMode === 'off' ? undefined : ctx.limiter('legacy-starts', Math.max(1, powRatePerMin), 60);
}
