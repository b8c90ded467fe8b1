// The Lua side of the Redis store: one script per lifecycle transition, each
// made of a shared prelude (the same rules as store/memory.ts, written over
// Redis keys) and a short body. Redis runs a script atomically, so each
// transition is atomic across every process sharing the Redis.
//
// Calling convention (see RedisStore.exec):
//   KEYS[1]  the key prefix with its hash tag, e.g. "dyad:{dyad}:". Every key
//            a script touches starts with it, so all of them live in one
//            Cluster slot.
//   ARGV[1]  id of the calling process
//   ARGV[2]  now (ms, the caller's clock: never Redis TIME, so a fake clock works)
//   ARGV[3]  settings, comma-separated in the order of CFG_NAMES
//   ARGV[4], ARGV[5]  random numbers in [0, 1) (partner choice, initiator)
//   ARGV[6]  fresh room codes, comma-separated (crypto-random, made by the caller)
//   ARGV[7]  the caller's number for this call, rising with each call it sends (store/redis/order.ts)
//   ARGV[8..] the transition's own arguments (A[1..] below)
// A script appends the messages and closes it causes to the inbox stream of
// each process holding one of the sockets concerned (the caller's included),
// and returns as JSON what the caller carries out itself: timers, pairings and
// room ends to count, the id of its own inbox entry, and its result `x`.
import { createHash } from 'node:crypto';
import { ADMISSION } from './lua/admission.js';
import { CORE } from './lua/core.js';
import { EFFECTS } from './lua/effects.js';
import { ROOMS } from './lua/rooms.js';
import { SESSIONS } from './lua/sessions.js';
import { SOCKETS } from './lua/sockets.js';
import { BODIES, type ScriptName } from './lua/transitions.js';

export { CFG_NAMES, KEY } from './lua/names.js';
export { SOCKET_SCRIPTS, type SocketScriptName } from './lua/socket-counts.js';
export type { ScriptName } from './lua/transitions.js';

/** The helpers every transition shares (./lua/), in the order each needs the ones before it. */
const PRELUDE = [CORE, EFFECTS, SESSIONS, ROOMS, SOCKETS, ADMISSION].join('');

/** A transition's body as it runs: after begin(), which sets up the call. */
const transition = (name: string, body: string): string => `begin(KEYS, ARGV)\n-- ${name}\n${body}`;

/** The full source of each transition's script, for EVAL (a Redis without functions). */
export const SCRIPTS: Readonly<Record<ScriptName, string>> = Object.freeze(
  Object.fromEntries(Object.entries(BODIES).map(([name, body]) => [name, `${PRELUDE}\n${transition(name, body)}`])) as Record<ScriptName, string>,
);

/**
 * The same transitions as one function library (Redis 7 functions): the
 * prelude's helpers are made once when the library loads, not at every call,
 * and each transition is a function called with FCALL. The library and its
 * functions are named after a hash of the code, so processes of two builds
 * sharing a Redis (a rolling upgrade) each call their own.
 */
export const LIBRARY: { readonly name: string; readonly code: string; readonly fn: Readonly<Record<ScriptName, string>> } = (() => {
  const draft = (lib: string): string =>
    `#!lua name=${lib}\n${PRELUDE}\n` +
    Object.entries(BODIES)
      .map(([name, body]) => `redis.register_function('${lib}_${name}', function(KEYS, ARGV)\n${transition(name, body)}\nend)\n`)
      .join('');
  const lib = `dyad_${createHash('sha1').update(draft('dyad')).digest('hex').slice(0, 12)}`;
  return Object.freeze({
    name: lib,
    code: draft(lib),
    fn: Object.freeze(Object.fromEntries(Object.keys(BODIES).map((name) => [name, `${lib}_${name}`])) as Record<ScriptName, string>),
  });
})();
