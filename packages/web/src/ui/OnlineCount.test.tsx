import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, screen, waitFor } from '@testing-library/react';
import type { Mode } from '@dyad/protocol';
import { OnlineCount, useOnlineCounts } from './OnlineCount.js';
import { WithI18n } from '../test-support/i18n.js';

afterEach(cleanup);

function Counts({ url, mode, doFetch }: { url: string | null; mode: Mode; doFetch: typeof fetch }) {
  return <OnlineCount counts={useOnlineCounts(url, doFetch)} mode={mode} />;
}

const answer = (body: unknown, status = 200) =>
  vi.fn(async () => new Response(JSON.stringify(body), { status })) as unknown as typeof fetch & ReturnType<typeof vi.fn>;

describe('OnlineCount', () => {
  it('shows everyone online and those waiting for the chosen mode, from GET /online', async () => {
    const doFetch = answer({ online: 1234, waiting: { video: 3, text: 1 } });
    render(<Counts url="http://m.example:8000" mode="video" doFetch={doFetch} />, { wrapper: WithI18n });
    await waitFor(() => expect(screen.getByTestId('online-count').textContent).toContain('1,234 online · 3 waiting'));
    expect(doFetch.mock.calls[0]![0]).toBe('http://m.example:8000/online');
  });

  it('shows nothing for an answer that breaks the contract, an error, or no service address', async () => {
    for (const doFetch of [answer({ online: -1, waiting: {} }), answer({ status: 'error' }, 429)]) {
      render(<Counts url="http://m.example:8000" mode="text" doFetch={doFetch} />, { wrapper: WithI18n });
      await waitFor(() => expect(doFetch).toHaveBeenCalled());
      await new Promise((r) => setTimeout(r, 20));
      expect(screen.queryByTestId('online-count')).toBeNull();
      expect(document.querySelector('.online-count')?.textContent).toBe('');
      cleanup();
    }
    const never = answer({ online: 1, waiting: { video: 0, text: 0 } });
    render(<Counts url={null} mode="text" doFetch={never} />, { wrapper: WithI18n });
    expect(never).not.toHaveBeenCalled();
  });
});
