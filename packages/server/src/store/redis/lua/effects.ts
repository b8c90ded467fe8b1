// Effects: what a call sends to each process's sockets (inbox entries or the
// reply's own part), timers, and the reply itself. Part of the prelude.
import { KEY } from './names.js';
import { SCRIPT_ENTRY } from '../codec.js';

export const EFFECTS = String.raw`------------------------------------------------------------------ effects

-- What the caller carries out itself: timers to arm, pairings and room ends to count.

-- A process is alive while its heartbeat key exists. Sockets of a dead
-- process count as absent: nothing is sent to them and they are never paired.
local function alive(proc)
  if not proc then return false end
  if proc == ME then return true end
  local a = LIVE[proc]
  if a == nil then
    a = redis.call('EXISTS', P .. '${KEY.heartbeat}' .. proc) == 1
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
local INDEX = {matching = '${KEY.matchingHeld}', signalling = '${KEY.signallingHeld}'}

-- Deliver to a session's open socket on a channel; false when there is none.
local function send(s, ch, msg)
  local f = SLOT[ch]
  local conn, proc = s[f[1]], s[f[2]]
  if not conn then return false end
  if not alive(proc) then
    -- Its process's heartbeat is missing. Its matching socket may stay there
    -- (the heartbeat was late, the process paused): the heal then tells it
    -- where it stands (mx), or it would never hear of what it missed, a room
    -- ended meanwhile above all (sixth review, finding R2).
    if ch == 'matching' and not s.mx and not s.ending then
      s.mx = '1'
      redis.call('HSET', P .. '${KEY.session}' .. s.id, 'mx', '1')
    end
    return false
  end
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
-- signals itself (relay.ts, routes): k = 'j' joined (room, id, peer, ini,
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
-- to those processes must not overtake (relay.ts, lanes).
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
    local key = P .. '${KEY.inbox}' .. proc
    local o = OUT[proc]
    if proc == ME and inlinable(o) then
      local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', '1')[1]
      FX.i, FX.l = o, last and last[1] or ''
      redis.call('SET', P .. '${KEY.lastInline}' .. ME, SEQ, 'PX', CFGS.inboxttl)
    else
      if proc == ME then o.q = SEQ else o.q = redis.call('GET', P .. '${KEY.lastInline}' .. proc) or nil end
      local body = cjson.encode(o)
      local id = redis.call('XADD', key, 'NOMKSTREAM', 'MAXLEN', '~', CFGS.inboxmax, '*', '${SCRIPT_ENTRY}', body)
      if not id then
        id = redis.call('XADD', key, 'MAXLEN', '~', CFGS.inboxmax, '*', '${SCRIPT_ENTRY}', body)
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

`;
