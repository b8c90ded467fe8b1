// Sessions (read, written, touched), the per-address rates, and the pool's
// index sets. Part of the prelude.
import { KEY } from './names.js';
import { RATE_WINDOW_MS } from '../../../core/rules.js';

export const SESSIONS = String.raw`------------------------------------------------------------------ sessions

local function skey(id) return P .. '${KEY.session}' .. id end

-- A session as this call works with it, from its fields as stored (flat:
-- field, value, ...): what load reads, or what a registration has just written.
local function fromFields(id, flat)
  local s = {id = id}
  for i = 1, #flat, 2 do s[flat[i]] = flat[i + 1] end
  -- Most sessions name no interest: no decoding for them.
  s.ints = (s.int == nil or s.int == '[]') and {} or cjson.decode(s.int)
  s.ea, s.ws, s.wk = tonumber(s.ea), tonumber(s.ws), tonumber(s.wk)
  SS[id] = s
  return s
end

local function load(id)
  if not id then return nil end
  local s = SS[id]
  if s ~= nil then return s or nil end
  local flat = redis.call('HGETALL', skey(id))
  if #flat == 0 then
    SS[id] = false
    return nil
  end
  return fromFields(id, flat)
end

-- Write fields of a session: {field, value, field, value, ...}. A session
-- that is ending (endSession) is only changed here: its keys are deleted
-- before this call ends, so nothing is written to them.
local function put(s, kv)
  local args = {}
  for i = 1, #kv, 2 do
    local v = kv[i + 1]
    s[kv[i]] = v
    args[#args + 1] = kv[i]
    args[#args + 1] = type(v) == 'number' and num(v) or v
  end
  if not s.ending then redis.call('HSET', skey(s.id), unpack(args)) end
end

local function drop(s, ...)
  local fields = {}
  for _, f in ipairs({...}) do
    if s[f] ~= nil then
      s[f] = nil
      fields[#fields + 1] = f
    end
  end
  if #fields > 0 and not s.ending then redis.call('HDEL', skey(s.id), unpack(fields)) end
end

-- Forget the chat kept for a session, and what it counted for.
local function dropKeptChat(s)
  redis.call('DEL', P .. '${KEY.keptChat}' .. s.id)
  addKept(-(tonumber(s.kcb) or 0))
  -- No copy of a taken-over chat is left for a heal to drop (takeInFlight).
  drop(s, 'kcb', 'kcr', 'tn|matching')
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
  redis.call('HSET', k, 'n', num(n + 1), 'u', num(u))
  if n == 0 then redis.call('PEXPIRE', k, num(u - NOW)) end
  return nil
end

-- Sessions with a socket on a process, by channel (INDEX), for the reaper.
local function holds(ch, proc, id)
  local k = P .. INDEX[ch] .. proc
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
  if s.th then redis.call('PEXPIRE', P .. '${KEY.token}' .. s.th, ttl) end
  redis.call('PEXPIRE', P .. '${KEY.address}' .. s.addr, ttl)
  redis.call('PEXPIRE', P .. '${KEY.keptChat}' .. s.id, ttl)
  redis.call('PEXPIRE', P .. '${KEY.blocked}' .. s.id, ttl)
  redis.call('ZADD', P .. '${KEY.sessions}', num(NOW + ttl), s.id)
  freshen(P .. '${KEY.sessions}')
  if s.room then
    redis.call('PEXPIRE', P .. '${KEY.room}' .. s.room, ttl)
    redis.call('PEXPIRE', P .. '${KEY.roomKept}' .. s.room .. ':' .. s.id, ttl)
    redis.call('ZADD', P .. '${KEY.rooms}', 'XX', num(NOW + ttl), s.room)
  end
end

-- Pool order: waiting time, then arrival (a counter breaks ties within a millisecond).
local function score(ws)
  local seq = redis.call('INCR', P .. '${KEY.poolSeq}')
  if seq % 1000 == 1 then redis.call('PEXPIRE', P .. '${KEY.poolSeq}', CFGS.idxttl) end
  return ws * 1024 + (seq % 1024)
end

------------------------------------------------------------------ pool index
-- Per mode, only sessions that are waiting with their matching socket open:
--   open:<mode>          those that accept anyone now (score: pool order)
--   narrow:<mode>        those whose interests/lang still narrow (score: when they entered)
--   int:<mode>:<i>       every one with interest i (score: pool order)
--   ia:<mode>:<i>        those of them that accept a partner of any lang: they name
--                        none, or their narrowing has run out (score: pool order)
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

-- The ia:<mode>:<i> sets of s (ks: added to that list).
local function anyLangKeys(s, ks)
  ks = ks or {}
  for _, i in ipairs(s.ints) do ks[#ks + 1] = P .. '${KEY.interestAnyLang}' .. s.mode .. ':' .. i end
  return ks
end
-- Whether s is in them. A session with a lang is added when its narrowing runs
-- out (promote), which is never before NOW - ea reaches CFG.interest.
local function anyLang(s) return #s.ints > 0 and (s.lang == nil or not narrowed(s)) end

-- The index sets of a waiting session besides open:<mode> and narrow:<mode>;
-- all: its ia sets whatever anyLang says by this caller's clock (another's, a
-- little ahead, may have promoted it), for taking it out.
local function poolKeys(s, all)
  local m, ks = s.mode, {}
  for _, i in ipairs(s.ints) do ks[#ks + 1] = P .. '${KEY.interest}' .. m .. ':' .. i end
  if s.lang then ks[#ks + 1] = P .. '${KEY.lang}' .. m .. ':' .. s.lang end
  if s.cc then ks[#ks + 1] = P .. '${KEY.place}' .. m .. ':' .. s.cc end
  if s.ar then ks[#ks + 1] = P .. '${KEY.place}' .. m .. ':' .. s.ar end
  if s.rw then ks[#ks + 1] = P .. '${KEY.wants}' .. m .. ':' .. s.rw end
  if all or anyLang(s) then anyLangKeys(s, ks) end
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
  zrem(P .. '${KEY.open}' .. m, s.id)
  if narrows(s) then zrem(P .. '${KEY.narrow}' .. m, s.id) end
  for _, k in ipairs(poolKeys(s, true)) do zrem(k, s.id) end
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
    zput(P .. '${KEY.narrow}' .. m, s.ea, s.id)
    if not fresh then zrem(P .. '${KEY.open}' .. m, s.id) end
  else
    zput(P .. '${KEY.open}' .. m, s.wk, s.id)
    if not fresh and narrows(s) then zrem(P .. '${KEY.narrow}' .. m, s.id) end
  end
  for _, k in ipairs(poolKeys(s)) do zput(k, s.wk, s.id) end
end

-- The touch of a waiting session in the pool keeps its index keys alive.
local function freshenPool(s)
  if s.st ~= 'waiting' or not s.mc then return end
  freshen(P .. '${KEY.open}' .. s.mode)
  if narrows(s) then freshen(P .. '${KEY.narrow}' .. s.mode) end
  for _, k in ipairs(poolKeys(s)) do freshen(k) end
end

-- Sessions whose narrowing ran out now accept anyone: move them to open:<mode>.
-- Each session moves once, so the work is paid for by its own arrival.
local function promote(m)
  if CFG.interest <= 0 then return end
  local nk = P .. '${KEY.narrow}' .. m
  local due = redis.call('ZRANGEBYSCORE', nk, '-inf', num(NOW - CFG.interest), 'LIMIT', '0', '64')
  for _, id in ipairs(due) do
    zrem(nk, id)
    local c = load(id)
    if c and c.st == 'waiting' and c.mc then
      zput(P .. '${KEY.open}' .. m, c.wk, id)
      -- It accepts any lang now (one without a lang is in them already, unless
      -- an earlier build put it in the pool: the same score again changes nothing).
      if #c.ints > 0 then
        for _, k in ipairs(anyLangKeys(c)) do zput(k, c.wk, id) end
      end
    end
  end
end

`;
