// The start of every call (its state, begin, number formatting), the open-socket
// counts a registration shares with the socket scripts, and the kept-bytes total.
// Part of the prelude (../lua.ts puts it together).
import { CFG_NAMES, KEY } from './names.js';
import { SOCKET_COUNT } from './socket-counts.js';

export const CORE = String.raw`
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
-- NOWS: NOW as text, made once per call (the most formatted number of all).
local NOWS

-- Numbers go to Redis as integer text: Lua would print large ones in %.14g
-- (and a number handed to redis.call is printed in %.17g, dearer still).
-- Integers (nearly all: times, scores, counts) take the much cheaper %d.
local function fmt(x)
  if x == math.floor(x) and x > -9e15 and x < 9e15 then return string.format('%d', x) end
  return string.format('%.0f', x)
end
local function num(x)
  if x == NOW then return NOWS end
  return fmt(x)
end
local CFG_KEYS = {${CFG_NAMES.map((n) => `'${n}'`).join(', ')}}

local function begin(keys, argv)
  P, ME, NOW = keys[1], argv[1], tonumber(argv[2])
  NOWS = fmt(NOW)
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
    -- The last rank of a scan (ZRANGE 0 scan-1), as text.
    CFGS.scanlast = fmt(CFG.scan - 1)
  end
  RND1, RND2 = tonumber(argv[4]), tonumber(argv[5])
  CODES = {}
  for c in string.gmatch(argv[6], '[^,]+') do CODES[#CODES + 1] = c end
  SEQ = argv[7]
  A = {}
  for i = 8, #argv do A[#A + 1] = argv[i] end
  KEPT = P .. '${KEY.keptBytes}'
  FX = {t = {}, p = {}, e = {}}
  OUT, OUT_ORDER, LIVE, SS, RR = {}, {}, {}, {}, {}
  HELD, FRESHENED, CD = {}, {}, {}
  codeUsed = 0
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

`;
