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
import { RATE_WINDOW_MS } from '../../core/rules.js';

/** Order of the settings in ARGV[3]. */
export const CFG_NAMES = [
  'grace',
  'interest',
  'regttl',
  'cooldown',
  'buffer',
  'fair',
  'banthr',
  'repwin',
  'bandur',
  'ttl',
  'idxttl',
  'inboxmax',
  'inboxttl',
  'scan',
  'sample',
  'regslack',
  'minroom',
  'banmax',
  'strikewin',
  'keptroom',
  'keptall',
  'keptitem',
  'block',
  'replog',
  'nextmax',
  'regmax',
] as const;

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
const SOCKET_COUNT = String.raw`
-- Sockets open from the address of key so:<addr> on every live process, with
-- mine (this process's count, the new socket included) for this one's.
local function openSockets(key, mine)
  local flat = redis.call('HGETALL', key)
  local open = mine
  for i = 1, #flat, 2 do
    -- Sockets of a process without a heartbeat are gone (the reaper removes its count).
    if flat[i] ~= ME and redis.call('EXISTS', P .. 'hb:' .. flat[i]) == 1 then open = open + tonumber(flat[i + 1]) end
  end
  return open
end
-- This process holds n (text) sockets from addr.
local function holdSockets(key, addr, n)
  redis.call('HSET', key, ME, n)
  redis.call('PEXPIRE', key, SOCKET_TTL)
  redis.call('SADD', P .. 'sa:' .. ME, addr)
end
`;

