-- Re-check a reconnecting socket's session and claim its recovery record, in one round trip.
-- KEYS: session_key, profile_key, recovery_key, stream_key
-- ARGV: user_id, session_id, want_profile (0|1), offset ('' = use the record's), cap
-- Returns {session_owner ('' if none), profile_flat, status, record_json, entries}
--   status: 'ok' | 'revoked' | 'missing' | 'mismatch' | 'gap' | 'overflow'
--   The record is deleted (claimed) only once the session is valid and is the record's own session:
--   'revoked' and 'mismatch' leave it untouched.
--   entries: {{id, event, room, skip_sid, payload_json}, ...} after the offset, oldest first
local session_key, profile_key, recovery_key, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user_id, session_id, want_profile = ARGV[1], ARGV[2], ARGV[3]
local offset, cap = ARGV[4], tonumber(ARGV[5])

local owner = redis.call('HGET', session_key, 'userId') or ''
local profile = {}
if want_profile == '1' then profile = redis.call('HGETALL', profile_key) end
if owner ~= user_id then return {owner, profile, 'revoked', '', {}} end

local raw = redis.call('GET', recovery_key)
if not raw then return {owner, profile, 'missing', '', {}} end
-- Ownership first: only the record's own session claims it; anyone else's claim leaves it to its owner.
local record = cjson.decode(raw)
if record.userId ~= user_id or record.sessionId ~= session_id then
  return {owner, profile, 'mismatch', '', {}}
end
redis.call('DEL', recovery_key)

local start = offset
if start == '' then start = record.lastOffset or '0-0' end
if not string.match(start, '^%d+%-%d+$') then return {owner, profile, 'gap', raw, {}} end

local function older(a, b)
  local am, as = string.match(a, '^(%d+)%-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)%-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

if redis.call('EXISTS', stream) == 1 then
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'max-deleted-entry-id' and older(start, info[i + 1]) then
      return {owner, profile, 'gap', raw, {}}
    end
  end
end

local entries = redis.call('XRANGE', stream, '(' .. start, '+', 'COUNT', cap + 1)
if #entries > cap then return {owner, profile, 'overflow', raw, {}} end
local out = {}
for _, entry in ipairs(entries) do
  local f = {}
  for j = 1, #entry[2], 2 do f[entry[2][j]] = entry[2][j + 1] end
  table.insert(out, {entry[1], f.e, f.r, f.s, f.d})
end
return {owner, profile, 'ok', raw, out}
