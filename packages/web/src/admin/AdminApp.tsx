// The moderation console (/admin on the web role): sign in with ADMIN_TOKEN,
// watch live counts, read reports, ban and lift. Everything it shows comes
// from the admin API of the matching service; the token stays in this tab
// (sessionStorage) and goes only in the Authorization header.
import { useCallback, useEffect, useState } from 'react';
import type { FormEvent, ReactElement } from 'react';
import type { AdminBan, AdminReport, AdminStats } from '@dyad/protocol';
import { loadConfig } from '../client/config.js';
import { AdminClient, AdminError } from './api.js';
import { ActivityChart } from './ActivityChart.js';
import { displayText } from '../client/text.js';

const TOKEN_KEY = 'dyad-admin-token';
const REFRESH_MS = 5_000;

export const BAN_CHOICES: readonly { label: string; ms: number }[] = [
  { label: '1 hour', ms: 3_600_000 },
  { label: '1 day', ms: 86_400_000 },
  { label: '7 days', ms: 7 * 86_400_000 },
  { label: '30 days', ms: 30 * 86_400_000 },
];

const time = (unixSeconds: number): string => new Date(unixSeconds * 1000).toLocaleString();

export function AdminApp(): ReactElement {
  const [token, setToken] = useState<string | null>(() => sessionStorage.getItem(TOKEN_KEY));
  const [client, setClient] = useState<AdminClient | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (!token) return setClient(null);
    let gone = false;
    void loadConfig().then((config) => !gone && setClient(new AdminClient(config.matchingUrl, token)));
    return () => {
      gone = true;
    };
  }, [token]);

  const signOut = useCallback((why: string | null) => {
    sessionStorage.removeItem(TOKEN_KEY);
    setToken(null);
    setError(why);
  }, []);

  if (!token) {
    return (
      <SignIn
        error={error}
        onSignIn={(t) => {
          sessionStorage.setItem(TOKEN_KEY, t);
          setError(null);
          setToken(t);
        }}
      />
    );
  }
  if (!client) return <main className="admin"><p>Loading…</p></main>;
  return <Console client={client} onSignOut={signOut} />;
}

function SignIn({ error, onSignIn }: { error: string | null; onSignIn(token: string): void }): ReactElement {
  const [value, setValue] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim()) onSignIn(value.trim());
  };
  return (
    <main className="admin">
      <h1>Dyad moderation</h1>
      <form className="admin-card" onSubmit={submit}>
        <label htmlFor="admin-token">Admin token</label>
        <input id="admin-token" type="password" autoComplete="current-password" value={value} onChange={(e) => setValue(e.target.value)} />
        <button type="submit">Sign in</button>
        {error && <p role="alert" className="admin-error">{error}</p>}
      </form>
    </main>
  );
}

