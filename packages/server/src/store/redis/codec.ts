// Effects as the Lua scripts write them (JSON from Redis's cjson) turned into
// the Store's types. cjson writes an empty list as `{}` and object keys in any
// order, so every message is rebuilt here in the shape the memory store gives.
import { DISCONNECT_MESSAGES, type AreaRegion, type DisconnectReason, type ServerMessage } from '@dyad/protocol';
import type { CloseOrder, Delivery, Effects, Pairing, SignalText, TimerOrder } from '../store.js';

/** What a script returns: effects for this process, plus `x`, the transition's own result. */
export interface RawResult {
  /** Id of the caller's own inbox entry, when the transition sent it anything. */
  id?: unknown;
  /** Ids of the entries the transition wrote to other processes' inboxes, by process. */
  o?: unknown;
  d?: unknown;
  c?: unknown;
  t?: unknown;
  p?: unknown;
  e?: unknown;
  x?: unknown;
  /** Relay routes for this process's signalling sockets (lua/effects.ts, route); inbox entries only. */
  r?: unknown;
  /** Relayed through a lane by a process of an earlier build (relayedJson): the sender's latest entry in this process's inbox. */
  a?: unknown;
  /** Set on an entry relayed by a process of an earlier build (relayedJson), not written by a script. */
  f?: unknown;
  /** A reply's messages and closes for the caller's own sockets, instead of an entry in its inbox (lua/effects.ts, finish). */
  i?: unknown;
  /** With `i`: the last entry of the caller's inbox when the script ran ('' for none); `i` goes right after it. */
  l?: unknown;
  /** On an inbox entry: the number of the receiver's last call with an `i` that ran before the entry was written. */
  q?: unknown;
}

const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);

type Raw = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : String(v));

/** One server message from its Lua form. */
export function toMessage(m: Raw): ServerMessage {
  switch (m.event) {
    case 'waiting':
      return { event: 'waiting' };
    case 'idle':
      return { event: 'idle' };
    case 'matched':
      return {
        event: 'matched',
        room_code: str(m.room_code),
        initiator: m.initiator === true,
        peer: str(m.peer),
        common_interests: list<string>(m.common_interests),
        ...(typeof m.region === 'string' ? { region: m.region as AreaRegion } : {}),
        ...(typeof m.country === 'string' ? { country: m.country } : {}),
        mode: m.mode === 'text' ? 'text' : 'video',
        ice_servers: [],
        ...(m.resumed === true ? { resumed: true } : {}),
      };
    case 'chat':
      return { event: 'chat', sender: str(m.sender), message: str(m.message), timestamp: Number(m.timestamp), ...(typeof m.seq === 'number' ? { seq: m.seq } : {}) };
    case 'typing':
      return { event: 'typing', sender: str(m.sender), typing: m.typing === true };
    case 'peer-disconnected': {
      const reason = m.reason as DisconnectReason;
      return { event: 'peer-disconnected', message: DISCONNECT_MESSAGES[reason], reason };
    }
    case 'verified':
      return {
        event: 'verified',
        room_code: str(m.room_code),
        role: m.role === 'initiator' ? 'initiator' : 'responder',
        peer: str(m.peer),
        peer_joined: m.peer_joined === true,
      };
    case 'peer-joined':
      return { event: 'peer-joined', room_code: str(m.room_code), peer: str(m.peer) };
    case 'error':
      return {
        event: 'error',
        code: m.code as Extract<ServerMessage, { event: 'error' }>['code'],
        message: str(m.message),
        ...(typeof m.until === 'number' ? { until: m.until } : {}),
      };
    default:
      throw new TypeError(`store returned an unknown event ${JSON.stringify(m.event)}`);
  }
}

/** A signal from its Lua form: its data crosses Redis as the JSON text the sender's edge produced. */
export function toSignal(m: Raw): SignalText {
  return {
    room_code: str(m.room_code),
    from: str(m.from),
    type: m.type as SignalText['type'],
    data: typeof m.data === 'string' ? m.data : '{}',
  };
}

