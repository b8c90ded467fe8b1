// The pairing rules (core/rules.ts), choosing a partner, and rooms: opened,
// ended, and what is kept for a member who is away. Part of the prelude.
import { KEY } from './names.js';

export const ROOMS = String.raw`------------------------------------------------------------------ pairing rules (core/rules.ts)

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
  return a.blk and redis.call('SISMEMBER', P .. '${KEY.blocked}' .. a.id, b.id) == 1
end

-- Blocks between two addresses (core of store/memory.ts keepApart), under one
-- key whichever blocked whom; a session flag (ab) says whether to look.
local function pairName(a, b)
  if a < b then return a .. '|' .. b end
  return b .. '|' .. a
end
local function pairKey(a, b) return P .. '${KEY.addressBlock}' .. pairName(a, b) end
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
    local untilAt = redis.call('ZSCORE', P .. '${KEY.cooldown}' .. s.id, id)
    c = untilAt and tonumber(untilAt) > NOW or false
    CD[k] = c
  end
  return c
end

------------------------------------------------------------------ rooms

-- Pairings (p) and reports (r) per minute, for the moderation console's chart.
local function tally(what)
  local k = P .. '${KEY.activity}' .. num(NOW - NOW % 60000)
  -- The first count of a field (the key's first among them) sets the lifetime.
  if redis.call('HINCRBY', k, what, '1') == 1 then redis.call('PEXPIRE', k, '7200000') end
end

local function loadRoom(code)
  if not code then return nil end
  local r = RR[code]
  if r ~= nil then return r or nil end
  local flat = redis.call('HGETALL', P .. '${KEY.room}' .. code)
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
  redis.call('DEL', P .. '${KEY.room}' .. room.code, P .. '${KEY.roomKept}' .. room.code .. ':' .. room.a, P .. '${KEY.roomKept}' .. room.code .. ':' .. room.b)
  redis.call('ZREM', P .. '${KEY.rooms}', room.code)
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
  local rk = P .. '${KEY.room}' .. code
  redis.call('HSET', rk, 'a', room.a, 'b', room.b, 'ini', room.ini, 'mode', room.mode, 'common', room.common, 'at', room.at)
  redis.call('PEXPIRE', rk, CFGS.ttl)
  redis.call('ZADD', P .. '${KEY.rooms}', num(NOW + CFG.ttl), code)
  redis.call('PEXPIRE', P .. '${KEY.rooms}', CFGS.idxttl)
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
  if open then
    sources[#sources + 1] = P .. '${KEY.open}' .. m
    -- Those narrowed by a shared interest: of any lang in ia:, of its lang in lang:.
    anyLangKeys(s, sources)
    if s.lang then sources[#sources + 1] = P .. '${KEY.lang}' .. m .. ':' .. s.lang end
    -- Also those narrowed by region alone whom it suits (their place is its country or region).
    if s.cc then sources[#sources + 1] = P .. '${KEY.wants}' .. m .. ':' .. s.cc end
    if s.ar then sources[#sources + 1] = P .. '${KEY.wants}' .. m .. ':' .. s.ar end
  else
    -- Narrowed: whoever it accepts shares one of its interests, has its lang and
    -- is in the place it wants, each that it names, so is in every one of these
    -- families of sets. Only the smallest is read: in a large pool it is the one
    -- whose bounded read still sees every candidate (a rare lang among common
    -- interests, say), or the most of them. Naming no lang, it is accepted only
    -- by those that accept any lang: of those sharing an interest, the ia: sets.
    local families = {}
    if #s.ints > 0 then
      local f = {}
      if s.lang then
        for _, i in ipairs(s.ints) do f[#f + 1] = P .. '${KEY.interest}' .. m .. ':' .. i end
      else
        f = anyLangKeys(s)
      end
      families[#families + 1] = f
    end
    if s.lang then families[#families + 1] = {P .. '${KEY.lang}' .. m .. ':' .. s.lang} end
    if s.rw then families[#families + 1] = {P .. '${KEY.place}' .. m .. ':' .. s.rw} end
    local best, least = families[1], nil
    if #families > 1 then
      for _, f in ipairs(families) do
        local n = 0
        for _, k in ipairs(f) do n = n + redis.call('ZCARD', k) end
        if not least or n < least then best, least = f, n end
      end
    end
    -- (Narrowed, it names at least one of them.)
    for _, k in ipairs(best) do sources[#sources + 1] = k end
  end

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
    local r = redis.call('ZRANGE', k, '0', CFGS.scanlast, 'WITHSCORES')
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
  -- The random sample is shared by the sets too large to read whole: each
  -- read candidate is a session loaded, and a seeker naming ten interests
  -- that a crowd accepting nobody also names made 160 loads an attempt, some
  -- 2-3 ms of Redis a \`next\` (fifth review, finding X2).
  local sampled = 0
  for n in ipairs(sources) do
    if not whole[n] then sampled = sampled + 1 end
  end
  if sampled > 0 then
    local each = fmt(math.max(2, math.ceil(CFG.sample / sampled)))
    for n, k in ipairs(sources) do
      if not whole[n] then
        for _, id in ipairs(redis.call('ZRANDMEMBER', k, each)) do consider(id) end
      end
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

-- Who met whom is kept only as long as a rule needs it (the re-pair cooldown,
-- a report of the last partner): these keys of me expire with the cooldown (keep).
local function remember(me, other, room, keep)
  local lk = P .. '${KEY.lastPartner}' .. me.id
  -- room and since: a report of the last partner counts by the room's length.
  redis.call('HSET', lk, 'id', other.id, 'addr', other.addr, 'at', num(NOW), 'room', room.code, 'since', room.at or num(NOW))
  redis.call('PEXPIRE', lk, keep)
  local ck = P .. '${KEY.cooldown}' .. me.id
  redis.call('ZADD', ck, num(NOW + CFG.cooldown), other.id)
  -- A lapsed cooldown is only clutter (a read compares its end with now;
  -- the memory store drops those at the front of its map at each room end):
  -- they are cleared at about one room end in twenty, picked by the room
  -- code's last character (crypto-random, 3 of its 64 letters).
  if string.byte(room.code, -1) % 16 == 0 then redis.call('ZREMRANGEBYSCORE', ck, '-inf', num(NOW)) end
  redis.call('PEXPIRE', ck, keep)
end

-- Send the chat kept for s, but for the lines of room seenRoom up to seenSeq
-- (a resumption's chat_seen: the client has them).
local function flushKeptChat(s, seenRoom, seenSeq)
  local k = P .. '${KEY.keptChat}' .. s.id
  local had = (seenRoom and seenRoom == s.kcr) and seenSeq or 0
  for _, raw in ipairs(redis.call('LRANGE', k, '0', '-1')) do
    local m = cjson.decode(raw)
    if not m.seq or m.seq > had then send(s, 'matching', m) end
  end
  dropKeptChat(s)
end

-- Chat kept for s while its socket stayed (its process's heartbeat missing for
-- a moment) is told now, ahead of what comes next, if that socket is reachable.
local function tellKept(s)
  if s.kcb and s.mc and alive(s.mp) then flushKeptChat(s) end
end

-- End the ender's room: the partner is told the reason on its matching socket
-- (or on resumption) and on its signalling socket if joined, and is idle.
-- The ender's next state is the caller's to set.
local function endRoom(ender, reason)
  local room, partner = partnerOf(ender)
  if ender.sj and ender.sj == ender.room then route(ender, {k = 'e', room = ender.sj}) end
  drop(ender, 'room', 'sj', 'sjr', 'sjn')
  if not room then return end
  deleteRoom(room)
  if not partner then return end
  local joined = partner.sj == room.code
  -- Its joined signalling socket taken away by the reaper (sjr): the news is
  -- kept for a heal that takes the socket back (sjn), as for its matching socket.
  local away = partner.sjr == room.code
  drop(partner, 'room', 'sj', 'sjr', 'sjn')
  local news = gone(reason)
  -- Kept chat comes before the end of the room, as on resumption.
  tellKept(partner)
  if send(partner, 'matching', news) then put(partner, {'st', 'idle'}) else put(partner, {'st', 'idle', 'news', reason}) end
  if joined then
    -- Its process's heartbeat missing, the socket may stay there: the heal tells it then (sjn).
    if not send(partner, 'signalling', news) and partner.sc then put(partner, {'sjn', reason}) end
    route(partner, {k = 'e', room = room.code})
  elseif away then
    put(partner, {'sjn', reason})
  end
  local keep = num(math.max(1, CFG.cooldown))
  -- (An ending session's keys, these among them, are deleted before the call ends.)
  if not ender.ending then remember(ender, partner, room, keep) end
  remember(partner, ender, room, keep)
  CD = {}
  FX.e[#FX.e + 1] = reason
end

local GRACE = {matching = {'mg', 'mgp', 'm'}, signalling = {'sg', 'sgp', 's'}}

local function clearGrace(s, ch)
  local g = GRACE[ch]
  if s[g[1]] then
    redis.call('ZREM', P .. '${KEY.graces}', g[3] .. '|' .. (s[g[2]] or '') .. '|' .. s.id .. '|' .. s[g[1]])
    drop(s, g[1], g[2])
  end
end

local function deleteSession(s)
  addKept(-(tonumber(s.kcb) or 0))
  if s.st == 'registered' then redis.call('ZREM', P .. '${KEY.pendingRegistrations}', s.id) end
  if s.st == 'waiting' then unpool(s) end
  clearGrace(s, 'matching')
  clearGrace(s, 'signalling')
  redis.call('DEL', skey(s.id), P .. '${KEY.keptChat}' .. s.id, P .. '${KEY.cooldown}' .. s.id, P .. '${KEY.blocked}' .. s.id, P .. '${KEY.lastPartner}' .. s.id)
  if s.th then redis.call('DEL', P .. '${KEY.token}' .. s.th) end
  redis.call('SREM', P .. '${KEY.address}' .. s.addr, s.id)
  if s.mp then redis.call('SREM', P .. '${KEY.matchingHeld}' .. s.mp, s.id) end
  if s.sp then redis.call('SREM', P .. '${KEY.signallingHeld}' .. s.sp, s.id) end
  redis.call('ZREM', P .. '${KEY.sessions}', s.id)
  SS[s.id] = false
end

-- The session is over: its room ends, its token opens nothing more.
local function endSession(s, reason)
  -- Its keys are deleted below: what is written to them until then is not sent (put, drop).
  s.ending = true
  if s.st == 'matched' then endRoom(s, reason) end
  send(s, 'signalling', err('unauthorized', 'session ended'))
  closeSocket(s, 'signalling', 4001, 'session ended')
  deleteSession(s)
end

-- Would n more bytes kept for a member of room pass a byte cap? nil if not,
-- else which: 'room' (its kept signals and its members' kept chat), 'all' or 'reserve'.
local function overCap(room, n)
  if room then
    local used = tonumber(room.kb) or 0
    for _, id in ipairs({room.a, room.b}) do
      local m = load(id)
      if m then used = used + (tonumber(m.kcb) or 0) end
    end
    if used + n > CFG.keptroom then return 'room' end
    -- A room's first bytes pass the total (KEPT_BYTES_RESERVED_PER_ROOM), up to a ceiling of their own.
    if used + n <= CFG.keptres then
      if (tonumber(redis.call('GET', KEPT)) or 0) + n > CFG.keptall + CFG.keptresall then return 'reserve' end
      return nil
    end
  end
  if (tonumber(redis.call('GET', KEPT)) or 0) + n > CFG.keptall then return 'all' end
  return nil
end

-- The buffer-full message for a refused signal or chat (the same text as store/memory.ts fullMessage).
local function fullMessage(what, why)
  if why == 'room' then return 'partner is away and what this room keeps would pass KEPT_BYTES_PER_ROOM (' .. num(CFG.keptroom) .. ' bytes)' end
  if why == 'all' then return 'what the server keeps for absent members would pass KEPT_BYTES_PER_PROCESS (' .. num(CFG.keptall) .. ' bytes)' end
  if why == 'reserve' then
    return 'what the server keeps for absent members would pass KEPT_BYTES_PER_PROCESS and KEPT_BYTES_RESERVED_TOTAL (' .. num(CFG.keptall + CFG.keptresall) .. ' bytes)'
  end
  if what == 'chat' then return 'partner is away and ' .. CFG.buffer .. ' messages are waiting' end
  return 'partner has not joined and ' .. CFG.buffer .. ' signals are waiting'
end

-- Keep a chat for a session whose matching socket is away: nil when kept, else why not ('count', 'room', 'all').
local function keepChat(s, msg)
  local k = P .. '${KEY.keptChat}' .. s.id
  if redis.call('LLEN', k) >= CFG.buffer then return 'count' end
  local n = itemBytes(msg.message)
  local why = overCap(loadRoom(s.room), n)
  if why then return why end
  -- The list holds lines of one room (kcr), all from the partner: in the
  -- order of their seq. A line taken over from a living process's inbox
  -- (takeInFlight, undelivered) was sent before any line kept while that
  -- process's heartbeat was missing, and goes ahead of them.
  local raw, tail = cjson.encode(msg), redis.call('LINDEX', k, -1)
  if tail and msg.seq and (cjson.decode(tail).seq or 0) > msg.seq then
    for _, item in ipairs(redis.call('LRANGE', k, 0, -1)) do
      if (cjson.decode(item).seq or 0) > msg.seq then
        redis.call('LINSERT', k, 'BEFORE', item, raw)
        break
      end
    end
  else
    redis.call('RPUSH', k, raw)
  end
  redis.call('PEXPIRE', k, CFGS.ttl)
  -- kcr: the room these lines are of (a resumption's chat_seen names it);
  -- none for a line of the room that has just ended (undelivered).
  local kcb = (tonumber(s.kcb) or 0) + n
  if s.room then
    put(s, {'kcb', kcb, 'kcr', s.room})
  else
    put(s, {'kcb', kcb})
    drop(s, 'kcr')
  end
  addKept(n)
  return nil
end

-- Keep a signal (its data as text) for a member whose socket has not joined: nil when kept, else why not.
local function keepSignal(room, to, msg)
  local k = P .. '${KEY.roomKept}' .. room.code .. ':' .. to
  if redis.call('LLEN', k) >= CFG.buffer then return 'count' end
  local n = itemBytes(msg.data)
  local why = overCap(room, n)
  if why then return why end
  redis.call('RPUSH', k, cjson.encode(msg))
  redis.call('PEXPIRE', k, CFGS.ttl)
  room.kb = num((tonumber(room.kb) or 0) + n)
  redis.call('HSET', P .. '${KEY.room}' .. room.code, 'kb', room.kb)
  addKept(n)
  return nil
end

-- Hand s's signalling socket the signals kept for it in room, in order.
local function handKept(s, room)
  local kk = P .. '${KEY.roomKept}' .. room.code .. ':' .. s.id
  local freed = 0
  for _, raw in ipairs(redis.call('LRANGE', kk, '0', '-1')) do
    local msg = cjson.decode(raw)
    freed = freed + itemBytes(msg.data)
    send(s, 'signalling', msg)
  end
  redis.call('DEL', kk)
  if freed > 0 then
    room.kb = num(math.max(0, (tonumber(room.kb) or 0) - freed))
    redis.call('HSET', P .. '${KEY.room}' .. room.code, 'kb', room.kb)
    addKept(-freed)
  end
end

-- s's signalling socket is in room (it has just joined, or a heal took it
-- back): routes for the processes holding both joined sockets, so that from
-- now on each relays its member's signals straight to the other's, and the
-- signals kept for s handed over.
-- The routes of s's socket joined in room (relay.ts): its own, with where its
-- peer's joined socket is, and its peer's, with where s's is.
local function joinedRoutes(s, room)
  local code, id = room.code, s.id
  local peerId = room.a == id and room.b or room.a
  local peer = load(peerId)
  local present = peer and peer.sj == code and peer.sc and alive(peer.sp)
  route(s, {k = 'j', room = code, id = id, peer = peerId, ini = room.ini == id, ans = room.ans == '1', proc = present and peer.sp or nil, pconn = present and peer.sc or nil})
  if present then route(peer, {k = 'p', room = code, proc = s.sp, pconn = s.sc}) end
end

local function inRoom(s, room)
  joinedRoutes(s, room)
  handKept(s, room)
  -- Handed over: no copy of them is left for a heal to drop (takeInFlight).
  drop(s, 'tn|signalling')
end

-- s's joined socket stayed while its process's heartbeat was missing, and
-- signals were kept for it meanwhile (its partner's process relaying through
-- the scripts since, so that nothing overtakes them): handed over now, ahead
-- of anything later, and the partner's process relays straight to it again.
-- Nothing when nothing was kept.
local function tellKeptSignals(s, room)
  if redis.call('EXISTS', P .. '${KEY.roomKept}' .. room.code .. ':' .. s.id) == 0 then return end
  handKept(s, room)
  local _, partner = partnerOf(s)
  if partner and partner.sj == room.code then route(partner, {k = 'p', room = room.code, proc = s.sp, pconn = s.sc}) end
end

`;