const PRELUDE = String.raw`
-- What one call works with. Loaded as a function library (FUNCTION LOAD) the
-- helpers below are made once and these are set afresh by begin() at the
-- start of every call; as a plain script, begin() runs first in each script.
local P, ME, NOW, RND1, RND2, CODES, SEQ, A, KEPT
local FX, OUT, OUT_ORDER, LIVE, SS, RR, codeUsed
-- HELD: index keys this call has seen holding members (so they have their
-- lifetime already); FRESHENED: keys whose lifetime this call has refreshed;
-- CD: re-pair cooldowns this call has read.
local HELD, FRESHENED, CD, SOCKET_TTL
-- CFGS: the settings as their text, for arguments of commands (no number formatting).
local CFG, CFGS, CFG_TEXT = {}, {}, nil
local CFG_KEYS = {${CFG_NAMES.map((n) => `'${n}'`).join(', ')}}

local function begin(keys, argv)
  P, ME, NOW = keys[1], argv[1], tonumber(argv[2])
  -- The settings string is the same from call to call: parsed once per change.
  if argv[3] ~= CFG_TEXT then
    CFG, CFGS, CFG_TEXT = {}, {}, argv[3]
    local i = 0
    for v in string.gmatch(CFG_TEXT, '[^,]+') do
      i = i + 1
      CFG[CFG_KEYS[i]] = tonumber(v)
      CFGS[CFG_KEYS[i]] = v
    end
    SOCKET_TTL = CFGS.ttl
  end
  RND1, RND2 = tonumber(argv[4]), tonumber(argv[5])
  CODES = {}
  for c in string.gmatch(argv[6], '[^,]+') do CODES[#CODES + 1] = c end
  SEQ = argv[7]
  A = {}
  for i = 8, #argv do A[#A + 1] = argv[i] end
  KEPT = P .. 'kept'
  FX = {t = {}, p = {}, e = {}}
  OUT, OUT_ORDER, LIVE, SS, RR = {}, {}, {}, {}, {}
  HELD, FRESHENED, CD = {}, {}, {}
  codeUsed = 0
end

-- Numbers go to Redis as integer text: Lua would print large ones in %.14g.
-- Integers (nearly all: times, scores, counts) take the much cheaper %d.
local function num(x)
  if x == math.floor(x) and x > -9e15 and x < 9e15 then return string.format('%d', x) end
  return string.format('%.0f', x)
end
${SOCKET_COUNT}
------------------------------------------------------------------ kept bytes
-- What is kept for absent members is counted in bytes as store/memory.ts
-- counts it (core/frames.ts keptBytes: the text in UTF-8 plus CFG.keptitem):
-- per room (field kb of the room: its kept signals; field kcb of a session:
-- its kept chat) and in all, in the key 'kept', which every path that drops
-- kept items brings down (a join's flush, a room's end, a session's end, a
-- resumption's flush of chat), so the total holds across processes.
local function itemBytes(text) return #text + CFG.keptitem end
local function addKept(n)
  if n == 0 then return end
  -- Never below zero (a kept list that expired on its own took its bytes along).
  if redis.call('INCRBY', KEPT, num(n)) < 0 then redis.call('SET', KEPT, 0) end
  redis.call('PEXPIRE', KEPT, CFGS.ttl)
end

------------------------------------------------------------------ effects

-- What the caller carries out itself: timers to arm, pairings and room ends to count.

-- A process is alive while its heartbeat key exists. Sockets of a dead
-- process count as absent: nothing is sent to them and they are never paired.
local function alive(proc)
  if not proc then return false end
  if proc == ME then return true end
  local a = LIVE[proc]
  if a == nil then
    a = redis.call('EXISTS', P .. 'hb:' .. proc) == 1
    LIVE[proc] = a
  end
  return a
end

-- Deliveries and closes go to the inbox of the process holding the socket,
-- this one's included: each socket then sees exactly the order in which
-- Redis ran the scripts, whichever process called them.
local function target(proc)
  local o = OUT[proc]
  if not o then
    o = {d = {}, c = {}}
    OUT[proc] = o
    OUT_ORDER[#OUT_ORDER + 1] = proc
  end
  return o
end

local SLOT = {matching = {'mc', 'mp'}, signalling = {'sc', 'sp'}}
-- The per-process set of sessions with a socket there, by channel (for the reaper).
local INDEX = {matching = 'pm', signalling = 'ps'}

-- Deliver to a session's open socket on a channel; false when there is none.
local function send(s, ch, msg)
  local f = SLOT[ch]
  local conn, proc = s[f[1]], s[f[2]]
  if not conn or not alive(proc) then return false end
  local t = target(proc)
  t.d[#t.d + 1] = {to = s.id, channel = ch, conn = conn, msg = msg}
  return true
end

local function closeSocket(s, ch, code, reason)
  local f = SLOT[ch]
  local conn, proc = s[f[1]], s[f[2]]
  if not conn or not alive(proc) then return end
  local t = target(proc)
  t.c[#t.c + 1] = {to = s.id, channel = ch, conn = conn, code = code, reason = reason}
end

-- Tell the process holding s's signalling socket how to relay that socket's
-- signals itself (RedisStore, routes): k = 'j' joined (room, id, peer, ini,
-- ans, and proc/pconn where the peer's joined socket is), 'p' the peer's
-- joined socket is now at proc/pconn (neither: away), 'a' the first answer
-- has passed, 'e' the socket is in the room no more. Items travel in the
-- inbox with the messages, so each process applies them in transition order.
local function route(s, item)
  if not s or not s.sc or not alive(s.sp) then return end
  local t = target(s.sp)
  item.conn = s.sc
  t.r = t.r or {}
  t.r[#t.r + 1] = item
end

-- s's socket has left room code (or is away): its partner's socket, if joined, relays through Redis's scripts again.
local function peerAway(s, code, partner)
  if code and partner and partner.sj == code then route(partner, {k = 'p', room = code}) end
end

local function timer(kind, id, conn, delay)
  FX.t[#FX.t + 1] = {kind = kind, id = id, conn = conn, delayMs = delay}
end

-- One inbox entry per process per transition: Redis runs scripts one at a
-- time and each process reads its inbox in order, so every socket gets its
-- messages in the order the transitions happened. The caller learns the id
-- of its own entry, to wait until its reader has carried it out, and of the
-- entries it wrote to other processes' inboxes (o), which its relayed signals
-- to those processes must not overtake (RedisStore, relay lanes).
-- An inbox's lifetime is refreshed by its own process's beat (every
-- heartbeat, far more often than CFG.inboxttl), so an inbox outlives its
-- process by CFG.inboxttl as before. A message only sets it when this call
-- makes the inbox: one that exists has its lifetime already.
--
-- What goes to the caller's own sockets comes back in the reply instead
-- (i), when every message of it is one that a resumption tells afresh or that
-- was of the moment (so a process that dies before carrying it out loses
-- nothing a takeover would have kept: see takeInFlight), and it carries no
-- routes. The reply then names the last entry its inbox held (l, '' when
-- none): the caller carries it out after that entry and before any later
-- one, the place it would have had in the inbox. That spares an append, a
-- read and a trim of the inbox per transition. So that its reader knows which
-- replies are ahead of an entry, every entry names the caller's last call
-- with such a reply that ran before it (q, from the key q:<process>); an
-- entry of the caller's own names this very call.
local AFRESH = {waiting = true, matched = true, idle = true, typing = true, error = true, verified = true, ['peer-joined'] = true}
local function inlinable(o)
  if o.r then return false end
  for _, d in ipairs(o.d) do
    if not AFRESH[d.msg.event] then return false end
  end
  return true
end

local function finish(extra)
  for _, proc in ipairs(OUT_ORDER) do
    local key = P .. 'inbox:' .. proc
    local o = OUT[proc]
    if proc == ME and inlinable(o) then
      local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
      FX.i, FX.l = o, last and last[1] or ''
      redis.call('SET', P .. 'q:' .. ME, SEQ, 'PX', CFGS.inboxttl)
    else
      if proc == ME then o.q = SEQ else o.q = redis.call('GET', P .. 'q:' .. proc) or nil end
      local body = cjson.encode(o)
      local id = redis.call('XADD', key, 'NOMKSTREAM', 'MAXLEN', '~', CFGS.inboxmax, '*', 'fx', body)
      if not id then
        id = redis.call('XADD', key, 'MAXLEN', '~', CFGS.inboxmax, '*', 'fx', body)
        redis.call('PEXPIRE', key, CFGS.inboxttl)
      end
      if proc == ME then
        FX.id = id
      else
        FX.o = FX.o or {}
        FX.o[proc] = id
      end
    end
  end
  FX.x = extra
  return cjson.encode(FX)
end

local function err(code, message) return {event = 'error', code = code, message = message} end
-- The edge adds the human-readable message for the reason.
local function gone(reason) return {event = 'peer-disconnected', reason = reason} end

------------------------------------------------------------------ sessions

local function skey(id) return P .. 's:' .. id end

local function load(id)
  if not id then return nil end
  local s = SS[id]
  if s ~= nil then return s or nil end
  local flat = redis.call('HGETALL', skey(id))
  if #flat == 0 then
    SS[id] = false
    return nil
  end
  s = {id = id}
  for i = 1, #flat, 2 do s[flat[i]] = flat[i + 1] end
  -- Most sessions name no interest: no decoding for them.
  s.ints = (s.int == nil or s.int == '[]') and {} or cjson.decode(s.int)
  s.ea, s.ws, s.wk = tonumber(s.ea), tonumber(s.ws), tonumber(s.wk)
  SS[id] = s
  return s
end

-- Write fields of a session: {field, value, field, value, ...}.
local function put(s, kv)
  local args = {}
  for i = 1, #kv, 2 do
    local v = kv[i + 1]
    s[kv[i]] = v
    args[#args + 1] = kv[i]
    args[#args + 1] = type(v) == 'number' and num(v) or v
  end
  redis.call('HSET', skey(s.id), unpack(args))
end

local function drop(s, ...)
  local fields = {}
  for _, f in ipairs({...}) do
    if s[f] ~= nil then
      s[f] = nil
      fields[#fields + 1] = f
    end
  end
  if #fields > 0 then redis.call('HDEL', skey(s.id), unpack(fields)) end
end

-- Forget the chat kept for a session, and what it counted for.
local function dropKeptChat(s)
  redis.call('DEL', P .. 'kc:' .. s.id)
  addKept(-(tonumber(s.kcb) or 0))
  drop(s, 'kcb')
end

local function owner(id, conn, ch)
  local s = load(id)
  if s and s[SLOT[ch][1]] == conn then return s end
  return nil
end

-- One more of a per-address rate (key k: nx:<addr> for NEXT_RATE_PER_MIN,
-- rg:<addr> for REGISTER_RATE_PER_MIN), as core/rules.ts countRate: nil when
-- counted, else the ms until its window ends (nothing is written then).
local function countRate(k, max)
  local w = redis.call('HMGET', k, 'n', 'u')
  local n, u = tonumber(w[1]), tonumber(w[2])
  if not u or NOW >= u then n, u = 0, NOW + ${RATE_WINDOW_MS} end
  if n >= max then return u - NOW end
  redis.call('HSET', k, 'n', n + 1, 'u', num(u))
  if n == 0 then redis.call('PEXPIRE', k, num(u - NOW)) end
  return nil
end

-- Sessions with a socket on a process (pm: matching, ps: signalling), for the reaper.
local function holds(kind, proc, id)
  local k = P .. kind .. ':' .. proc
  redis.call('SADD', k, id)
  redis.call('PEXPIRE', k, CFGS.idxttl)
end

-- Give an index key its full lifetime (CFG.idxttl), once per call.
local function freshen(k)
  if FRESHENED[k] then return end
  FRESHENED[k] = true
  redis.call('PEXPIRE', k, CFGS.idxttl)
end

-- Keys of a live session outlive it by at most CFG.ttl; the owning process
-- refreshes them while its sockets are open.
local function touch(s)
  local ttl = CFG.ttl
  redis.call('PEXPIRE', skey(s.id), ttl)
  if s.th then redis.call('PEXPIRE', P .. 't:' .. s.th, ttl) end
  redis.call('PEXPIRE', P .. 'addr:' .. s.addr, ttl)
  redis.call('PEXPIRE', P .. 'kc:' .. s.id, ttl)
  redis.call('PEXPIRE', P .. 'bl:' .. s.id, ttl)
  redis.call('ZADD', P .. 'sess', num(NOW + ttl), s.id)
  freshen(P .. 'sess')
  if s.room then
    redis.call('PEXPIRE', P .. 'r:' .. s.room, ttl)
    redis.call('PEXPIRE', P .. 'rk:' .. s.room .. ':' .. s.id, ttl)
    redis.call('ZADD', P .. 'rooms', 'XX', num(NOW + ttl), s.room)
  end
end

-- Pool order: waiting time, then arrival (a counter breaks ties within a millisecond).
local function score(ws)
  local seq = redis.call('INCR', P .. 'seq')
  if seq % 1000 == 1 then redis.call('PEXPIRE', P .. 'seq', CFGS.idxttl) end
  return ws * 1024 + (seq % 1024)
end

------------------------------------------------------------------ pool index
-- Per mode, only sessions that are waiting with their matching socket open:
--   open:<mode>          those that accept anyone now (score: pool order)
--   narrow:<mode>        those whose interests/lang still narrow (score: when they entered)
--   int:<mode>:<i>       every one with interest i (score: pool order)
--   lang:<mode>:<l>      every one with lang l (score: pool order)
--   place:<mode>:<p>     every one whose country, or region, is p (score: pool order)
--   wants:<mode>:<p>     every one that prefers place p (score: pool order)
-- so a pairing attempt reads at most 1 + interests + 1 + 2 sorted sets.

local function narrowed(s)
  return (#s.ints > 0 or s.lang ~= nil or s.rw ~= nil) and NOW - s.ea < CFG.interest
end

-- Only a session with interests, a lang or a wanted place is ever narrowed
-- (whatever CFG.interest is), so only such a one can be in narrow:<mode>.
local function narrows(s) return #s.ints > 0 or s.lang ~= nil or s.rw ~= nil end

-- The index sets of a waiting session besides open:<mode> and narrow:<mode>.
local function poolKeys(s)
  local m, ks = s.mode, {}
  for _, i in ipairs(s.ints) do ks[#ks + 1] = P .. 'int:' .. m .. ':' .. i end
  if s.lang then ks[#ks + 1] = P .. 'lang:' .. m .. ':' .. s.lang end
  if s.cc then ks[#ks + 1] = P .. 'place:' .. m .. ':' .. s.cc end
  if s.ar then ks[#ks + 1] = P .. 'place:' .. m .. ':' .. s.ar end
  if s.rw then ks[#ks + 1] = P .. 'wants:' .. m .. ':' .. s.rw end
  return ks
end

local function zrem(k, id)
  redis.call('ZREM', k, id)
  -- It may be gone now (a set without members is no key).
  HELD[k] = nil
end

-- Out of the pool index. Only a waiting session is in it (every change of
-- state away from 'waiting' comes through here), so callers skip the rest.
local function unpool(s)
  local m = s.mode
  zrem(P .. 'open:' .. m, s.id)
  if narrows(s) then zrem(P .. 'narrow:' .. m, s.id) end
  for _, k in ipairs(poolKeys(s)) do zrem(k, s.id) end
end

-- Index keys live CFG.idxttl. A key gets its lifetime when a member is added
-- unless this call has seen it holding members (then it has one already);
-- while in use it is refreshed by the touch of every waiting member (see
-- freshenPool), far more often than CFG.idxttl, so it never lapses then.
local function zput(k, sc, id)
  redis.call('ZADD', k, num(sc), id)
  if not HELD[k] then
    redis.call('PEXPIRE', k, CFGS.idxttl)
    HELD[k] = true
  end
end

-- fresh: the session is in none of the sets yet (it has just entered the pool).
local function enpool(s, fresh)
  local m = s.mode
  if narrowed(s) then
    zput(P .. 'narrow:' .. m, s.ea, s.id)
    if not fresh then zrem(P .. 'open:' .. m, s.id) end
  else
    zput(P .. 'open:' .. m, s.wk, s.id)
    if not fresh and narrows(s) then zrem(P .. 'narrow:' .. m, s.id) end
  end
  for _, k in ipairs(poolKeys(s)) do zput(k, s.wk, s.id) end
end

-- The touch of a waiting session in the pool keeps its index keys alive.
local function freshenPool(s)
  if s.st ~= 'waiting' or not s.mc then return end
  freshen(P .. 'open:' .. s.mode)
  if narrows(s) then freshen(P .. 'narrow:' .. s.mode) end
  for _, k in ipairs(poolKeys(s)) do freshen(k) end
end

-- Sessions whose narrowing ran out now accept anyone: move them to open:<mode>.
-- Each session moves once, so the work is paid for by its own arrival.
local function promote(m)
  if CFG.interest <= 0 then return end
  local nk = P .. 'narrow:' .. m
  local due = redis.call('ZRANGEBYSCORE', nk, '-inf', num(NOW - CFG.interest), 'LIMIT', 0, 64)
  for _, id in ipairs(due) do
    zrem(nk, id)
    local c = load(id)
    if c and c.st == 'waiting' and c.mc then zput(P .. 'open:' .. m, c.wk, id) end
  end
end

------------------------------------------------------------------ pairing rules (core/rules.ts)

local function shares(a, b)
  if #a.ints == 0 or #b.ints == 0 then return false end
  local theirs = {}
  for _, i in ipairs(b.ints) do theirs[i] = true end
  for _, i in ipairs(a.ints) do
    if theirs[i] then return true end
  end
  return false
end

local function common(a, b)
  local out = {}
  if #a.ints == 0 or #b.ints == 0 then return out end
  local theirs = {}
  for _, i in ipairs(b.ints) do theirs[i] = true end
  for _, i in ipairs(a.ints) do
    if theirs[i] then out[#out + 1] = i end
  end
  return out
end

local function accepts(a, b)
  if NOW - a.ea >= CFG.interest then return true end
  if a.lang and a.lang ~= b.lang then return false end
  if a.rw and a.rw ~= b.cc and a.rw ~= b.ar then return false end
  if #a.ints > 0 and not shares(a, b) then return false end
  return true
end

local function blocked(a, b)
  return a.blk and redis.call('SISMEMBER', P .. 'bl:' .. a.id, b.id) == 1
end

-- Blocks between two addresses (core of store/memory.ts keepApart), under one
-- key whichever blocked whom; a session flag (ab) says whether to look.
local function pairKey(a, b)
  if a < b then return P .. 'ab:' .. a .. '|' .. b end
  return P .. 'ab:' .. b .. '|' .. a
end
local function addrBlocked(a, b)
  if a.addr == b.addr or not (a.ab or b.ab) then return false end
  -- Its end by the caller's clock (the key's own expiry only clears it away).
  local untilAt = redis.call('GET', pairKey(a.addr, b.addr))
  return untilAt ~= false and tonumber(untilAt) > NOW
end

local function eligible(s, c)
  if not c or c.id == s.id or c.st ~= 'waiting' or not c.mc or c.mode ~= s.mode then return false end
  if not alive(c.mp) then return false end
  if blocked(s, c) or blocked(c, s) or addrBlocked(s, c) then return false end
  return accepts(s, c) and accepts(c, s)
end

local function inCooldown(s, id)
  local k = s.id .. '|' .. id
  local c = CD[k]
  if c == nil then
    local untilAt = redis.call('ZSCORE', P .. 'cd:' .. s.id, id)
    c = untilAt and tonumber(untilAt) > NOW or false
    CD[k] = c
  end
  return c
end

------------------------------------------------------------------ rooms

-- Pairings (p) and reports (r) per minute, for the moderation console's chart.
local function tally(what)
  local k = P .. 'act:' .. num(NOW - NOW % 60000)
  -- The first count of a field (the key's first among them) sets the lifetime.
  if redis.call('HINCRBY', k, what, 1) == 1 then redis.call('PEXPIRE', k, 7200000) end
end

local function loadRoom(code)
  if not code then return nil end
  local r = RR[code]
  if r ~= nil then return r or nil end
  local flat = redis.call('HGETALL', P .. 'r:' .. code)
  if #flat == 0 then
    RR[code] = false
    return nil
  end
  r = {code = code}
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  RR[code] = r
  return r
end

local function deleteRoom(room)
  -- Signals still kept in it go with it.
  addKept(-(tonumber(room.kb) or 0))
  redis.call('DEL', P .. 'r:' .. room.code, P .. 'rk:' .. room.code .. ':' .. room.a, P .. 'rk:' .. room.code .. ':' .. room.b)
  redis.call('ZREM', P .. 'rooms', room.code)
  RR[room.code] = false
end

local function partnerOf(s)
  local room = loadRoom(s.room)
  if not room then return nil, nil end
  local partner = load(room.a == s.id and room.b or room.a)
  return room, partner
end

-- ice_servers is filled in per recipient by the edge, which holds the TURN secret.
local function matchedEvent(room, me, other, resumed)
  local m = {
    event = 'matched', room_code = room.code, initiator = room.ini == me.id, peer = other.id,
    common_interests = room.ints or cjson.decode(room.common), mode = room.mode, ice_servers = {},
  }
  -- The region both are in, never finer; the country only of one who chose to show it.
  if me.ar and me.ar == other.ar then m.region = me.ar end
  if other.fl and other.cc then m.country = other.cc end
  if resumed then m.resumed = true end
  return m
end

-- aEntry: a has just entered the pool, which is not written yet: neither its
-- index nor these fields of its own (see enterPool), written here instead.
local function openRoom(a, b, aEntry)
  codeUsed = codeUsed + 1
  local code = CODES[codeUsed]
  if not code then error('no fresh room code left') end
  -- Spread the one random draw over several pairings of one script.
  local r = (RND2 + (codeUsed - 1) * 0.6180339887) % 1
  local ints = common(a, b)
  local room = {code = code, a = a.id, b = b.id, ini = r < 0.5 and a.id or b.id, mode = a.mode, common = cjson.encode(ints), at = num(NOW)}
  local rk = P .. 'r:' .. code
  redis.call('HSET', rk, 'a', room.a, 'b', room.b, 'ini', room.ini, 'mode', room.mode, 'common', room.common, 'at', room.at)
  redis.call('PEXPIRE', rk, CFGS.ttl)
  redis.call('ZADD', P .. 'rooms', num(NOW + CFG.ttl), code)
  redis.call('PEXPIRE', P .. 'rooms', CFGS.idxttl)
  -- The common interests as a list too, for the matched events (not written).
  room.ints = ints
  RR[code] = room
  for _, pair in ipairs({{a, b}, {b, a}}) do
    local me, other = pair[1], pair[2]
    local kv = {}
    if aEntry and me == a then
      for i = 1, #aEntry, 2 do
        if aEntry[i] ~= 'st' then
          kv[#kv + 1] = aEntry[i]
          kv[#kv + 1] = aEntry[i + 1]
        end
      end
    else
      unpool(me)
    end
    -- Chat kept from an earlier room would only be shown out of place (kcb
    -- is written with every kept chat and dropped only with the list).
    if me.kcb then dropKeptChat(me) end
    kv[#kv + 1] = 'st'
    kv[#kv + 1] = 'matched'
    kv[#kv + 1] = 'room'
    kv[#kv + 1] = code
    put(me, kv)
    send(me, 'matching', matchedEvent(room, me, other))
  end
  FX.p[#FX.p + 1] = {room = code, a = a.id, b = b.id, mode = a.mode, waitedMs = {NOW - a.ws, NOW - b.ws}}
  tally('p')
end

-- choosePartner of core/rules.ts over a bounded set of candidates: the oldest
-- ones of each index set (for fairness) and a random sample of each (for
-- randomness). With small pools that is everyone, as in the memory store.
-- entering: s has just entered the pool and is not written to it yet (the
-- fields of enterPool). True when it paired s.
local function tryPair(s, entering)
  if s.st ~= 'waiting' or not s.mc or not alive(s.mp) then return false end
  local m = s.mode
  promote(m)
  local sources = {}
  local open = not narrowed(s)
  if open then sources[#sources + 1] = P .. 'open:' .. m end
  for _, i in ipairs(s.ints) do sources[#sources + 1] = P .. 'int:' .. m .. ':' .. i end
  if s.lang and (open or #s.ints == 0) then sources[#sources + 1] = P .. 'lang:' .. m .. ':' .. s.lang end
  -- Narrowed by region alone: those in the place it wants. Open: also those
  -- narrowed by region alone whom it suits (their place is its country or region).
  if s.rw and not open and #s.ints == 0 and not s.lang then sources[#sources + 1] = P .. 'place:' .. m .. ':' .. s.rw end
  if open and s.cc then sources[#sources + 1] = P .. 'wants:' .. m .. ':' .. s.cc end
  if open and s.ar then sources[#sources + 1] = P .. 'wants:' .. m .. ':' .. s.ar end

  local seen, cands = {}, {}
  local function consider(id)
    if seen[id] ~= nil then return seen[id] end
    local c = load(id)
    local ok = eligible(s, c)
    seen[id] = ok
    if ok then cands[#cands + 1] = c end
    return ok
  end
  local heads, whole, rest = {}, {}, {}
  for n, k in ipairs(sources) do
    local r = redis.call('ZRANGE', k, 0, CFG.scan - 1, 'WITHSCORES')
    if #r > 0 then HELD[k] = true end
    -- Fewer members than asked for are the whole set; when the sample below
    -- would be as large, it would be all of them: they are taken as they are.
    whole[n] = #r < 2 * CFG.scan and #r <= 2 * CFG.sample
    for i = 1, #r, 2 do
      heads[#heads + 1] = {r[i], tonumber(r[i + 1])}
      if whole[n] then rest[#rest + 1] = r[i] end
    end
  end
  table.sort(heads, function(x, y) return x[2] < y[2] end)
  local checked = 0
  for _, h in ipairs(heads) do
    if seen[h[1]] == nil then
      checked = checked + 1
      -- Stop at the oldest eligible one outside the cooldown: fairness needs no more.
      if consider(h[1]) and not inCooldown(s, h[1]) then break end
      if checked >= CFG.scan then break end
    end
  end
  for n, k in ipairs(sources) do
    if not whole[n] then
      for _, id in ipairs(redis.call('ZRANDMEMBER', k, CFGS.sample)) do consider(id) end
    end
  end
  for _, id in ipairs(rest) do consider(id) end
  if #cands == 0 then return false end

  table.sort(cands, function(x, y) return x.wk < y.wk end)
  local fresh = {}
  for _, c in ipairs(cands) do
    if not inCooldown(s, c.id) then fresh[#fresh + 1] = c end
  end
  local pool = #fresh > 0 and fresh or cands
  local oldest = pool[1]
  if NOW - oldest.ws > CFG.fair then
    openRoom(s, oldest, entering)
    return true
  end
  local from = pool
  if #s.ints > 0 then
    local sharing = {}
    for _, c in ipairs(pool) do
      if shares(s, c) then sharing[#sharing + 1] = c end
    end
    if #sharing > 0 then from = sharing end
  end
  openRoom(s, from[math.floor(RND1 * #from) + 1], entering)
  return true
end

-- s was not waiting (its callers' case), so it is in no index set. It looks
-- for a partner first and is written to the pool only when it found none: a
-- session paired at once is never written to the index, and its entry is
-- written with its room (its pool order stamp wk, used only in the pool, is
-- not drawn at all). Not being in the sets it reads changes nothing it would
-- find: it is never its own candidate.
local function enterPool(s)
  if s.st == 'waiting' then unpool(s) end
  local entry = {'st', 'waiting', 'ea', NOW, 'ws', NOW}
  for i = 1, #entry, 2 do s[entry[i]] = entry[i + 1] end
  send(s, 'matching', {event = 'waiting'})
  if (#s.ints > 0 or s.lang or s.rw) and CFG.interest > 0 then timer('interest', s.id, nil, CFG.interest) end
  if tryPair(s, entry) then return end
  entry[#entry + 1] = 'wk'
  entry[#entry + 1] = score(NOW)
  put(s, entry)
  if s.mc and alive(s.mp) then enpool(s, true) end
end

-- End the ender's room: the partner is told the reason on its matching socket
-- (or on resumption) and on its signalling socket if joined, and is idle.
-- The ender's next state is the caller's to set.
local function endRoom(ender, reason)
  local room, partner = partnerOf(ender)
  if ender.sj and ender.sj == ender.room then route(ender, {k = 'e', room = ender.sj}) end
  drop(ender, 'room', 'sj', 'sjr')
  if not room then return end
  deleteRoom(room)
  if not partner then return end
  local joined = partner.sj == room.code
  drop(partner, 'room', 'sj', 'sjr')
  local news = gone(reason)
  if send(partner, 'matching', news) then put(partner, {'st', 'idle'}) else put(partner, {'st', 'idle', 'news', reason}) end
  if joined then
    send(partner, 'signalling', news)
    route(partner, {k = 'e', room = room.code})
  end
  -- Who met whom is kept only as long as a rule needs it (the re-pair cooldown,
  -- a report of the last partner): these keys expire with the cooldown.
  local keep = num(math.max(1, CFG.cooldown))
  for _, pair in ipairs({{ender, partner}, {partner, ender}}) do
    local me, other = pair[1], pair[2]
    local lk = P .. 'lp:' .. me.id
    -- room and since: a report of the last partner counts by the room's length.
    redis.call('HSET', lk, 'id', other.id, 'addr', other.addr, 'at', num(NOW), 'room', room.code, 'since', room.at or num(NOW))
    redis.call('PEXPIRE', lk, keep)
    local ck = P .. 'cd:' .. me.id
    redis.call('ZADD', ck, num(NOW + CFG.cooldown), other.id)
    -- A lapsed cooldown is only clutter (a read compares its end with now),
    -- as in the memory store, which clears them only past 32 partners: they
    -- are cleared at about one room end in twenty, picked by the room code's
    -- last character (crypto-random, 3 of its 64 letters).
    if string.byte(room.code, -1) % 16 == 0 then redis.call('ZREMRANGEBYSCORE', ck, '-inf', num(NOW)) end
    redis.call('PEXPIRE', ck, keep)
  end
  CD = {}
  FX.e[#FX.e + 1] = reason
end

local GRACE = {matching = {'mg', 'mgp', 'm'}, signalling = {'sg', 'sgp', 's'}}

local function clearGrace(s, ch)
  local g = GRACE[ch]
  if s[g[1]] then
    redis.call('ZREM', P .. 'graces', g[3] .. '|' .. (s[g[2]] or '') .. '|' .. s.id .. '|' .. s[g[1]])
    drop(s, g[1], g[2])
  end
end

local function deleteSession(s)
  addKept(-(tonumber(s.kcb) or 0))
  if s.st == 'waiting' then unpool(s) end
  clearGrace(s, 'matching')
  clearGrace(s, 'signalling')
  redis.call('DEL', skey(s.id), P .. 'kc:' .. s.id, P .. 'cd:' .. s.id, P .. 'bl:' .. s.id, P .. 'lp:' .. s.id)
  if s.th then redis.call('DEL', P .. 't:' .. s.th) end
  redis.call('SREM', P .. 'addr:' .. s.addr, s.id)
  if s.mp then redis.call('SREM', P .. 'pm:' .. s.mp, s.id) end
  if s.sp then redis.call('SREM', P .. 'ps:' .. s.sp, s.id) end
  redis.call('ZREM', P .. 'sess', s.id)
  SS[s.id] = false
end

-- The session is over: its room ends, its token opens nothing more.
local function endSession(s, reason)
  if s.st == 'matched' then endRoom(s, reason) end
  send(s, 'signalling', err('unauthorized', 'session ended'))
  closeSocket(s, 'signalling', 4001, 'session ended')
  deleteSession(s)
end

-- Would n more bytes kept for a member of room pass a byte cap? nil if not,
-- else which: 'room' (its kept signals and its members' kept chat) or 'all'.
local function overCap(room, n)
  if room then
    local used = tonumber(room.kb) or 0
    for _, id in ipairs({room.a, room.b}) do
      local m = load(id)
      if m then used = used + (tonumber(m.kcb) or 0) end
    end
    if used + n > CFG.keptroom then return 'room' end
  end
  if (tonumber(redis.call('GET', KEPT)) or 0) + n > CFG.keptall then return 'all' end
  return nil
end

-- The buffer-full message for a refused signal or chat (the same text as store/memory.ts fullMessage).
local function fullMessage(what, why)
  if why == 'room' then return 'partner is away and what this room keeps would pass KEPT_BYTES_PER_ROOM (' .. num(CFG.keptroom) .. ' bytes)' end
  if why == 'all' then return 'what the server keeps for absent members would pass KEPT_BYTES_PER_PROCESS (' .. num(CFG.keptall) .. ' bytes)' end
  if what == 'chat' then return 'partner is away and ' .. CFG.buffer .. ' messages are waiting' end
  return 'partner has not joined and ' .. CFG.buffer .. ' signals are waiting'
end

-- Keep a chat for a session whose matching socket is away: nil when kept, else why not ('count', 'room', 'all').
local function keepChat(s, msg)
  local k = P .. 'kc:' .. s.id
  if redis.call('LLEN', k) >= CFG.buffer then return 'count' end
  local n = itemBytes(msg.message)
  local why = overCap(loadRoom(s.room), n)
  if why then return why end
  redis.call('RPUSH', k, cjson.encode(msg))
  redis.call('PEXPIRE', k, CFGS.ttl)
  put(s, {'kcb', (tonumber(s.kcb) or 0) + n})
  addKept(n)
  return nil
end

local function flushKeptChat(s)
  local k = P .. 'kc:' .. s.id
  for _, raw in ipairs(redis.call('LRANGE', k, 0, -1)) do send(s, 'matching', cjson.decode(raw)) end
  dropKeptChat(s)
end

-- Keep a signal (its data as text) for a member whose socket has not joined: nil when kept, else why not.
local function keepSignal(room, to, msg)
  local k = P .. 'rk:' .. room.code .. ':' .. to
  if redis.call('LLEN', k) >= CFG.buffer then return 'count' end
  local n = itemBytes(msg.data)
  local why = overCap(room, n)
  if why then return why end
  redis.call('RPUSH', k, cjson.encode(msg))
  redis.call('PEXPIRE', k, CFGS.ttl)
  room.kb = num((tonumber(room.kb) or 0) + n)
  redis.call('HSET', P .. 'r:' .. room.code, 'kb', room.kb)
  addKept(n)
  return nil
end

-- Is stream id a at or before b ("ms-seq")?
local function idAtOrBefore(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return false end
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as <= bs)
end

-- Move the first n items of list k behind the others (takeInFlight).
local function rotate(k, n)
  for _ = 1, n do redis.call('LMOVE', k, k, 'LEFT', 'RIGHT') end
end

-- A socket has dropped or is being replaced: what is still queued for it in
-- its process's inbox (not carried out there yet) is kept here, in order,
-- ahead of anything sent later; that process then skips those entries (see
-- undelivered). When that process is dead, what was kept already came later
-- than all of it (sent once it was taken for dead, so that nothing more went
-- to its inbox), so it goes back behind; while it lives, what it kept came
-- from its own inbox, earlier (undelivered), and stays ahead.
-- after: the inbox entry that process carried out last, when known.
local function takeInFlight(s, ch, oldConn, oldProc, after)
  if not oldConn or not oldProc then return end
  local kept = not alive(oldProc) and (ch == 'matching' and (P .. 'kc:' .. s.id) or (s.room and (P .. 'rk:' .. s.room .. ':' .. s.id)))
  local before = kept and redis.call('LLEN', kept) or 0
  local last
  -- Entries up to the session's mark for that inbox were dealt with already.
  local mark = s['tk|' .. ch .. '|' .. oldProc]
  if after == '' or after == '0-0' then after = nil end
  if mark and (not after or idAtOrBefore(after, mark)) then after = mark end
  local from = after and ('(' .. after) or '-'
  for _, e in ipairs(redis.call('XRANGE', P .. 'inbox:' .. oldProc, from, '+', 'COUNT', 1000)) do
    last = e[1]
    -- Most entries are for other sockets: a plain search for the conn id spares decoding them.
    local batch = string.find(e[2][2], oldConn, 1, true) and cjson.decode(e[2][2]) or {}
    for _, d in ipairs(batch.d or {}) do
      if d.conn == oldConn and d.to == s.id then
        local m = d.msg
        if ch == 'matching' and m.event == 'chat' then
          -- Only while it still belongs: a chat of a room that has ended meanwhile is dropped.
          local _, partner = partnerOf(s)
          if partner and partner.id == m.sender then keepChat(s, m) end
        elseif ch == 'matching' and m.event == 'peer-disconnected' and s.st == 'idle' and not s.news then
          put(s, {'news', m.reason})
        elseif ch == 'signalling' and m.event == 'signal' and s.room == m.room_code then
          local room = loadRoom(m.room_code)
          if room then keepSignal(room, s.id, m) end
        end
        -- State messages are told afresh on resumption; typing and errors were of the moment.
      end
    end
  end
  if last then put(s, {'tk|' .. ch .. '|' .. oldProc, last}) end
  if before > 0 and redis.call('LLEN', kept) > before then rotate(kept, before) end
end

-- A socket ended without leaving: its grace period starts. The deadline is
-- also kept in graces, so that a grace whose process died still runs out.
-- own: the socket's process tells (else the reaper found it dead); after: see takeInFlight.
local function dropSocket(s, ch, own, after)
  local f, g = SLOT[ch], GRACE[ch]
  local conn, proc = s[f[1]], s[f[2]]
  takeInFlight(s, ch, conn, proc, after)
  drop(s, f[1], f[2])
  redis.call('SREM', P .. INDEX[ch] .. ':' .. proc, s.id)
  if ch == 'matching' then
    if s.st == 'waiting' then unpool(s) end
  else
    local joined = s.sj
    if joined then
      local _, partner = partnerOf(s)
      peerAway(s, joined, partner)
    end
    drop(s, 'sj')
    -- Taken away by the reaper, not by the socket: remember the join for a heal.
    if joined and not own then put(s, {'sjr', joined}) end
  end
  put(s, {g[1], conn, g[2], proc})
  redis.call('ZADD', P .. 'graces', num(NOW + CFG.grace), g[3] .. '|' .. proc .. '|' .. s.id .. '|' .. conn)
  redis.call('PEXPIRE', P .. 'graces', CFGS.idxttl)
  if own then timer(ch .. '-grace', s.id, conn, CFG.grace) end
end

-- A new socket of a session on a channel takes over from the old one, whose
-- in-flight messages come first; the grace period, if any, is over.
local function adopt(s, ch, conn)
  local f = SLOT[ch]
  local old, oldProc = s[f[1]], s[f[2]]
  if old ~= conn then
    if old then takeInFlight(s, ch, old, oldProc) end
    closeSocket(s, ch, 4002, 'replaced by a newer socket')
    if oldProc then redis.call('SREM', P .. INDEX[ch] .. ':' .. oldProc, s.id) end
  end
  clearGrace(s, ch)
  put(s, {f[1], conn, f[2], ME})
  holds(INDEX[ch], ME, s.id)
end

-- The member leaves its room from signalling: partner told, member idle.
local function leaveRoom(s, reason)
  endRoom(s, reason)
  put(s, {'st', 'idle'})
  send(s, 'matching', {event = 'idle'})
end

local function memberRoom(s, code)
  local room = loadRoom(code)
  if room and s.room == code then return room end
  send(s, 'signalling', err('invalid-room', 'not a member of this room'))
  return nil
end

local function expireMatching(s, conn)
  if s and s.mg == conn and not s.mc then endSession(s, 'timeout') end
end

local function expireSignalling(s, conn)
  if not s or s.sg ~= conn then return end
  clearGrace(s, 'signalling')
  drop(s, 'sjr')
  local room = loadRoom(s.room)
  if room and room['j:' .. s.id] then leaveRoom(s, 'timeout') end
end

-- Ban an address (core/rules.ts nextStrike, banLengthMs): one strike more
-- than its last ban's if that ended within the strike window, each ban twice
-- as long as the one before, at most CFG.banmax. reports: the counting
-- reports that made it, kept with the strike for the admin API.
-- length: the operator's choice for a ban made by hand (why: the reason), else nil.
local function ban(addr, reports, length, why)
  local sk = P .. 'strike:' .. addr
  local last = redis.call('HMGET', sk, 'n', 'until')
  local n = 1
  if last[1] and last[2] and NOW - tonumber(last[2]) <= CFG.strikewin then n = tonumber(last[1]) + 1 end
  local untilAt = NOW + (length or math.min(CFG.banmax, CFG.bandur * 2 ^ math.min(n - 1, 52)))
  redis.call('HSET', sk, 'n', num(n), 'until', num(untilAt), 'rep', num(reports), 'why', why or '', 'man', length and '1' or '0')
  -- A ban followed the reports kept for the operator.
  redis.call('SET', P .. 'rlb:' .. addr, num(NOW), 'PX', CFG.repwin)
  redis.call('PEXPIRE', sk, num(math.max(1, untilAt - NOW + CFG.strikewin)))
  redis.call('SET', P .. 'ban:' .. addr, num(untilAt), 'PX', num(math.max(1, untilAt - NOW)))
  -- The list of bans for the admin API; each entry ends with its ban.
  redis.call('ZADD', P .. 'bans', num(untilAt), addr)
  redis.call('ZREMRANGEBYSCORE', P .. 'bans', '-inf', num(NOW))
  redis.call('PEXPIRE', P .. 'bans', num(math.max(CFG.banmax, untilAt - NOW)))
  local msg = err('banned', 'this address is banned')
  msg['until'] = math.ceil(untilAt / 1000)
  -- In id order, as store/memory.ts does (a set's own order is Redis's).
  local sids = redis.call('SMEMBERS', P .. 'addr:' .. addr)
  table.sort(sids)
  for _, sid in ipairs(sids) do
    local s = load(sid)
    if s then
      if s.st == 'matched' then endRoom(s, 'reported') end
      for _, ch in ipairs({'matching', 'signalling'}) do
        send(s, ch, msg)
        closeSocket(s, ch, 4003, 'banned')
      end
      deleteSession(s)
    else
      redis.call('SREM', P .. 'addr:' .. addr, sid)
    end
  end
  return untilAt
end

-- Never pair s and the target (id, addr; t its session if live) again: the
-- sessions for good, their addresses for CFG.block when they differ (one
-- address blocked from itself would keep everyone behind it apart).
local function keepApart(s, tid, taddr, t, addresses)
  redis.call('SADD', P .. 'bl:' .. s.id, tid)
  redis.call('PEXPIRE', P .. 'bl:' .. s.id, CFGS.ttl)
  put(s, {'blk', '1'})
  if t then
    redis.call('SADD', P .. 'bl:' .. tid, s.id)
    redis.call('PEXPIRE', P .. 'bl:' .. tid, CFGS.ttl)
    put(t, {'blk', '1'})
  end
  if not addresses or s.addr == taddr then return end
  redis.call('SET', pairKey(s.addr, taddr), num(NOW + CFG.block), 'PX', CFG.block)
  for _, a in ipairs({s.addr, taddr}) do
    -- New sessions of these addresses look for address blocks (register).
    local k = P .. 'abx:' .. a
    if redis.call('PTTL', k) < CFG.block then redis.call('SET', k, '1', 'PX', CFG.block) end
  end
  put(s, {'ab', '1'})
  if t then put(t, {'ab', '1'}) end
end

-- The partner, or the last one within the re-pair cooldown: id, addr, room, opened, ended (nil while matched).
local function reportable(s)
  local room, partner = partnerOf(s)
  if partner then return partner.id, partner.addr, room.code, tonumber(room.at or NOW), nil end
  local last = redis.call('HMGET', P .. 'lp:' .. s.id, 'id', 'addr', 'at', 'room', 'since')
  if last[1] and NOW - tonumber(last[3]) < CFG.cooldown then
    return last[1], last[2], last[4] or '', tonumber(last[5] or last[3]), tonumber(last[3])
  end
  return nil
end

local function profile(s)
  return {mode = s.mode, int = s.int or '[]', lang = s.lang or '', addr = s.addr, geo = cjson.encode({cc = s.cc, ar = s.ar, rw = s.rw, fl = s.fl})}
end

-- A new session from A: name ('' for none), generated id, mode, interests JSON,
-- lang ('' for none), token hash, addr, then country, region, wanted place ('' for
-- none) and '1' to show the country ('' not to); then what it is admitted by
-- (store.ts Admission, in its order): A[12] a proof of work's key ('' none) and
-- A[13] how long it stays spent (ms), A[14] for a one-trip start the most
-- sockets open from the address ('' none) and A[15] this process's count of
-- them with the new one (as SOCKET_SCRIPTS.admit). Its result, for finish().
-- timed: its socket is not open yet, so the registration may run out.
local function registerSession(timed)
  local name, gen, mode, int, lang, th, addr = A[1], A[2], A[3], A[4], A[5], A[6], A[7]
  -- A made-up id that is taken (72 random bits: practically never) is drawn again before anything counts.
  if name == '' and redis.call('EXISTS', skey(gen)) == 1 then return {status = 'retry'} end
  local sockets = P .. 'so:' .. addr
  if A[14] ~= '' and openSockets(sockets, tonumber(A[15])) > tonumber(A[14]) then return {status = 'too-many-sockets'} end
  local retry = countRate(P .. 'rg:' .. addr, CFG.regmax)
  if retry then return {status = 'rate-limited', retry = retry} end
  if A[12] ~= '' and not redis.call('SET', P .. 'pow:' .. A[12], '1', 'PX', A[13], 'NX') then return {status = 'proof-spent'} end
  local banned = redis.call('GET', P .. 'ban:' .. addr)
  if banned and tonumber(banned) > NOW then return {status = 'banned', ['until'] = tonumber(banned)} end
  local id = name ~= '' and name or gen
  -- A name is looked up here, after the checks above (a made-up id was looked up first).
  if name ~= '' and redis.call('EXISTS', skey(id)) == 1 then return {status = 'exists'} end
  -- Until its socket opens, a session lives as long as its registration (the timer
  -- ends it; the TTL only clears what a dead process left behind).
  local ttl = CFG.regttl + CFG.regslack
  local f = {'mode', mode, 'int', int, 'th', th, 'addr', addr, 'st', 'registered', 'ea', num(NOW), 'ws', num(NOW), 'wk', num(score(NOW))}
  if lang ~= '' then
    f[#f + 1] = 'lang'
    f[#f + 1] = lang
  end
  for i, field in ipairs({'cc', 'ar', 'rw', 'fl'}) do
    local v = A[7 + i]
    if v and v ~= '' then
      f[#f + 1] = field
      f[#f + 1] = v
    end
  end
  if redis.call('EXISTS', P .. 'abx:' .. addr) == 1 then
    f[#f + 1] = 'ab'
    f[#f + 1] = '1'
  end
  redis.call('HSET', skey(id), unpack(f))
  redis.call('PEXPIRE', skey(id), ttl)
  redis.call('SET', P .. 't:' .. th, id, 'PX', ttl)
  redis.call('SADD', P .. 'addr:' .. addr, id)
  redis.call('PEXPIRE', P .. 'addr:' .. addr, CFGS.ttl)
  redis.call('ZADD', P .. 'sess', num(NOW + ttl), id)
  redis.call('PEXPIRE', P .. 'sess', CFGS.idxttl)
  if timed then timer('registration', id, nil, CFG.regttl) end
  if A[14] ~= '' then holdSockets(sockets, addr, A[15]) end
  return {status = 'ok', id = id}
end

-- Open (or replace) the matching socket conn of session id, whose token hash
-- is th: the first open enters the pool; a resumption is told where it stands.
local function attachMatchingSocket(id, th, conn)
  local s = load(id)
  if not s or s.th ~= th then return {ok = false} end
  adopt(s, 'matching', conn)
  touch(s)
  if s.st == 'registered' then
    enterPool(s)
  elseif s.st == 'waiting' then
    send(s, 'matching', {event = 'waiting'})
    enpool(s)
    tryPair(s)
  elseif s.st == 'matched' then
    local room, partner = partnerOf(s)
    if room and partner then send(s, 'matching', matchedEvent(room, s, partner, true)) end
    flushKeptChat(s)
  else
    flushKeptChat(s)
    if s.news then send(s, 'matching', gone(s.news)) end
    drop(s, 'news')
    send(s, 'matching', {event = 'idle'})
  end
  return {ok = true, profile = profile(s)}
end
`;

