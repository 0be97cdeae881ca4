-- Heartbeat for this worker's sockets: extend their expiry and restore anything Redis lost.
-- ARGV: prefix, expiry, then groups of (sid, user, session, n_rooms, rooms...)
-- A socket parked since the snapshot was taken (it disconnected while this round trip was on its way) keeps
-- its recovery window: it is left alone and returned, so that the caller does not release it either.
-- Returns the sids left alone.
local prefix, expiry = ARGV[1], ARGV[2]
local i = 3
local parked = {}
while i <= #ARGV do
  local sid, user, session, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  if redis.call('HGET', k_socket(prefix, sid), 'parked') then
    table.insert(parked, sid)
  else
    redis.call('ZADD', k_sockets(prefix), expiry, sid)
    redis.call('HSET', k_socket(prefix, sid), 'user', user, 'session', session)
    redis.call('ZADD', k_user_sockets(prefix, user), expiry, sid)
    for j = 1, n do room_add(prefix, sid, user, ARGV[i + 3 + j]) end
  end
  i = i + 4 + n
end
return parked
