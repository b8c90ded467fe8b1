// The admin API of the matching service, as the console calls it: every
// request carries the token as a bearer token (never in a URL or a cookie).
import { AdminBans, AdminReports, AdminStats, type AdminBan, type AdminReport } from '@dyad/protocol';

export class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'AdminError';
  }
}

const REQUEST_TIMEOUT_MS = 8_000;

export class AdminClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private async call<T>(path: string, schema: { parse(v: unknown): T } | undefined, init: RequestInit = {}): Promise<T> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      ...init,
      cache: 'no-store',
      headers: { Authorization: `Bearer ${this.token}`, ...(init.body ? { 'Content-Type': 'application/json' } : {}) },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const body: unknown = await res.json().catch(() => ({}));
    if (!res.ok) {
      const message = (body as { message?: unknown }).message;
      throw new AdminError(res.status, typeof message === 'string' ? message : `HTTP ${res.status}`);
    }
    return schema ? schema.parse(body) : (body as T);
  }

  stats() {
    return this.call('/admin/stats', AdminStats);
  }
  reports(): Promise<AdminReport[]> {
    return this.call('/admin/reports', AdminReports).then((r) => r.reports);
  }
  bans(): Promise<AdminBan[]> {
    return this.call('/admin/bans', AdminBans).then((r) => r.bans);
  }
  async ban(addr: string, durationMs: number, reason: string): Promise<void> {
    await this.call('/admin/bans', undefined, { method: 'POST', body: JSON.stringify({ addr, duration_ms: durationMs, reason }) });
  }
  async lift(addr: string): Promise<void> {
    await this.call(`/admin/bans/${encodeURIComponent(addr)}`, undefined, { method: 'DELETE' });
  }
}