export function toEffects(raw: RawResult): Effects {
  return {
    deliver: list<Raw>(raw.d).map((d): Delivery => {
      const target = { to: str(d.to), channel: d.channel as Delivery['channel'], conn: str(d.conn) };
      const m = d.msg as Raw;
      // A signal stays text: its data is handed on as the sender's edge encoded it, never parsed here.
      if (m.event === 'signal') return { ...target, signal: toSignal(m) };
      return { ...target, msg: toMessage(m) };
    }),
    close: list<Raw>(raw.c).map(
      (c): CloseOrder => ({
        to: str(c.to),
        channel: c.channel as CloseOrder['channel'],
        conn: str(c.conn),
        code: Number(c.code),
        reason: str(c.reason),
      }),
    ),
    timers: list<Raw>(raw.t).map(
      (t): TimerOrder => ({
        kind: t.kind as TimerOrder['kind'],
        id: str(t.id),
        ...(typeof t.conn === 'string' ? { conn: t.conn } : {}),
        delayMs: Number(t.delayMs),
      }),
    ),
    paired: list<Raw>(raw.p).map((p): Pairing => {
      const waited = list<number>(p.waitedMs);
      return {
        room: str(p.room),
        a: str(p.a),
        b: str(p.b),
        mode: p.mode === 'text' ? 'text' : 'video',
        waitedMs: [Number(waited[0] ?? 0), Number(waited[1] ?? 0)],
      };
    }),
    ended: list<DisconnectReason>(raw.e),
  };
}

// Signals relayed by a process itself (relay.ts) travel in a stream
// entry of their own, field RELAYED, without JSON: one record per signal, the
// records apart by RS and the fields of each by US, in the order to, conn,
// room, from, type, data. No field can hold either separator: the ids and the
// type are the server's own, and the data is JSON text from the edge
// (core/frames.ts, encodeSignalData), where a control character is escaped.
// lua/sockets.ts (takeInFlight) reads the same records.
export const RELAYED = 'rs';
/** The field of an entry a script writes (lua/effects.ts, finish): the JSON of its effects. */
export const SCRIPT_ENTRY = 'fx';
/**
 * A process that reads RELAYED entries says so in its heartbeat's value
 * ("<ms> rs"): during a rolling upgrade a process of an earlier build reads
 * only the JSON entry ({"f":1,"d":[…]}, relayedJson), which it is sent instead.
 */
export const READS_RELAYED = ' rs';
/** With RELAYED, on a lane: the sender's latest entry in this process's inbox (RawResult.a). */
export const RELAYED_AFTER = 'a';
const RS = '\x1e';
const US = '\x1f';

/** The record of one relayed signal. */
function relayedRecord(d: Delivery & { signal: SignalText }): string {
  const s = d.signal;
  return `${d.to}${US}${d.conn}${US}${s.room_code}${US}${s.from}${US}${s.type}${US}${s.data}`;
}

/** The JSON entry of the same signals, for a process of an earlier build (see READS_RELAYED); `after` as RELAYED_AFTER. */
export function relayedJson(ds: readonly (Delivery & { signal: SignalText })[], after: string | undefined): string {
  const parts = ds.map(
    (d) =>
      `{"to":${JSON.stringify(d.to)},"channel":"signalling","conn":${JSON.stringify(d.conn)},"msg":{"event":"signal",` +
      `"room_code":${JSON.stringify(d.signal.room_code)},"from":${JSON.stringify(d.signal.from)},"type":"${d.signal.type}","data":${JSON.stringify(d.signal.data)}}}`,
  );
  return `{"f":1${after ? `,"a":"${after}"` : ''},"d":[${parts.join(',')}]}`;
}

/** The RELAYED text of one entry: its signals' records, in order. */
export const relayedText = (ds: readonly (Delivery & { signal: SignalText })[]): string => ds.map(relayedRecord).join(RS);

/** The signals of a relayed entry's text, in order; an unreadable record is skipped. */
export function relayedDeliveries(text: string): Delivery[] {
  const out: Delivery[] = [];
  for (const record of text.split(RS)) {
    const f = record.split(US);
    if (f.length !== 6) continue;
    const [to, conn, room, from, type, data] = f as [string, string, string, string, SignalText['type'], string];
    out.push({ to, channel: 'signalling', conn, signal: { room_code: room, from, type, data } });
  }
  return out;
}

/** What an inbox or lane entry holds: a script's JSON (SCRIPT_ENTRY), or relayed records and, on a lane, the inbox entry they follow. */
export interface EntryParts {
  json?: string;
  records?: string;
  after?: string;
}

/** The parts of a stream entry from its fields (name, value, …). */
export function entryParts(fields: readonly string[]): EntryParts {
  const out: EntryParts = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const v = fields[i + 1];
    if (fields[i] === SCRIPT_ENTRY) out.json = v;
    else if (fields[i] === RELAYED) out.records = v;
    else if (fields[i] === RELAYED_AFTER) out.after = v;
  }
  return out;
}