/** The transitions. Each body sees the prelude's helpers and A[1..], and ends with finish(). */
const BODIES = {
  // A: as registerSession (the prelude)
  register: `
return finish(registerSession(true))
`,
  // A: id
  onRegistrationExpired: `
local s = load(A[1])
if s and s.st == 'registered' and not s.mc then endSession(s, 'timeout') end
return finish()
`,
  // A: id, token hash, conn
  attachMatching: `
return finish(attachMatchingSocket(A[1], A[2], A[3]))
`,
  // A: as register, then the matching socket's conn (A[16]): a one-trip start in one call
  registerAttached: `
local r = registerSession(false)
if r.status == 'ok' then r.profile = attachMatchingSocket(r.id, A[6], A[16]).profile end
return finish(r)
`,
  // A: id, conn, left ('1'/'0'), the last entry of this process's inbox carried out
  detachMatching: `
local s = owner(A[1], A[2], 'matching')
if s then
  if A[3] == '1' then
    drop(s, 'mc', 'mp')
    redis.call('SREM', P .. 'pm:' .. ME, s.id)
    endSession(s, 'left')
  else
    dropSocket(s, 'matching', true, A[4])
  end
end
return finish()
`,
  // A: id, conn
  onMatchingGraceExpired: `
redis.call('ZREM', P .. 'graces', 'm|' .. ME .. '|' .. A[1] .. '|' .. A[2])
expireMatching(load(A[1]), A[2])
return finish()
`,
  // A: id, conn
  next: `
local s = owner(A[1], A[2], 'matching')
if s then
  local retry = countRate(P .. 'nx:' .. s.addr, CFG.nextmax)
  if retry then return finish({limited = retry}) end
  if s.st == 'waiting' then
    send(s, 'matching', {event = 'waiting'})
  else
    if s.st == 'matched' then endRoom(s, 'skip') end
    enterPool(s)
  end
end
return finish()
`,
  // A: id, conn
  stop: `
local s = owner(A[1], A[2], 'matching')
if s then
  if s.st == 'matched' then endRoom(s, 'left') end
  if s.st == 'waiting' then unpool(s) end
  put(s, {'st', 'idle'})
  send(s, 'matching', {event = 'idle'})
end
return finish()
`,
  // A: id, conn, message
  chat: `
local s = owner(A[1], A[2], 'matching')
if s then
  local _, partner = partnerOf(s)
  if not partner then
    send(s, 'matching', err('no-partner', 'not in a room'))
  else
    local msg = {event = 'chat', sender = s.id, message = A[3], timestamp = NOW / 1000}
    if not send(partner, 'matching', msg) then
      local why = keepChat(partner, msg)
      if why then send(s, 'matching', err('buffer-full', fullMessage('chat', why))) end
    end
  end
end
return finish()
`,
  // A: id, conn, typing ('1'/'0')
  typing: `
local s = owner(A[1], A[2], 'matching')
if s then
  local _, partner = partnerOf(s)
  -- Typing is momentary: dropped, not kept, when the partner is away.
  if partner then send(partner, 'matching', {event = 'typing', sender = s.id, typing = A[3] == '1'}) end
end
return finish()
`,
  // A: id, conn
  block: `
local s = owner(A[1], A[2], 'matching')
if not s then return finish() end
local tid, taddr = reportable(s)
if not tid then
  send(s, 'matching', err('no-partner', 'no current or recent partner to block'))
  return finish()
end
keepApart(s, tid, taddr, load(tid), true)
if s.st == 'matched' then
  endRoom(s, 'skip')
  enterPool(s)
end
return finish()
`,
  // A: addr, length (ms), reason
  addBan: `
local untilAt = ban(A[1], 0, tonumber(A[2]), A[3])
return finish({['until'] = untilAt})
`,
  // A: id, conn, reason ('' for none)
  report: `
local s = owner(A[1], A[2], 'matching')
if not s then return finish() end
-- The reported, the room reported, when it opened and (for the last partner) when it ended.
local tid, taddr, troom, opened, ended = reportable(s)
if not tid then
  send(s, 'matching', err('no-partner', 'no current or recent partner to report'))
  return finish()
end
keepApart(s, tid, taddr, load(tid), false)
-- Kept for the operator (the console) as long as the report window: when, by
-- which address hash, and the reason; never chat text or an address.
local lk = P .. 'rlog:' .. taddr
redis.call('RPUSH', lk, cjson.encode({at = NOW, by = s.addr, r = A[3] or ''}))
redis.call('LTRIM', lk, -CFG.replog, -1)
redis.call('PEXPIRE', lk, CFG.repwin)
redis.call('ZADD', P .. 'rlogx', num(NOW), taddr)
redis.call('ZREMRANGEBYSCORE', P .. 'rlogx', '-inf', num(NOW - CFG.repwin - 1))
redis.call('PEXPIRE', P .. 'rlogx', CFG.repwin)
tally('r')
-- Reports count per reporting address, so one person with many sessions
-- counts once; and only after a real conversation, from a reporter in good
-- standing (core/rules.ts), so that a few quick reports cannot aim a ban.
-- rep:<addr> holds, per reporter address, "<at>|<room>|<1 if it counts, else 0>".
local function entry(v)
  if not v then return nil end
  local at, code, w = string.match(v, '^(%d+)|([^|]*)|([01])$')
  if not at then return nil end
  return {at = tonumber(at), room = code, counts = w == '1'}
end
local function fresh(e) return NOW - e.at <= CFG.repwin end
-- inGoodStanding: no ban that ended within the report window, no fresh counting report by anyone but the target.
local function goodStanding(addr, target)
  local st = redis.call('HGET', P .. 'strike:' .. addr, 'until')
  if st and NOW - tonumber(st) <= CFG.repwin then return false end
  local flat = redis.call('HGETALL', P .. 'rep:' .. addr)
  for i = 1, #flat, 2 do
    local e = entry(flat[i + 1])
    if flat[i] ~= target and e and e.counts and fresh(e) then return false end
  end
  return true
end
local counts = goodStanding(s.addr, taddr) and (ended or NOW) - opened >= CFG.minroom
local rk = P .. 'rep:' .. taddr
-- keptReport: a report that counts is not replaced by one that does not.
local old = entry(redis.call('HGET', rk, s.addr))
if not (old and old.counts and not counts and fresh(old)) then
  redis.call('HSET', rk, s.addr, num(NOW) .. '|' .. troom .. '|' .. (counts and '1' or '0'))
end
-- countingReports: fresh, counting, one per room.
local rooms, counting = {}, 0
local flat = redis.call('HGETALL', rk)
for i = 1, #flat, 2 do
  local e = entry(flat[i + 1])
  if not e or not fresh(e) then
    redis.call('HDEL', rk, flat[i])
  elseif e.counts and not rooms[e.room] then
    rooms[e.room] = true
    counting = counting + 1
  end
end
redis.call('PEXPIRE', rk, CFG.repwin)
-- Reported addresses by their latest report, for the admin API.
local rx = P .. 'reps'
redis.call('ZADD', rx, num(NOW), taddr)
redis.call('ZREMRANGEBYSCORE', rx, '-inf', num(NOW - CFG.repwin - 1))
redis.call('PEXPIRE', rx, CFG.repwin)
if counting >= CFG.banthr then
  redis.call('DEL', rk)
  redis.call('ZREM', rx, taddr)
  ban(taddr, counting, nil, '')
end
return finish()
`,
  // A: token hash. The live session of a token and whether its matching socket is open (/ice-servers).
  presence: `
local id = redis.call('GET', P .. 't:' .. A[1])
local s = load(id)
if not s or s.th ~= A[1] then return finish({}) end
return finish({id = id, open = s.mc ~= nil and alive(s.mp)})
`,
  // A: id
  onInterestTimeout: `
local s = load(A[1])
if s and s.st == 'waiting' then
  -- Timers may fire a millisecond early by the wall clock: until the narrowing has really run out, look again then.
  local left = s.ea + CFG.interest - NOW
  if left > 0 then timer('interest', s.id, nil, left) else tryPair(s) end
end
return finish()
`,
  // A: id, token hash, conn
  attachSignalling: `
local id, th, conn = A[1], A[2], A[3]
local s = load(id)
if not s or s.th ~= th then return finish({ok = false}) end
if s.sj then
  local _, partner = partnerOf(s)
  peerAway(s, s.sj, partner)
end
adopt(s, 'signalling', conn)
drop(s, 'sj', 'sjr')
touch(s)
return finish({ok = true, profile = profile(s)})
`,
  // A: id, conn, left ('1'/'0'), the last entry of this process's inbox carried out
  detachSignalling: `
local s = owner(A[1], A[2], 'signalling')
if s then
  if A[3] == '1' then
    local joined = s.sj
    drop(s, 'sc', 'sp', 'sj')
    redis.call('SREM', P .. 'ps:' .. ME, s.id)
    if joined and joined == s.room then leaveRoom(s, 'left') end
  else
    dropSocket(s, 'signalling', true, A[4])
  end
end
return finish()
`,
  // A: id, conn
  onSignallingGraceExpired: `
redis.call('ZREM', P .. 'graces', 's|' .. ME .. '|' .. A[1] .. '|' .. A[2])
expireSignalling(load(A[1]), A[2])
return finish()
`,
  // A: id, conn, room
  join: `
local id, code = A[1], A[3]
local s = owner(id, A[2], 'signalling')
if not s then return finish() end
local room = memberRoom(s, code)
if not room then return finish() end
local peerId = room.a == id and room.b or room.a
local firstJoin = room['j:' .. id] == nil
if firstJoin then
  redis.call('HSET', P .. 'r:' .. code, 'j:' .. id, '1')
  room['j:' .. id] = '1'
end
put(s, {'sj', code})
send(s, 'signalling', {
  event = 'verified', room_code = code, role = room.ini == id and 'initiator' or 'responder',
  peer = peerId, peer_joined = room['j:' .. peerId] ~= nil,
})
local peer = load(peerId)
if firstJoin and peer and peer.sj == code then send(peer, 'signalling', {event = 'peer-joined', room_code = code, peer = id}) end
-- Both joined sockets live: from now on each process relays its member's signals straight to the other's.
local present = peer and peer.sj == code and peer.sc and alive(peer.sp)
local ans = room.ans == '1'
route(s, {k = 'j', room = code, id = id, peer = peerId, ini = room.ini == id, ans = ans, proc = present and peer.sp or nil, pconn = present and peer.sc or nil})
if present then route(peer, {k = 'p', room = code, proc = s.sp, pconn = s.sc}) end
local kk = P .. 'rk:' .. code .. ':' .. id
local freed = 0
for _, raw in ipairs(redis.call('LRANGE', kk, 0, -1)) do
  local msg = cjson.decode(raw)
  freed = freed + itemBytes(msg.data)
  send(s, 'signalling', msg)
end
redis.call('DEL', kk)
if freed > 0 then
  room.kb = num(math.max(0, (tonumber(room.kb) or 0) - freed))
  redis.call('HSET', P .. 'r:' .. code, 'kb', room.kb)
  addKept(-freed)
end
return finish()
`,
  // A: id, conn, room, type, data (JSON text, kept as text: Lua never parses client data)
  signal: `
local id, code, kind = A[1], A[3], A[4]
local s = owner(id, A[2], 'signalling')
if not s then return finish() end
local room = memberRoom(s, code)
if not room then return finish() end
if s.sj ~= code then
  send(s, 'signalling', err('bad-request', 'join the room first'))
  return finish()
end
if room.ans ~= '1' then
  local isInitiator = room.ini == id
  if (kind == 'offer' and not isInitiator) or (kind == 'answer' and isInitiator) then
    local expected = kind == 'offer' and 'initiator' or 'responder'
    send(s, 'signalling', err('role-mismatch', 'the first ' .. kind .. ' must come from the ' .. expected))
    return finish()
  end
  if kind == 'answer' then
    redis.call('HSET', P .. 'r:' .. code, 'ans', '1')
    room.ans = '1'
  end
end
local peer = load(room.a == id and room.b or room.a)
if not peer then return finish() end
if kind == 'answer' then
  route(s, {k = 'a', room = code})
  if peer.sj == code then route(peer, {k = 'a', room = code}) end
end
local msg = {event = 'signal', room_code = code, from = id, type = kind, data = A[5]}
if peer.sj == code and send(peer, 'signalling', msg) then return finish() end
local why = keepSignal(room, peer.id, msg)
if why then send(s, 'signalling', err('buffer-full', fullMessage('signal', why))) end
return finish()
`,
  // A: id, conn, room
  leave: `
local s = owner(A[1], A[2], 'signalling')
if not s then return finish() end
local room = memberRoom(s, A[3])
if not room then return finish() end
if s.sj ~= A[3] then
  send(s, 'signalling', err('bad-request', 'join the room first'))
  return finish()
end
leaveRoom(s, 'left')
return finish()
`,
  // A: id, token hash, channel, conn (the socket that broke a rule that ends its session: a flood)
  expel: `
local s = load(A[1])
if s and s.th == A[2] then
  local f = SLOT[A[3]]
  -- The socket that broke the rule is closing already: nothing more goes to it.
  if f and s[f[1]] == A[4] then
    if s[f[2]] then redis.call('SREM', P .. INDEX[A[3]] .. ':' .. s[f[2]], s.id) end
    drop(s, f[1], f[2])
  end
  send(s, 'matching', err('unauthorized', 'session ended'))
  closeSocket(s, 'matching', 4001, 'session ended')
  endSession(s, 'left')
end
return finish()
`,
  // A: to, channel, conn, inbox entry id ('' if none), then chat: sender, message, timestamp | signal: room, from, type, data
  undelivered: `
local s = load(A[1])
if not s then return finish() end
local ch, conn, entry = A[2], A[3], A[4]
-- Taken over already (takeInFlight): nothing left to do. Else it is dealt
-- with here, and a later takeover must not take it again. One entry can hold
-- several messages for the socket (a join's kept signals): the entry this
-- script is dealing with (field tu|) is not taken over by its own mark.
local markField, ownField = 'tk|' .. ch .. '|' .. ME, 'tu|' .. ch .. '|' .. ME
if entry ~= '' then
  if s[markField] and idAtOrBefore(entry, s[markField]) and s[ownField] ~= entry then return finish() end
  put(s, {markField, entry, ownField, entry})
end
if ch == 'matching' then
  local msg = {event = 'chat', sender = A[5], message = A[6], timestamp = tonumber(A[7])}
  -- Only while it still belongs: a chat of a room that has ended is dropped, never shown in another.
  local _, partner = partnerOf(s)
  if partner and partner.id == msg.sender then
    -- Reattached meanwhile (perhaps on another process): hand it to the new socket.
    if not (s.mc and s.mc ~= conn and send(s, 'matching', msg)) then keepChat(s, msg) end
  end
else
  local msg = {event = 'signal', room_code = A[5], from = A[6], type = A[7], data = A[8]}
  local room = loadRoom(A[5])
  if room and s.room == A[5] and not (s.sc and s.sc ~= conn and s.sj == A[5] and send(s, 'signalling', msg)) then keepSignal(room, s.id, msg) end
end
return finish()
`,
  // A: hb ttl, fresh epoch
  beat: `
local prev = redis.call('SET', P .. 'hb:' .. ME, num(NOW), 'PX', A[1], 'GET')
redis.call('SADD', P .. 'procs', ME)
redis.call('PEXPIRE', P .. 'procs', CFGS.idxttl)
redis.call('HDEL', P .. 'suspects', ME)
redis.call('PEXPIRE', P .. 'pm:' .. ME, CFGS.idxttl)
redis.call('PEXPIRE', P .. 'ps:' .. ME, CFGS.idxttl)
redis.call('PEXPIRE', P .. 'sa:' .. ME, CFGS.idxttl)
redis.call('PEXPIRE', P .. 'inbox:' .. ME, CFGS.inboxttl)
local epoch = redis.call('GET', P .. 'epoch')
if not epoch then
  epoch = A[2]
  redis.call('SET', P .. 'epoch', epoch, 'PX', CFGS.idxttl)
else
  redis.call('PEXPIRE', P .. 'epoch', CFGS.idxttl)
end
return finish({prev = prev or '', epoch = epoch})
`,
  // A: suspect ms, slack ms, batch, lock ms
  reap: `
local suspect, slack, batch = tonumber(A[1]), tonumber(A[2]), tonumber(A[3])
-- One reaper at a time: the lock lapses on its own, so a dead holder blocks nobody.
if not redis.call('SET', P .. 'lock:reap', ME, 'NX', 'PX', A[4]) then return finish({ran = false}) end
local dropped, expired = 0, 0
-- A process is dead when its heartbeat has been missing for suspect ms (a
-- stalled Redis lets every heartbeat lapse at once: one look is not enough).
for _, proc in ipairs(redis.call('SMEMBERS', P .. 'procs')) do
  if proc ~= ME and redis.call('EXISTS', P .. 'hb:' .. proc) == 0 then
    local since = redis.call('HGET', P .. 'suspects', proc)
    if not since then
      redis.call('HSET', P .. 'suspects', proc, num(NOW))
      redis.call('PEXPIRE', P .. 'suspects', CFGS.idxttl)
    elseif NOW - tonumber(since) >= suspect then
      -- Its sockets dropped without a word: each one's grace period starts now.
      for _, ch in ipairs({'matching', 'signalling'}) do
        local set = P .. (ch == 'matching' and 'pm:' or 'ps:') .. proc
        for _, id in ipairs(redis.call('SRANDMEMBER', set, batch)) do
          redis.call('SREM', set, id)
          local s = load(id)
          if s and s[SLOT[ch][2]] == proc and s[SLOT[ch][1]] then
            dropSocket(s, ch, false)
            dropped = dropped + 1
          end
        end
      end
      -- Its open sockets no longer count against their addresses (see SOCKET_SCRIPTS).
      local held = P .. 'sa:' .. proc
      for _, addr in ipairs(redis.call('SRANDMEMBER', held, batch)) do
        redis.call('SREM', held, addr)
        redis.call('HDEL', P .. 'so:' .. addr, proc)
      end
      if redis.call('SCARD', P .. 'pm:' .. proc) == 0 and redis.call('SCARD', P .. 'ps:' .. proc) == 0 and redis.call('SCARD', held) == 0 then
        redis.call('SREM', P .. 'procs', proc)
        redis.call('HDEL', P .. 'suspects', proc)
      end
    end
  end
end
-- Grace periods whose timer cannot fire (its process is gone) or did not
-- (Redis was unreachable then) run out here.
local due = redis.call('ZRANGEBYSCORE', P .. 'graces', '-inf', num(NOW), 'WITHSCORES', 'LIMIT', 0, batch)
for i = 1, #due, 2 do
  local member, deadline = due[i], tonumber(due[i + 1])
  local tag, proc, id, conn = string.match(member, '^(%a)|([^|]*)|([^|]*)|(.*)$')
  if not tag then
    redis.call('ZREM', P .. 'graces', member)
  elseif not alive(proc) or NOW - deadline >= slack then
    redis.call('ZREM', P .. 'graces', member)
    if tag == 'm' then expireMatching(load(id), conn) else expireSignalling(load(id), conn) end
    expired = expired + 1
  end
end
redis.call('ZREMRANGEBYSCORE', P .. 'sess', '-inf', num(NOW))
redis.call('ZREMRANGEBYSCORE', P .. 'rooms', '-inf', num(NOW))
return finish({ran = true, dropped = dropped, expired = expired})
`,
  // A: lost ('1' when Redis lost its data), JSON list of {id, th, mode, int, lang, geo, addr, m, s, hint}
  heal: `
local lost = A[1] == '1'
local orphans = {}
for _, e in ipairs(cjson.decode(A[2])) do
  local s = load(e.id)
  if not s and lost and e.mode then
    -- Redis came back empty: the session is made again from what its process
    -- holds; the matching side then tells the client what it lost.
    local f = {'mode', e.mode, 'int', e.int, 'th', e.th, 'addr', e.addr, 'st', 'idle', 'rec', '1',
      'ea', num(NOW), 'ws', num(NOW), 'wk', num(score(NOW))}
    if e.lang ~= '' then
      f[#f + 1] = 'lang'
      f[#f + 1] = e.lang
    end
    for field, v in pairs(e.geo and cjson.decode(e.geo) or {}) do
      f[#f + 1] = field
      f[#f + 1] = v
    end
    redis.call('HSET', skey(e.id), unpack(f))
    redis.call('SET', P .. 't:' .. e.th, e.id)
    redis.call('SADD', P .. 'addr:' .. e.addr, e.id)
    SS[e.id] = nil
    s = load(e.id)
  end
  if s and s.th == e.th then
    if e.m and not s.mc and (not s.mg or s.mg == e.m) then
      clearGrace(s, 'matching')
      put(s, {'mc', e.m, 'mp', ME})
      holds('pm', ME, s.id)
      if s.rec then
        drop(s, 'rec')
        if e.hint == 'waiting' then
          enterPool(s)
        elseif e.hint == 'matched' then
          send(s, 'matching', gone('timeout'))
        end
      elseif s.st == 'waiting' then
        enpool(s)
        tryPair(s)
      end
    end
    if e.s and not s.sc and (not s.sg or s.sg == e.s) then
      clearGrace(s, 'signalling')
      put(s, {'sc', e.s, 'sp', ME})
      holds('ps', ME, s.id)
      if s.sjr and s.sjr == s.room then put(s, {'sj', s.sjr}) end
      drop(s, 'sjr')
    end
    touch(s)
  end
  -- Sockets whose session is gone for good are told so (the edge closes them).
  if e.m and (not s or s.th ~= e.th or s.mc ~= e.m) then orphans[#orphans + 1] = {id = e.id, channel = 'matching', conn = e.m} end
  if e.s and (not s or s.th ~= e.th or s.sc ~= e.s) then orphans[#orphans + 1] = {id = e.id, channel = 'signalling', conn = e.s} end
end
return finish({orphans = orphans})
`,
  // A: session ids whose sockets this process holds
  // Every touch interval (RedisStore touchIntervalMs, minutes where index
  // keys live CFG.idxttl, a day): the pool index keys of the waiting ones are
  // refreshed here, not on every pairing, and so never lapse while in use.
  touch: `
for _, id in ipairs(A) do
  local s = load(id)
  if s then
    touch(s)
    freshenPool(s)
  end
end
return finish()
`,
  // A: none. This process stops: its sockets start their grace periods, so
  // their clients can resume on another process (a rolling restart loses no room).
  release: `
for _, ch in ipairs({'matching', 'signalling'}) do
  local set = P .. (ch == 'matching' and 'pm:' or 'ps:') .. ME
  for _, id in ipairs(redis.call('SMEMBERS', set)) do
    local s = load(id)
    if s and s[SLOT[ch][2]] == ME and s[SLOT[ch][1]] then dropSocket(s, ch, false) end
  end
  redis.call('DEL', set)
end
-- The inbox stays until its TTL: a client resuming elsewhere takes over what is still queued in it.
redis.call('DEL', P .. 'hb:' .. ME)
redis.call('SREM', P .. 'procs', ME)
return finish()
`,
} as const;

export type ScriptName = keyof typeof BODIES;

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
local key = P .. 'so:' .. addr
if openSockets(key, tonumber(ARGV[5])) > tonumber(ARGV[4]) then return 0 end
holdSockets(key, addr, ARGV[5])
return 1
`,
  // ARGV[3..] pairs of address hash and this process's count of it (0: none).
  set: `
local P, ME, SOCKET_TTL = KEYS[1], ARGV[1], ARGV[2]
${SOCKET_COUNT}
local held = P .. 'sa:' .. ME
for i = 3, #ARGV - 1, 2 do
  local addr, n = ARGV[i], ARGV[i + 1]
  local key = P .. 'so:' .. addr
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
local held = P .. 'sa:' .. ME
for _, addr in ipairs(redis.call('SMEMBERS', held)) do redis.call('HDEL', P .. 'so:' .. addr, ME) end
redis.call('DEL', held)
return 1
`,
} as const;

export type SocketScriptName = keyof typeof SOCKET_SCRIPTS;
