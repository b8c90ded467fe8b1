// What the moderation console and the admin API read from the Redis store:
// pairings and reports per minute, the bans in force, the reported addresses
// with their reports; and lifting a ban. Plain reads and deletes, no
// transition: the scripts write all of it (lua/transitions.ts report, addBan,
// lua/admission.ts ban; lua/rooms.ts tally).
import { ACTIVITY_MINUTES, MINUTE_MS, type ActivityMinute, type BanRecord, type ReportSummary } from '../store.js';
import { countingReports, type ReportEntry, type ReportPolicy } from '../../core/rules.js';
import { type Connection } from './calls.js';
import { KEY } from './lua.js';

/** Pairings and reports of each of the last ACTIVITY_MINUTES minutes (act:<minute>). */
export async function activity(client: Connection, base: string, now: number): Promise<ActivityMinute[]> {
  const current = now - (now % MINUTE_MS);
  const minutes = Array.from({ length: ACTIVITY_MINUTES }, (_, i) => current - (ACTIVITY_MINUTES - 1 - i) * MINUTE_MS);
  const pipe = client.pipeline();
  for (const m of minutes) pipe.hmget(`${base}${KEY.activity}${m}`, 'p', 'r');
  const r = (await pipe.exec()) ?? [];
  return minutes.map((minute, i) => {
    const [p, rep] = (r[i]?.[1] as (string | null)[] | undefined) ?? [];
    return { minute, pairings: Number(p ?? 0), reports: Number(rep ?? 0) };
  });
}

/** Bans in force, each with its strike record (lua/admission.ts, ban): its number and the reports that made it. */
export async function listBans(client: Connection, base: string, now: number): Promise<BanRecord[]> {
  const r = await client.zrangebyscore(`${base}${KEY.bans}`, `(${now}`, '+inf', 'WITHSCORES');
  const bans: { addr: string; until: number }[] = [];
  for (let i = 0; i + 1 < r.length; i += 2) bans.push({ addr: r[i] ?? '', until: Number(r[i + 1]) });
  if (bans.length === 0) return [];
  const pipe = client.pipeline();
  for (const b of bans) pipe.hmget(`${base}${KEY.strike}${b.addr}`, 'n', 'rep', 'why', 'man');
  const strikes = (await pipe.exec()) ?? [];
  return bans.map((b, i) => {
    const [n, rep, why, man] = (strikes[i]?.[1] as (string | null)[] | undefined) ?? [];
    return { ...b, strike: Number(n ?? 1), reports: Number(rep ?? 0), reason: why ?? '', manual: man === '1' };
  });
}

/** Lift an address's ban and forget its strikes; whether there was one. */
export async function liftBan(client: Connection, base: string, addr: string): Promise<boolean> {
  const [[, removed] = [], [, listed] = []] =
    (await client.multi().del(`${base}${KEY.ban}${addr}`).zrem(`${base}${KEY.bans}`, addr).del(`${base}${KEY.strike}${addr}`).zrem(`${base}${KEY.strikesHeld}`, addr).exec()) ?? [];
  return Number(removed) > 0 || Number(listed) > 0;
}

/** The addresses reported within the report window, latest first (at most `limit`), with their reports. */
export async function listReports(client: Connection, base: string, now: number, limit: number, policy: ReportPolicy): Promise<ReportSummary[]> {
  const addrs = await client.zrevrangebyscore(`${base}${KEY.reportLogs}`, '+inf', String(now - policy.reportWindowMs), 'LIMIT', 0, limit);
  if (addrs.length === 0) return [];
  const pipe = client.pipeline();
  for (const addr of addrs) pipe.lrange(`${base}${KEY.reportLog}${addr}`, 0, -1).hgetall(`${base}${KEY.reports}${addr}`).get(`${base}${KEY.reportBanned}${addr}`);
  const all = (await pipe.exec()) ?? [];
  const out: ReportSummary[] = [];
  addrs.forEach((addr, i) => {
    const logged = ((all[3 * i]?.[1] as string[] | undefined) ?? [])
      .map(parseLogged)
      .filter((e): e is LoggedReport => e !== undefined && now - e.at <= policy.reportWindowMs);
    if (logged.length === 0) return;
    const entries = Object.values((all[3 * i + 1]?.[1] as Record<string, string> | undefined) ?? {})
      .map(parseReport)
      .filter((e): e is ReportEntry => e !== undefined && now - e.at <= policy.reportWindowMs);
    const bannedAt = Number((all[3 * i + 2]?.[1] as string | null | undefined) ?? NaN);
    const first = logged[0]?.at ?? now;
    out.push({
      addr,
      reporters: new Set(logged.map((e) => e.by)).size,
      counting: countingReports(entries, now, policy),
      last: logged[logged.length - 1]?.at ?? now,
      first,
      reasons: logged.map((e) => ({ at: e.at, reason: e.r })).reverse(),
      banned: bannedAt >= first,
    });
  });
  return out;
}

/** One entry of rep:<addr> (lua/transitions.ts, report): "<at>|<room>|<1 if it counts, else 0>". */
function parseReport(v: string): ReportEntry | undefined {
  const m = /^(\d+)\|([^|]*)\|([01])$/.exec(v);
  return m ? { at: Number(m[1]), room: m[2] ?? '', counts: m[3] === '1' } : undefined;
}

/** One entry of rlog:<addr> (lua/transitions.ts, report): when, by which address hash, and the reason. */
interface LoggedReport {
  at: number;
  by: string;
  r: string;
}

function parseLogged(v: string): LoggedReport | undefined {
  try {
    const e = JSON.parse(v) as Partial<LoggedReport>;
    return typeof e.at === 'number' && typeof e.by === 'string' ? { at: e.at, by: e.by, r: typeof e.r === 'string' ? e.r : '' } : undefined;
  } catch {
    return undefined;
  }
}
