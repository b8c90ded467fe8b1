// The transitions: the body of each, run after the prelude's begin() and
// ending with finish().
import { KEY } from './names.js';
import { READS_RELAYED } from '../codec.js';

/** The transitions. Each body sees the prelude's helpers and A[1..], and ends with finish(). */
export const BODIES = {
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
  // A: id, token hash, conn, the room and seq of the last chat line the client has ('' when none)
  attachMatching: `
return finish(attachMatchingSocket(A[1], A[2], A[3], A[4] ~= '' and A[4] or nil, tonumber(A[5]) or 0))
`,
  // A: id, conn. The reply of a call of this matching socket may have been lost: its
  // state told afresh, as a reopened socket is told it, while it is still the session's.
  retell: `
local s = owner(A[1], A[2], 'matching')
if s then tellState(s) end
return finish()
`,
  // A: as register, then the matching socket's conn (A[16]): a one-trip start in one call
  registerAttached: `
local r = registerSession(false, A[16])
if r.status == 'ok' then r.profile = attachMatchingSocket(r.id, A[6], A[16]).profile end
return finish(r)
`,
  // A: id, conn, left ('1'/'0'), the last entry of this process's inbox carried out
  detachMatching: `
local s = owner(A[1], A[2], 'matching')
if s then
  if A[3] == '1' then
    -- (Its socket leaves the index of this process with the session: deleteSession.)
    endSession(s, 'left')
  else
    dropSocket(s, 'matching', true, A[4])
  end
end
return finish()
`,
  // A: id, conn
  onMatchingGraceExpired: `
redis.call('ZREM', P .. '${KEY.graces}', 'm|' .. ME .. '|' .. A[1] .. '|' .. A[2])
expireMatching(load(A[1]), A[2])
return finish()
`,
  // A: id, conn
  next: `
local s = owner(A[1], A[2], 'matching')
if s then
  local retry = countRate(P .. '${KEY.nextRate}' .. s.addr, CFG.nextmax)
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
  local room, partner = partnerOf(s)
  if not partner then
    send(s, 'matching', err('no-partner', 'not in a room'))
  else
    -- seq: the sender's lines in this room so far (fields ca and cb of the room).
    local seq = redis.call('HINCRBY', P .. '${KEY.room}' .. room.code, room.a == s.id and 'ca' or 'cb', 1)
    local msg = {event = 'chat', sender = s.id, message = A[3], timestamp = NOW / 1000, seq = seq}
    -- A line goes behind any kept for the partner, never ahead of them: those
    -- go first while the partner's socket is reachable, else it is kept too.
    tellKept(partner)
    if partner.kcb or not send(partner, 'matching', msg) then
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
  // A: id, conn, '1' when the addresses are kept apart too
  block: `
local s = owner(A[1], A[2], 'matching')
if not s then return finish() end
local tid, taddr = reportable(s)
if not tid then
  send(s, 'matching', err('no-partner', 'no current or recent partner to block'))
  return finish()
end
keepApart(s, tid, taddr, load(tid), A[3] == '1')
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
  // A: id, conn, reason ('' for none), '1' when it is recorded (counted and kept)
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
if A[4] ~= '1' then return finish({partner = true}) end
-- Kept for the operator (the console) as long as the report window: when, by
-- which address hash, and the reason; never chat text or an address.
local lk = P .. '${KEY.reportLog}' .. taddr
redis.call('RPUSH', lk, cjson.encode({at = NOW, by = s.addr, r = A[3] or ''}))
redis.call('LTRIM', lk, -CFG.replog, -1)
redis.call('PEXPIRE', lk, CFG.repwin)
redis.call('ZADD', P .. '${KEY.reportLogs}', num(NOW), taddr)
redis.call('ZREMRANGEBYSCORE', P .. '${KEY.reportLogs}', '-inf', num(NOW - CFG.repwin - 1))
redis.call('PEXPIRE', P .. '${KEY.reportLogs}', CFG.repwin)
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
  local st = redis.call('HGET', P .. '${KEY.strike}' .. addr, 'until')
  if st and NOW - tonumber(st) <= CFG.repwin then return false end
  local flat = redis.call('HGETALL', P .. '${KEY.reports}' .. addr)
  for i = 1, #flat, 2 do
    local e = entry(flat[i + 1])
    if flat[i] ~= target and e and e.counts and fresh(e) then return false end
  end
  return true
end
local counts = goodStanding(s.addr, taddr) and (ended or NOW) - opened >= CFG.minroom
local rk = P .. '${KEY.reports}' .. taddr
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
local rx = P .. '${KEY.reported}'
redis.call('ZADD', rx, num(NOW), taddr)
redis.call('ZREMRANGEBYSCORE', rx, '-inf', num(NOW - CFG.repwin - 1))
redis.call('PEXPIRE', rx, CFG.repwin)
if counting >= CFG.banthr then
  redis.call('DEL', rk)
  redis.call('ZREM', rx, taddr)
  ban(taddr, counting, nil, '')
end
return finish({partner = true})
`,
  // A: token hash. The live session of a token and whether its matching socket is open (/ice-servers).
  presence: `
local id = redis.call('GET', P .. '${KEY.token}' .. A[1])
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
drop(s, 'sj', 'sjr', 'sjn')
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
    redis.call('SREM', P .. '${KEY.signallingHeld}' .. ME, s.id)
    if joined and joined == s.room then leaveRoom(s, 'left') end
  else
    dropSocket(s, 'signalling', true, A[4])
  end
end
return finish()
`,
  // A: id, conn
  onSignallingGraceExpired: `
redis.call('ZREM', P .. '${KEY.graces}', 's|' .. ME .. '|' .. A[1] .. '|' .. A[2])
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
  redis.call('HSET', P .. '${KEY.room}' .. code, 'j:' .. id, '1')
  room['j:' .. id] = '1'
end
put(s, {'sj', code})
send(s, 'signalling', {
  event = 'verified', room_code = code, role = room.ini == id and 'initiator' or 'responder',
  peer = peerId, peer_joined = room['j:' .. peerId] ~= nil,
})
local peer = load(peerId)
if firstJoin and peer and peer.sj == code then send(peer, 'signalling', {event = 'peer-joined', room_code = code, peer = id}) end
inRoom(s, room)
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
    redis.call('HSET', P .. '${KEY.room}' .. code, 'ans', '1')
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
if peer.sj == code and peer.sc then
  if alive(peer.sp) then
    tellKeptSignals(peer, room)
    send(peer, 'signalling', msg)
    return finish()
  end
  -- Its joined socket stays, but its process's heartbeat is missing for now:
  -- kept, and what s sends next comes through here too, behind it.
  route(s, {k = 'p', room = code})
end
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
    if s[f[2]] then redis.call('SREM', P .. INDEX[A[3]] .. s[f[2]], s.id) end
    drop(s, f[1], f[2])
  end
  send(s, 'matching', err('unauthorized', 'session ended'))
  closeSocket(s, 'matching', 4001, 'session ended')
  endSession(s, 'left')
end
return finish()
`,
  // A: to, channel, conn, inbox entry id ('' if none), then chat: sender, message, timestamp, seq | signal: room, from, type, data
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
  local msg = {event = 'chat', sender = A[5], message = A[6], timestamp = tonumber(A[7]), seq = tonumber(A[8])}
  -- Only while it still belongs: the room with the sender, or the one that
  -- ended last if none has begun since (its lines are told on resumption,
  -- before the end of the room, as the memory store keeps them). A chat of
  -- an earlier room is dropped, never shown in another.
  local _, partner = partnerOf(s)
  local belongs = partner and partner.id == msg.sender
  if not belongs and not s.room then belongs = redis.call('HGET', P .. '${KEY.lastPartner}' .. s.id, 'id') == msg.sender end
  if belongs then
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
-- Its value says this process reads relayed records (codec.ts, READS_RELAYED).
local prev = redis.call('SET', P .. '${KEY.heartbeat}' .. ME, num(NOW) .. '${READS_RELAYED}', 'PX', A[1], 'GET')
redis.call('SADD', P .. '${KEY.procs}', ME)
redis.call('PEXPIRE', P .. '${KEY.procs}', CFGS.idxttl)
redis.call('HDEL', P .. '${KEY.suspects}', ME)
redis.call('PEXPIRE', P .. '${KEY.matchingHeld}' .. ME, CFGS.idxttl)
redis.call('PEXPIRE', P .. '${KEY.signallingHeld}' .. ME, CFGS.idxttl)
redis.call('PEXPIRE', P .. '${KEY.socketAddresses}' .. ME, CFGS.idxttl)
redis.call('PEXPIRE', P .. '${KEY.inbox}' .. ME, CFGS.inboxttl)
local epoch = redis.call('GET', P .. '${KEY.epoch}')
if not epoch then
  epoch = A[2]
  redis.call('SET', P .. '${KEY.epoch}', epoch, 'PX', CFGS.idxttl)
else
  redis.call('PEXPIRE', P .. '${KEY.epoch}', CFGS.idxttl)
end
return finish({prev = prev or '', epoch = epoch})
`,
  // A: suspect ms, slack ms, batch, lock ms
  reap: `
local suspect, slack, batch = tonumber(A[1]), tonumber(A[2]), tonumber(A[3])
-- One reaper at a time: the lock lapses on its own, so a dead holder blocks nobody.
if not redis.call('SET', P .. '${KEY.reapLock}', ME, 'NX', 'PX', A[4]) then return finish({ran = false}) end
local dropped, expired = 0, 0
-- A process is dead when its heartbeat has been missing for suspect ms (a
-- stalled Redis lets every heartbeat lapse at once: one look is not enough).
-- When this process's own heartbeat is missing too, Redis (or this process)
-- was held up past the heartbeats' lifetime, a long call after a crash say,
-- and every heartbeat lapsed with it: nobody is judged on this look, and
-- what was suspected before it is suspected afresh. A process taken for dead
-- while alive would carry out what the reaper has kept for its sockets too.
local judging = redis.call('EXISTS', P .. '${KEY.heartbeat}' .. ME) == 1
if not judging then redis.call('DEL', P .. '${KEY.suspects}') end
for _, proc in ipairs(judging and redis.call('SMEMBERS', P .. '${KEY.procs}') or {}) do
  if proc ~= ME and redis.call('EXISTS', P .. '${KEY.heartbeat}' .. proc) == 0 then
    local since = redis.call('HGET', P .. '${KEY.suspects}', proc)
    if not since then
      redis.call('HSET', P .. '${KEY.suspects}', proc, num(NOW))
      redis.call('PEXPIRE', P .. '${KEY.suspects}', CFGS.idxttl)
    elseif NOW - tonumber(since) >= suspect then
      -- Its sockets dropped without a word: each one's grace period starts now.
      for _, ch in ipairs({'matching', 'signalling'}) do
        local set = P .. INDEX[ch] .. proc
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
      local held = P .. '${KEY.socketAddresses}' .. proc
      for _, addr in ipairs(redis.call('SRANDMEMBER', held, batch)) do
        redis.call('SREM', held, addr)
        redis.call('HDEL', P .. '${KEY.socketsOpen}' .. addr, proc)
      end
      if redis.call('SCARD', P .. '${KEY.matchingHeld}' .. proc) == 0 and redis.call('SCARD', P .. '${KEY.signallingHeld}' .. proc) == 0 and redis.call('SCARD', held) == 0 then
        redis.call('SREM', P .. '${KEY.procs}', proc)
        redis.call('HDEL', P .. '${KEY.suspects}', proc)
      end
    end
  end
end
-- Grace periods whose timer cannot fire (its process is gone) or did not
-- (Redis was unreachable then) run out here.
local due = redis.call('ZRANGEBYSCORE', P .. '${KEY.graces}', '-inf', num(NOW), 'WITHSCORES', 'LIMIT', 0, batch)
for i = 1, #due, 2 do
  local member, deadline = due[i], tonumber(due[i + 1])
  local tag, proc, id, conn = string.match(member, '^(%a)|([^|]*)|([^|]*)|(.*)$')
  if not tag then
    redis.call('ZREM', P .. '${KEY.graces}', member)
  elseif not alive(proc) or NOW - deadline >= slack then
    redis.call('ZREM', P .. '${KEY.graces}', member)
    if tag == 'm' then expireMatching(load(id), conn) else expireSignalling(load(id), conn) end
    expired = expired + 1
  end
end
redis.call('ZREMRANGEBYSCORE', P .. '${KEY.sessions}', '-inf', num(NOW))
redis.call('ZREMRANGEBYSCORE', P .. '${KEY.rooms}', '-inf', num(NOW))
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
    redis.call('SET', P .. '${KEY.token}' .. e.th, e.id)
    redis.call('SADD', P .. '${KEY.address}' .. e.addr, e.id)
    SS[e.id] = nil
    s = load(e.id)
  end
  if s and s.th == e.th then
    if e.m and not s.mc and (not s.mg or s.mg == e.m) then
      clearGrace(s, 'matching')
      dropTaken(s, 'matching')
      put(s, {'mc', e.m, 'mp', ME})
      holds('matching', ME, s.id)
      if s.rec then
        drop(s, 'rec')
        if e.hint == 'waiting' then
          enterPool(s)
        elseif e.hint == 'matched' then
          send(s, 'matching', gone('timeout'))
        elseif e.hint ~= 'idle' then
          -- Told nothing yet (its first words, a resumption's told through
          -- the inbox, were lost with the data): it is idle, and says so.
          send(s, 'matching', {event = 'idle'})
        end
      elseif s.st == 'waiting' then
        enpool(s)
        tryPair(s)
      else
        -- What came for it while its socket was taken away (kept, as for any
        -- absent member), told as a resumption tells it: the chat kept, and
        -- the end of its room. What this process's inbox held then, it
        -- carries out itself (dropTaken); what this call sends comes after.
        if s.kcb then flushKeptChat(s) end
        if s.news then send(s, 'matching', gone(s.news)) end
        drop(s, 'news')
      end
    elseif e.m and s.mc == e.m and s.mp == ME then
      -- Its socket stayed, but chat was kept for it while this process's
      -- heartbeat was missing (and all later lines behind it): told now, in
      -- order, while it is still in that room; the lines of a room it has
      -- left since (told waiting or idle) are not shown.
      if s.kcb then
        if s.st == 'matched' and s.kcr == s.room then flushKeptChat(s) else dropKeptChat(s) end
      end
      -- And what else it missed meanwhile (mx): where it stands now, as a
      -- resumption is told, its room's end first. In a room, it was told the
      -- room (nobody is paired with a socket of a process taken for absent).
      if s.mx then
        drop(s, 'mx')
        if s.st == 'waiting' then
          send(s, 'matching', {event = 'waiting'})
        elseif s.st ~= 'matched' then
          if s.news then send(s, 'matching', gone(s.news)) end
          drop(s, 'news')
          send(s, 'matching', {event = 'idle'})
        end
      end
    end
    -- The same for its joined socket that stayed: the signals kept for it,
    -- and its routes (cleared by this heal: relay.ts) given back; or the end
    -- of its room, if it ended meanwhile (sjn).
    local stayed = e.s and s.sc == e.s and s.sp == ME
    if stayed and s.sj and s.sj == s.room then
      local room = loadRoom(s.sj)
      if room then
        tellKeptSignals(s, room)
        joinedRoutes(s, room)
      end
    elseif stayed and s.sjn then
      if not s.room then send(s, 'signalling', gone(s.sjn)) end
      drop(s, 'sjn')
    end
    if e.s and not s.sc and (not s.sg or s.sg == e.s) then
      clearGrace(s, 'signalling')
      dropTaken(s, 'signalling')
      put(s, {'sc', e.s, 'sp', ME})
      holds('signalling', ME, s.id)
      -- Still in the room it had joined: joined again without a word, and
      -- given what was kept for it meanwhile (as a join gives it).
      local room = s.sjr and s.sjr == s.room and loadRoom(s.room)
      -- Or told that the room it had joined ended meanwhile (unless it is in
      -- another one by now), as its partner's end of the room tells a joined socket.
      local ended = s.sjn
      drop(s, 'sjr', 'sjn')
      if room then
        put(s, {'sj', room.code})
        inRoom(s, room)
      elseif ended and not s.room then
        send(s, 'signalling', gone(ended))
      end
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
  local set = P .. INDEX[ch] .. ME
  for _, id in ipairs(redis.call('SMEMBERS', set)) do
    local s = load(id)
    if s and s[SLOT[ch][2]] == ME and s[SLOT[ch][1]] then dropSocket(s, ch, false) end
  end
  redis.call('DEL', set)
end
-- The inbox stays until its TTL: a client resuming elsewhere takes over what is still queued in it.
redis.call('DEL', P .. '${KEY.heartbeat}' .. ME)
redis.call('SREM', P .. '${KEY.procs}', ME)
return finish()
`,
} as const;

export type ScriptName = keyof typeof BODIES;