function Console({ client, onSignOut }: { client: AdminClient; onSignOut(why: string | null): void }): ReactElement {
  const [stats, setStats] = useState<AdminStats | null>(null);
  const [reports, setReports] = useState<AdminReport[]>([]);
  const [bans, setBans] = useState<AdminBan[]>([]);
  const [message, setMessage] = useState<string | null>(null);

  const failed = useCallback(
    (err: unknown) => {
      if (err instanceof AdminError && err.status === 401) return onSignOut('That token was not accepted.');
      setMessage(err instanceof Error ? err.message : String(err));
    },
    [onSignOut],
  );

  const refresh = useCallback(async () => {
    try {
      const [s, r, b] = await Promise.all([client.stats(), client.reports(), client.bans()]);
      setStats(s);
      setReports(r);
      setBans(b);
    } catch (err) {
      failed(err);
    }
  }, [client, failed]);

  useEffect(() => {
    void refresh();
    const t = setInterval(() => void refresh(), REFRESH_MS);
    return () => clearInterval(t);
  }, [refresh]);

  const act = async (what: Promise<void>, done: string) => {
    try {
      await what;
      setMessage(done);
      await refresh();
    } catch (err) {
      failed(err);
    }
  };

  const lastFull = stats?.activity[stats.activity.length - 2];
  return (
    <main className="admin">
      <header className="admin-head">
        <h1>Dyad moderation</h1>
        <button type="button" onClick={() => onSignOut(null)}>
          Sign out
        </button>
      </header>
      {message && (
        <p role="status" className="admin-message">
          {message}
        </p>
      )}

      <section aria-label="Live counts" className="admin-card">
        <h2>Now</h2>
        <dl className="admin-counts" data-testid="counts">
          <Count label="Online" value={stats?.online} />
          <Count label="Waiting, video" value={stats?.waiting.video} />
          <Count label="Waiting, text" value={stats?.waiting.text} />
          <Count label="Rooms" value={stats?.rooms} />
          <Count label="Pairings / min" value={lastFull?.pairings} />
          <Count label="Reports / min" value={lastFull?.reports} />
        </dl>
        {stats && <ActivityChart minutes={stats.activity} />}
      </section>

      <section aria-label="Reports" className="admin-card">
        <h2>Reports</h2>
        {reports.length === 0 && <p>No reports in the window.</p>}
        <ul className="admin-list">
          {reports.map((r) => (
            <li key={r.addr} className="admin-item" data-testid="report" data-addr={r.addr}>
              <p>
                <code>{r.addr}</code> · {r.reporters} distinct reporter{r.reporters === 1 ? '' : 's'} · last {time(r.last)} ·{' '}
                <strong>{r.banned ? 'banned after' : 'no ban'}</strong>
              </p>
              <ul className="admin-reasons">
                {r.reasons.map((e, i) => (
                  <li key={i}>
                    {time(e.at)}: {e.reason ? <bdi>{displayText(e.reason)}</bdi> : '(no reason given)'}
                  </li>
                ))}
              </ul>
              <BanForm addr={r.addr} onBan={(ms, reason) => act(client.ban(r.addr, ms, reason), 'Banned.')} />
            </li>
          ))}
        </ul>
      </section>

      <section aria-label="Bans" className="admin-card">
        <h2>Bans in force</h2>
        {bans.length === 0 && <p>No bans in force.</p>}
        <ul className="admin-list">
          {bans.map((b) => (
            <li key={b.addr} className="admin-item" data-testid="ban" data-addr={b.addr}>
              <p>
                <code>{b.addr}</code> · until {time(b.until)} · <bdi>{displayText(b.reason)}</bdi>
              </p>
              <button type="button" onClick={() => void act(client.lift(b.addr), 'Ban lifted.')}>
                Lift ban
              </button>
            </li>
          ))}
        </ul>
      </section>

      <section aria-label="Ban an address" className="admin-card">
        <h2>Ban an address hash</h2>
        <BanForm onBan={(ms, reason, addr) => act(client.ban(addr, ms, reason), 'Banned.')} />
      </section>
    </main>
  );
}

function Count({ label, value }: { label: string; value: number | undefined }): ReactElement {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{value ?? '…'}</dd>
    </div>
  );
}

/** Ban for a chosen time: from a report (addr given) or by an address hash typed in. */
function BanForm({ addr, onBan }: { addr?: string; onBan(ms: number, reason: string, addr: string): void }): ReactElement {
  const [typed, setTyped] = useState('');
  const [ms, setMs] = useState(BAN_CHOICES[1]?.ms ?? 86_400_000);
  const [reason, setReason] = useState('');
  const target = addr ?? typed.trim();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (target) onBan(ms, reason.trim(), target);
  };
  return (
    <form className="admin-ban" onSubmit={submit} aria-label={addr ? `Ban ${addr}` : 'Ban by address hash'}>
      {!addr && <input aria-label="Address hash" placeholder="address hash" value={typed} onChange={(e) => setTyped(e.target.value)} />}
      <select aria-label="Ban length" value={ms} onChange={(e) => setMs(Number(e.target.value))}>
        {BAN_CHOICES.map((c) => (
          <option key={c.ms} value={c.ms}>
            {c.label}
          </option>
        ))}
      </select>
      <input aria-label="Reason" placeholder="reason" maxLength={200} value={reason} onChange={(e) => setReason(e.target.value)} />
      <button type="submit" disabled={!target}>
        Ban
      </button>
    </form>
  );
}
