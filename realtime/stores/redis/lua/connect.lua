-- Register a socket: check its session first (when asked), then liveness, owner, rooms, presence; evict
-- other live sessions of the user; enforce the per-user socket cap; for a recovered socket, read what was
-- logged after its replay point; count the sockets in rooms the connect hooks broadcast to.
-- ARGV: prefix, sid, user, session, expiry, now, now_iso, single_session (0|1), control_channel,
--       max_sockets, recovery_stream ('' = none), replay_after, replay_cap,
--       session_check ('0' none, '1' the session, '2' the session and the user's profile hash),
--       counted (how many rooms to count), rooms to count..., rooms to join...
-- Returns {first_socket (0|1), unread_count, {evicted session ids...}, {{id, event, room, skip, data}...},
--          {{room, sockets, users, user_first}...}, {sockets in each counted room...}, profile_flat}
--   or {-1} when the user already has max_sockets live sockets,
--   or {-2} when the session is unknown or names another user (nothing is written then).
--   The session rule is SessionCheck.of_stored's: valid while the session hash names the user.
local prefix, sid, user, session = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expiry, now, now_iso = ARGV[5], ARGV[6], ARGV[7]
local single, channel, max_sockets = ARGV[8], ARGV[9], tonumber(ARGV[10])
local stream, replay_after, replay_cap = ARGV[11], ARGV[12], tonumber(ARGV[13])
local session_check, counted = ARGV[14], tonumber(ARGV[15])
local first_room = 16 + counted

local profile = {}
if session_check ~= '0' then
  if session_check == '2' then profile = redis.call('HGETALL', k_user(prefix, user)) end
  if redis.call('HGET', k_session(prefix, session), 'userId') ~= user then return {-2} end
end

local user_sockets = k_user_sockets(prefix, user)
redis.call('ZREMRANGEBYSCORE', user_sockets, '-inf', now)
local live = redis.call('ZRANGE', user_sockets, 0, -1)

-- Other sessions (parked sockets included: evicting revokes their session so they cannot come back),
-- and the live sockets that count toward the cap (parked ones are disconnected, so they do not).
local others, seen, kept = {}, {}, 0
for _, other in ipairs(live) do
  if other ~= sid then
    local fields = redis.call('HMGET', k_socket(prefix, other), 'session', 'parked')
    local other_session, parked = fields[1], fields[2]
    if other_session and other_session ~= session and not seen[other_session] then
      seen[other_session] = true
      table.insert(others, other_session)
    end
    if not parked and (single ~= '1' or other_session == session) then kept = kept + 1 end
  end
end
if kept >= max_sockets then return {-1} end

redis.call('ZADD', k_sockets(prefix), expiry, sid)
redis.call('HSET', k_socket(prefix, sid), 'user', user, 'session', session)
redis.call('HDEL', k_socket(prefix, sid), 'parked')
-- When the socket first connected (a recovered socket keeps it), and the sockets new in the last minute:
-- offline-member jobs (chat_offline*.lua) tell from them who had a live socket when a message was sent.
if redis.call('HSETNX', k_socket(prefix, sid), 'since', now) == 1 then
  local recent = k_recent_connects(prefix)
  redis.call('ZADD', recent, now, sid)
  redis.call('ZREMRANGEBYSCORE', recent, '-inf', tonumber(now) - 60)
end
redis.call('ZADD', user_sockets, expiry, sid)
local joined = {}
for i = first_room, #ARGV do
  local counts = room_add(prefix, sid, user, ARGV[i])
  table.insert(joined, {ARGV[i], counts[1], counts[2], counts[3]})
end

local first = 0
if #live == 0 then
  first = 1
  redis.call('HSET', k_presence(prefix, user), 'status', 'online', 'lastSeen', now_iso)
end

local evicted = {}
if single == '1' and #others > 0 then
  for _, old in ipairs(others) do
    redis.call('DEL', k_session(prefix, old))
    table.insert(evicted, old)
  end
  redis.call('PUBLISH', channel, cjson.encode({op = 'logout', sessions = evicted, reason = 'duplicate_login'}))
end

local missed = {}
if stream ~= '' then
  for _, entry in ipairs(redis.call('XRANGE', stream, '(' .. replay_after, '+', 'COUNT', replay_cap)) do
    local f = {}
    for j = 1, #entry[2], 2 do f[entry[2][j]] = entry[2][j + 1] end
    table.insert(missed, {entry[1], f.e, f.r, f.s, f.d})
  end
end

local unread = redis.call('SCARD', k_unread(prefix, user))
local counts = {}
for i = 16, first_room - 1 do table.insert(counts, redis.call('SCARD', k_room(prefix, ARGV[i]))) end
return {first, unread, evicted, missed, joined, counts, profile}
