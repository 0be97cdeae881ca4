-- Heartbeat for this worker's sockets: extend their expiry and restore anything Redis lost.
-- ARGV: prefix, expiry, then groups of (sid, user, session, n_rooms, rooms...)
local prefix, expiry = ARGV[1], ARGV[2]
local i = 3
local refreshed = 0
while i <= #ARGV do
  local sid, user, session, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  redis.call('ZADD', k_sockets(prefix), expiry, sid)
  redis.call('HSET', k_socket(prefix, sid), 'user', user, 'session', session)
  redis.call('ZADD', k_user_sockets(prefix, user), expiry, sid)
  for j = 1, n do room_add(prefix, sid, user, ARGV[i + 3 + j]) end
  i = i + 4 + n
  refreshed = refreshed + 1
end
return refreshed
