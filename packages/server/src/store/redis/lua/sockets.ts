// Sockets that drop, resume or are replaced: what was on its way to them is
// taken over in order; grace periods. Part of the prelude.
import { KEY } from './names.js';
import { RELAYED, SCRIPT_ENTRY } from '../codec.js';

export const SOCKETS = String.raw`-- Is stream id a at or before b ("ms-seq")?
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

-- The signals of an entry relayed by a process itself (store/redis/codec.ts,
-- RELAYED): records apart by byte 30, the fields of each by byte 31 (to, conn,
-- room, from, type, data), as deliveries of a script's entry.
local function relayedItems(text)
  local out = {}
  for record in string.gmatch(text, '[^\30]+') do
    local to, conn, room, from, kind, data = string.match(record, '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31(.*)$')
    if to then out[#out + 1] = {to = to, conn = conn, msg = {event = 'signal', room_code = room, from = from, type = kind, data = data}} end
  end
  return out
end

-- A socket has dropped or is being replaced: what is still queued for it in
-- its process's inbox (not carried out there yet) is kept here, in order,
-- ahead of anything sent later; that process then skips those entries (see
-- undelivered). Chat finds its place by its seq (keepChat): lines kept while
-- that process's heartbeat was missing, dead or only late, came after it.
-- Signals: when that process is dead, what was kept already came later than
-- all of it (sent once it was taken for dead, so that nothing more went to
-- its inbox), so it goes back behind; while it lives, what it kept came from
-- its own inbox, earlier (undelivered), and stays ahead.
-- after: the inbox entry that process carried out last, when known.
--
-- A process taken for dead may only have been slow (held up past its
-- heartbeat): it then carries out those entries itself and, once its
-- heartbeat finds the lapse, takes its sockets back (heal). So what is kept
-- from a dead process's inbox is tallied in the session (field tn|<ch>:
-- process, items at the head of the kept list, the news set, the room), and
-- a heal by that process drops those copies (dropTaken): nothing is told twice.
local function takeInFlight(s, ch, oldConn, oldProc, after)
  if not oldConn or not oldProc then return end
  local dead = not alive(oldProc)
  -- Signals kept for a dead process's socket before this takeover go back behind what it takes (see above).
  local kept = dead and ch == 'signalling' and s.room and (P .. '${KEY.roomKept}' .. s.room .. ':' .. s.id)
  local before = kept and redis.call('LLEN', kept) or 0
  local taken, news = 0, ''
  local last
  -- Entries up to the session's mark for that inbox were dealt with already.
  local mark = s['tk|' .. ch .. '|' .. oldProc]
  if after == '' or after == '0-0' then after = nil end
  if mark and (not after or idAtOrBefore(after, mark)) then after = mark end
  local from = after and ('(' .. after) or '-'
  for _, e in ipairs(redis.call('XRANGE', P .. '${KEY.inbox}' .. oldProc, from, '+', 'COUNT', 1000)) do
    last = e[1]
    -- A script's entry (fx, JSON) or signals relayed by a process (relayedItems). Most
    -- entries are for other sockets: a plain search for the conn id spares decoding them.
    local name, body, items = e[2][1], e[2][2], {}
    if body and string.find(body, oldConn, 1, true) then
      if name == '${SCRIPT_ENTRY}' then items = cjson.decode(body).d or {} elseif name == '${RELAYED}' then items = relayedItems(body) end
    end
    for _, d in ipairs(items) do
      if d.conn == oldConn and d.to == s.id then
        local m = d.msg
        if ch == 'matching' and m.event == 'chat' then
          -- Only while it still belongs: a chat of a room that has ended meanwhile is dropped.
          local _, partner = partnerOf(s)
          if partner and partner.id == m.sender and not keepChat(s, m) then taken = taken + 1 end
        elseif ch == 'matching' and m.event == 'peer-disconnected' and s.st == 'idle' and not s.news then
          put(s, {'news', m.reason})
          news = m.reason
        elseif ch == 'signalling' and m.event == 'signal' and s.room == m.room_code then
          local room = loadRoom(m.room_code)
          if room and not keepSignal(room, s.id, m) then taken = taken + 1 end
        end
        -- State messages are told afresh on resumption; typing and errors were of the moment.
      end
    end
  end
  if last then put(s, {'tk|' .. ch .. '|' .. oldProc, last}) end
  if before > 0 and redis.call('LLEN', kept) > before then rotate(kept, before) end
  if not dead then return end
  if taken > 0 or news ~= '' then
    put(s, {'tn|' .. ch, oldProc .. '|' .. taken .. '|' .. news .. '|' .. (ch == 'signalling' and s.room or '')})
  else
    drop(s, 'tn|' .. ch)
  end
end

-- Drop the first n items of kept list k, each counted by the bytes of its
-- field f (see itemBytes): the bytes given back.
local function dropKeptHead(k, n, f)
  local freed = 0
  for _, raw in ipairs(redis.call('LRANGE', k, 0, n - 1)) do freed = freed + itemBytes(cjson.decode(raw)[f] or '') end
  redis.call('LTRIM', k, n, -1)
  addKept(-freed)
  return freed
end

-- This process takes s's socket on ch back (heal) after the reaper took it
-- for dead: it has carried out what the reaper kept from its inbox, so those
-- copies go (takeInFlight), with the reaper's mark, so that whatever of its
-- inbox it has not carried out yet is taken over again if the socket drops.
local function dropTaken(s, ch)
  local t = s['tn|' .. ch]
  drop(s, 'tn|' .. ch)
  if not t then return end
  local proc, n, news, code = string.match(t, '^([^|]*)|(%d+)|([^|]*)|(.*)$')
  if proc ~= ME then return end
  drop(s, 'tk|' .. ch .. '|' .. ME)
  n = tonumber(n)
  if news ~= '' and s.news == news then drop(s, 'news') end
  if n == 0 then return end
  if ch == 'matching' then
    local left = (tonumber(s.kcb) or 0) - dropKeptHead(P .. '${KEY.keptChat}' .. s.id, n, 'message')
    if left > 0 then put(s, {'kcb', num(left)}) else drop(s, 'kcb') end
  elseif s.room == code then
    local room = loadRoom(code)
    if not room then return end
    room.kb = num(math.max(0, (tonumber(room.kb) or 0) - dropKeptHead(P .. '${KEY.roomKept}' .. code .. ':' .. s.id, n, 'data')))
    redis.call('HSET', P .. '${KEY.room}' .. code, 'kb', room.kb)
  end
end

-- A socket ended without leaving: its grace period starts. The deadline is
-- also kept in graces, so that a grace whose process died still runs out.
-- own: the socket's process tells (else the reaper found it dead); after: see takeInFlight.
local function dropSocket(s, ch, own, after)
  local f, g = SLOT[ch], GRACE[ch]
  local conn, proc = s[f[1]], s[f[2]]
  takeInFlight(s, ch, conn, proc, after)
  drop(s, f[1], f[2])
  redis.call('SREM', P .. INDEX[ch] .. proc, s.id)
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
  redis.call('ZADD', P .. '${KEY.graces}', num(NOW + CFG.grace), g[3] .. '|' .. proc .. '|' .. s.id .. '|' .. conn)
  redis.call('PEXPIRE', P .. '${KEY.graces}', CFGS.idxttl)
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
    if oldProc then redis.call('SREM', P .. INDEX[ch] .. oldProc, s.id) end
  end
  clearGrace(s, ch)
  -- (A one-trip start's registration has written them already.)
  if old ~= conn or oldProc ~= ME then put(s, {f[1], conn, f[2], ME}) end
  holds(ch, ME, s.id)
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
  drop(s, 'sjr', 'sjn')
  local room = loadRoom(s.room)
  if room and room['j:' .. s.id] then leaveRoom(s, 'timeout') end
end

`;
