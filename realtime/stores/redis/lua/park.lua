-- Keep disconnected sockets as present for the recovery window instead of releasing them: they stay
-- online and in their rooms, so nobody hears a departure that a reconnect would undo. A reconnect with
-- the same sid takes them over; the reaper releases (and announces) the ones never claimed.
-- ARGV: prefix, expiry, sids...
local prefix, expiry = ARGV[1], ARGV[2]
local parked = 0
for i = 3, #ARGV do
  local sid = ARGV[i]
  local socket_key = k_socket(prefix, sid)
  local user = redis.call('HGET', socket_key, 'user')
  if user then
    redis.call('ZADD', k_sockets(prefix), 'XX', expiry, sid)
    redis.call('ZADD', k_user_sockets(prefix, user), 'XX', expiry, sid)
    redis.call('HSET', socket_key, 'parked', '1')
    parked = parked + 1
  end
end
return parked
