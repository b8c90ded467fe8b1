// The admin API's bodies and answers (docs/SECURITY.md, "Moderation"): the
// moderation console (packages/web, /admin) and the server share them.
import { z } from 'zod';
import { text, mode } from './fields.js';

/** A keyed hash of a client address, as the admin API lists it (22 base64url characters). */
export const addressHash = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'must be an address hash as the admin API lists it');

/** Longest ban an operator may set by hand: a year. */
export const MAX_MANUAL_BAN_MS = 365 * 24 * 3_600_000;
/** Longest reason kept with a ban made by hand. */
export const MAX_BAN_REASON_CHARS = 200;

/** POST /admin/bans: ban an address hash by hand for a chosen time. */
export const AdminBanRequest = z.object({
  addr: addressHash,
  duration_ms: z.number().int().min(60_000, 'must be at least a minute (60000)').max(MAX_MANUAL_BAN_MS, 'must be at most a year'),
  reason: text(0, MAX_BAN_REASON_CHARS).optional(),
});
export type AdminBanRequest = z.infer<typeof AdminBanRequest>;

export const AdminBan = z.object({
  addr: z.string(),
  /** End, Unix seconds. */
  until: z.number(),
  strike: z.number(),
  reports: z.number(),
  /** The operator's reason for a ban made by hand; for one made by reports, what made it. */
  reason: z.string(),
  manual: z.boolean(),
});
export type AdminBan = z.infer<typeof AdminBan>;
export const AdminBans = z.object({ bans: z.array(AdminBan) });

export const AdminReport = z.object({
  addr: z.string(),
  reporters: z.number(),
  counting: z.number(),
  /** Latest report, Unix seconds. */
  last: z.number(),
  /** Earliest report still kept, Unix seconds. */
  first: z.number(),
  /** The reasons given, newest first (an empty string when none was). */
  reasons: z.array(z.object({ at: z.number(), reason: z.string() })),
  /** A ban of the address came after its first report still kept. */
  banned: z.boolean(),
});
export type AdminReport = z.infer<typeof AdminReport>;
export const AdminReports = z.object({ window_ms: z.number(), threshold: z.number(), reports: z.array(AdminReport) });

export const AdminActivityMinute = z.object({
  /** Start of the minute, Unix seconds. */
  minute: z.number(),
  pairings: z.number(),
  reports: z.number(),
});
export type AdminActivityMinute = z.infer<typeof AdminActivityMinute>;

export const AdminStats = z.object({
  waiting: z.record(mode, z.number()),
  rooms: z.number(),
  sessions: z.number(),
  /** Sessions with an open matching socket now. */
  online: z.number(),
  /** The last hour, one entry a minute, oldest first. */
  activity: z.array(AdminActivityMinute),
});
export type AdminStats = z.infer<typeof AdminStats>;
