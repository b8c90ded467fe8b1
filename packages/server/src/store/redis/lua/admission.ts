// Bans, blocks, reports, and the registration of a session and the opening
// of its matching socket. Part of the prelude.
import { KEY } from './names.js';
import { BLOCKED_PRUNE_EVERY } from '../../../core/rules.js';

export const ADMISSION = String.raw`-- Ban an address (core/rules.ts nextStrike, banLengthMs): one strike more
-- than its last ban's if that ended within the strike window, each ban twice
-- as long as the one before, at most CFG.banmax. reports: the counting
-- reports that made it, kept with the strike for the admin API.
-- length: the operator's choice for a ban made by hand (why: the reason), else nil.
-- A ban from reports never shortens the one in force: it then changes nothing.
local function ban(addr, reports, length, why)
  local sk = P .. '${KEY.strike}' .. addr
  local last = redis.call('HMGET', sk, 'n', 'until')
  local n = 1
  if last[1] and last[2] and NOW - tonumber(last[2]) <= CFG.strikewin then n = tonumber(last[1]) + 1 end
  local untilAt = NOW + (length or math.min(CFG.banmax, CFG.bandur * 2 ^ math.min(n - 1, 52)))
  if not length and n > 1 and tonumber(last[2]) >= untilAt then
    untilAt = tonumber(last[2])
  else
    redis.call('HSET', sk, 'n', num(n), 'until', num(untilAt), 'rep', num(reports), 'why', why or '', 'man', length and '1' or '0')
    -- A ban followed the reports kept for the operator.
    redis.call('SET', P .. '${KEY.reportBanned}' .. addr, num(NOW), 'PX', CFG.repwin)
    redis.call('PEXPIRE', sk, num(math.max(1, untilAt - NOW + CFG.strikewin)))
    -- At most CFG.stmax strikes held (store/memory.ts forgetStrikes): ended ones
    -- counted out, then those of bans over, the first to end first (a sorted
    -- set orders a tie by name); those of bans in force are kept.
    local held = P .. '${KEY.strikesHeld}'
    redis.call('ZADD', held, num(untilAt + CFG.strikewin), addr)
    redis.call('ZREMRANGEBYSCORE', held, '-inf', '(' .. NOWS)
    local excess = redis.call('ZCARD', held) - CFG.stmax
    if excess > 0 then
      for _, a in ipairs(redis.call('ZRANGEBYSCORE', held, '-inf', num(NOW + CFG.strikewin), 'LIMIT', 0, excess)) do
        redis.call('ZREM', held, a)
        redis.call('DEL', P .. '${KEY.strike}' .. a)
      end
    end
    if redis.call('PTTL', held) < untilAt - NOW + CFG.strikewin then redis.call('PEXPIRE', held, num(untilAt - NOW + CFG.strikewin)) end
    redis.call('SET', P .. '${KEY.ban}' .. addr, num(untilAt), 'PX', num(math.max(1, untilAt - NOW)))
    -- The list of bans for the admin API; each entry ends with its ban.
    redis.call('ZADD', P .. '${KEY.bans}', num(untilAt), addr)
    redis.call('ZREMRANGEBYSCORE', P .. '${KEY.bans}', '-inf', num(NOW))
    redis.call('PEXPIRE', P .. '${KEY.bans}', num(math.max(CFG.banmax, untilAt - NOW)))
  end
  local msg = err('banned', 'this address is banned')
  msg['until'] = math.ceil(untilAt / 1000)
  -- In id order, as store/memory.ts does (a set's own order is Redis's).
  local sids = redis.call('SMEMBERS', P .. '${KEY.address}' .. addr)
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
      redis.call('SREM', P .. '${KEY.address}' .. addr, sid)
    end
  end
  return untilAt
end

-- id joins the sessions s is never paired with; ended ones leave the set as
-- it grows (core/rules.ts BLOCKED_PRUNE_EVERY, store/memory.ts addBlocked).
local function addBlocked(s, id)
  local k = P .. '${KEY.blocked}' .. s.id
  if redis.call('SADD', k, id) == 1 and redis.call('SCARD', k) % ${BLOCKED_PRUNE_EVERY} == 0 then
    for _, b in ipairs(redis.call('SMEMBERS', k)) do
      if redis.call('EXISTS', skey(b)) == 0 then redis.call('SREM', k, b) end
    end
  end
  redis.call('PEXPIRE', k, CFGS.ttl)
  put(s, {'blk', '1'})
end

-- Never pair s and the target (id, addr; t its session if live) again: the
-- sessions for good, their addresses for CFG.block when they differ (one
-- address blocked from itself would keep everyone behind it apart) and fewer
-- than CFG.abmax such blocks are held.
local function keepApart(s, tid, taddr, t, addresses)
  addBlocked(s, tid)
  if t then addBlocked(t, s.id) end
  if not addresses or s.addr == taddr then return end
  -- At most ADDRESS_BLOCKS_MAX held (ended ones counted out first, by the caller's clock).
  local held, name = P .. '${KEY.addressBlocksHeld}', pairName(s.addr, taddr)
  redis.call('ZREMRANGEBYSCORE', held, '-inf', NOWS)
  if not redis.call('ZSCORE', held, name) and redis.call('ZCARD', held) >= CFG.abmax then return end
  redis.call('ZADD', held, num(NOW + CFG.block), name)
  redis.call('PEXPIRE', held, CFGS.block)
  redis.call('SET', pairKey(s.addr, taddr), num(NOW + CFG.block), 'PX', CFG.block)
  for _, a in ipairs({s.addr, taddr}) do
    -- New sessions of these addresses look for address blocks (register);
    -- those they have already look from now on (the memory store looks at
    -- every pairing).
    local k = P .. '${KEY.addressBlocks}' .. a
    if redis.call('PTTL', k) < CFG.block then redis.call('SET', k, '1', 'PX', CFG.block) end
    for _, sid in ipairs(redis.call('SMEMBERS', P .. '${KEY.address}' .. a)) do
      local o = load(sid)
      if o and not o.ab then put(o, {'ab', '1'}) end
    end
  end
  if not s.ab then put(s, {'ab', '1'}) end
  if t and not t.ab then put(t, {'ab', '1'}) end
end

-- The partner, or the last one within the re-pair cooldown: id, addr, room, opened, ended (nil while matched).
local function reportable(s)
  local room, partner = partnerOf(s)
  if partner then return partner.id, partner.addr, room.code, tonumber(room.at or NOW), nil end
  local last = redis.call('HMGET', P .. '${KEY.lastPartner}' .. s.id, 'id', 'addr', 'at', 'room', 'since')
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
-- timed: its socket is not open yet, so the registration may run out; else
-- (a one-trip start) its matching socket opens in this same call, as conn.
local function registerSession(timed, conn)
  local name, gen, mode, int, lang, th, addr = A[1], A[2], A[3], A[4], A[5], A[6], A[7]
  -- A made-up id that is taken (72 random bits: practically never) is drawn again before anything counts.
  if name == '' and redis.call('EXISTS', skey(gen)) == 1 then return {status = 'retry'} end
  -- At most CFG.pendmax registrations wait for their socket (ended ones counted out first).
  local pending = timed and P .. '${KEY.pendingRegistrations}'
  if pending then
    redis.call('ZREMRANGEBYSCORE', pending, '-inf', NOWS)
    if redis.call('ZCARD', pending) >= CFG.pendmax then
      local first = redis.call('ZRANGE', pending, '0', '0', 'WITHSCORES')
      return {status = 'busy', retry = math.max(1, tonumber(first[2]) - NOW)}
    end
  end
  local sockets = P .. '${KEY.socketsOpen}' .. addr
  if A[14] ~= '' and openSockets(sockets, tonumber(A[15])) > tonumber(A[14]) then return {status = 'too-many-sockets'} end
  -- Sessions in their grace period hold no socket: counted here (MAX_SESSIONS_PER_ADDR).
  -- The set may name sessions whose keys expired (their process died): those
  -- are counted out when it looks full.
  local members = P .. '${KEY.address}' .. addr
  if redis.call('SCARD', members) >= CFG.sessmax then
    for _, sid in ipairs(redis.call('SMEMBERS', members)) do
      if redis.call('EXISTS', skey(sid)) == 0 then redis.call('SREM', members, sid) end
    end
    if redis.call('SCARD', members) >= CFG.sessmax then return {status = 'too-many-sessions'} end
  end
  -- A replayed proof counts nothing for its address (store.ts Admission).
  local proof = A[12] ~= '' and P .. '${KEY.proofSpent}' .. A[12]
  if proof and redis.call('EXISTS', proof) == 1 then return {status = 'proof-spent'} end
  local retry = countRate(P .. '${KEY.registerRate}' .. addr, CFG.regmax)
  if retry then return {status = 'rate-limited', retry = retry} end
  if proof then redis.call('SET', proof, '1', 'PX', A[13]) end
  local banned = redis.call('GET', P .. '${KEY.ban}' .. addr)
  if banned and tonumber(banned) > NOW then return {status = 'banned', ['until'] = tonumber(banned)} end
  local id = name ~= '' and name or gen
  -- A name is looked up here, after the checks above (a made-up id was looked up first).
  if name ~= '' and redis.call('EXISTS', skey(id)) == 1 then return {status = 'exists'} end
  -- Until its socket opens, a session lives as long as its registration (the timer
  -- ends it; the TTL only clears what a dead process left behind); one whose
  -- socket opens now lives as a session with its socket open (touch).
  local ttlMs = timed and CFG.regttl + CFG.regslack or CFG.ttl
  local ttl = num(ttlMs)
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
  if redis.call('EXISTS', P .. '${KEY.addressBlocks}' .. addr) == 1 then
    f[#f + 1] = 'ab'
    f[#f + 1] = '1'
  end
  if conn then
    f[#f + 1] = 'mc'
    f[#f + 1] = conn
    f[#f + 1] = 'mp'
    f[#f + 1] = ME
  end
  redis.call('HSET', skey(id), unpack(f))
  redis.call('PEXPIRE', skey(id), ttl)
  redis.call('SET', P .. '${KEY.token}' .. th, id, 'PX', ttl)
  redis.call('SADD', P .. '${KEY.address}' .. addr, id)
  redis.call('PEXPIRE', P .. '${KEY.address}' .. addr, CFGS.ttl)
  redis.call('ZADD', P .. '${KEY.sessions}', num(NOW + ttlMs), id)
  freshen(P .. '${KEY.sessions}')
  -- What was just written is the session this call goes on with (no read back).
  -- fresh: its keys have the lifetime touch would give them (table only).
  fromFields(id, f).fresh = not timed
  if timed then
    timer('registration', id, nil, CFG.regttl)
    redis.call('ZADD', pending, num(NOW + CFG.regttl), id)
    redis.call('PEXPIRE', pending, ttl)
  end
  if A[14] ~= '' then holdSockets(sockets, addr, A[15]) end
  return {status = 'ok', id = id}
end

-- Tell s's matching socket where it stands, as a newly opened socket is told:
-- the first open enters the pool; a resumption is told its state (and not the
-- kept lines of room seenRoom up to seenSeq: it has them).
local function tellState(s, seenRoom, seenSeq)
  -- Told afresh here: nothing is left for a heal to tell (effects.ts, send).
  if s.mx then drop(s, 'mx') end
  if s.st == 'registered' then
    -- Registered in an earlier call (register), it waited for this socket.
    if not s.fresh then redis.call('ZREM', P .. '${KEY.pendingRegistrations}', s.id) end
    enterPool(s)
  elseif s.st == 'waiting' then
    send(s, 'matching', {event = 'waiting'})
    enpool(s)
    tryPair(s)
  elseif s.st == 'matched' then
    local room, partner = partnerOf(s)
    if room and partner then send(s, 'matching', matchedEvent(room, s, partner, true)) end
    flushKeptChat(s, seenRoom, seenSeq)
  else
    flushKeptChat(s, seenRoom, seenSeq)
    if s.news then send(s, 'matching', gone(s.news)) end
    drop(s, 'news')
    send(s, 'matching', {event = 'idle'})
  end
end

-- Open (or replace) the matching socket conn of session id, whose token hash is th.
local function attachMatchingSocket(id, th, conn, seenRoom, seenSeq)
  local s = load(id)
  if not s or s.th ~= th then return {ok = false} end
  adopt(s, 'matching', conn)
  if not s.fresh then touch(s) end
  tellState(s, seenRoom, seenSeq)
  return {ok = true, profile = profile(s)}
end
`;
