// Edge validation: one function turns a raw frame or body into a typed message
// or a one-line reason naming the field, for a `bad-request` answer.
import type { z } from 'zod';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * The contract says a field sent as `null` counts as absent. Object.fromEntries
 * defines own properties, so a `"__proto__"` key stays plain data (an
 * assignment would make it the copy's prototype, whose fields the schema
 * would then read as if sent).
 */
const dropNulls = (value: Record<string, unknown>): Record<string, unknown> => {
  // Most frames have no null field: copy only those that do (this runs on every frame).
  for (const k in value) if (value[k] === null) return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null));
  return value;
};

const describe = (error: z.ZodError): string => {
  const issue = error.issues[0];
  if (!issue) return 'invalid message';
  const path = issue.path.join('.');
  if (issue.code === 'invalid_union' && path === 'event') return 'unknown event';
  return path ? `${path}: ${issue.message}` : issue.message;
};

/** Validate an already-decoded value (an HTTP body, a query) against a schema. */
export function parseObject<S extends z.ZodType>(schema: S, value: unknown): Parsed<z.infer<S>> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: 'expected a JSON object' };
  }
  const result = schema.safeParse(dropNulls(value as Record<string, unknown>));
  return result.success ? { ok: true, value: result.data } : { ok: false, error: describe(result.error) };
}

/** Decode and validate one text frame carrying a message with an `event` field. */
export function parseMessage<S extends z.ZodType>(schema: S, raw: string): Parsed<z.infer<S>> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { ok: false, error: 'invalid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: 'expected a JSON object' };
  }
  const event = (value as { event?: unknown }).event;
  if (typeof event !== 'string') return { ok: false, error: 'missing event' };
  return parseObject(schema, value);
}
