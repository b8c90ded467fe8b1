// Open sockets per client address: the Lua both the prelude and the socket
// scripts use, and the socket scripts themselves.
import { KEY } from './names.js';

/**
 * Open sockets per client address (MAX_SOCKETS_PER_ADDR), shared by the
 * prelude (a one-trip start counts its socket in its registration) and
 * SOCKET_SCRIPTS. Uses P (key prefix), ME (this process) and SOCKET_TTL (ms,
 * as text: the lifetime of a count without a write).
 * `so:<addr>` is a hash: process id -> sockets from that address open there.
 * `sa:<P>` is the set of addresses with sockets open on P, so that the reaper
 * (which removes a dead process's counts) and P's own release find them.
 * A process writes its own counts as absolute numbers from what it holds, so
 * a write that failed or came late is made good by the next one.
 */
export const SOCKET_COUNT = String.raw`
-- Sockets open from the address of key so:<addr> on every live process, with
-- mine (this process's count, the new socket included) for this one's.
local function openSockets(key, mine)
  local flat = redis.call('HGETALL', key)
  local open = mine
  for i = 1, #flat, 2 do
    -- Sockets of a process without a heartbeat are gone (the reaper removes its count).
    if flat[i] ~= ME and redis.call('EXISTS', P .. '${KEY.heartbeat}' .. flat[i]) == 1 then open = open + tonumber(flat[i + 1]) end
  end
  return open
end
-- This process holds n (text) sockets from addr.
local function holdSockets(key, addr, n)
  redis.call('HSET', key, ME, n)
  redis.call('PEXPIRE', key, SOCKET_TTL)
  redis.call('SADD', P .. '${KEY.socketAddresses}' .. ME, addr)
end
`;

/**
 * The open-socket counts' own scripts (SOCKET_COUNT). They run on every
 * upgrade, so they are small scripts of their own, without the prelude, on the
 * connection of the transitions (whose registrations write the same counts).
 *   KEYS[1]  the key prefix with its hash tag
 *   ARGV[1]  id of the calling process
 *   ARGV[2]  lifetime of a count without a write (ms)
 */
export const SOCKET_SCRIPTS = {
  // ARGV[3] address hash, ARGV[4] most sockets open at once, ARGV[5] this
  // process's count with the new socket. Returns 1 when admitted (and counted).
  admit: `
local P, ME, SOCKET_TTL = KEYS[1], ARGV[1], ARGV[2]
${SOCKET_COUNT}
local addr = ARGV[3]
local key = P .. '${KEY.socketsOpen}' .. addr
if openSockets(key, tonumber(ARGV[5])) > tonumber(ARGV[4]) then return 0 end
holdSockets(key, addr, ARGV[5])
return 1
`,
  // ARGV[3..] pairs of address hash and this process's count of it (0: none).
  set: `
local P, ME, SOCKET_TTL = KEYS[1], ARGV[1], ARGV[2]
${SOCKET_COUNT}
local held = P .. '${KEY.socketAddresses}' .. ME
for i = 3, #ARGV - 1, 2 do
  local addr, n = ARGV[i], ARGV[i + 1]
  local key = P .. '${KEY.socketsOpen}' .. addr
  if tonumber(n) > 0 then
    holdSockets(key, addr, n)
  else
    redis.call('HDEL', key, ME)
    redis.call('SREM', held, addr)
  end
end
return 1
`,
  // This process stops: none of its sockets count any more.
  release: `
local P, ME = KEYS[1], ARGV[1]
local held = P .. '${KEY.socketAddresses}' .. ME
for _, addr in ipairs(redis.call('SMEMBERS', held)) do redis.call('HDEL', P .. '${KEY.socketsOpen}' .. addr, ME) end
redis.call('DEL', held)
return 1
`,
} as const;

export type SocketScriptName = keyof typeof SOCKET_SCRIPTS;
