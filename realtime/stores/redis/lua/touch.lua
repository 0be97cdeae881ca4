-- Heartbeat for this worker's sockets whose entries Redis holds: extend their expiry, nothing else.
-- ARGV: prefix, expiry, sids...
-- A parked socket (disconnected, in its recovery window) is left alone. Returns the sids without an entry
-- (Redis lost it, or the socket was released meanwhile): the caller restores the live ones (refresh.lua).
local prefix, expiry = ARGV[1], ARGV[2]
local missing = {}
for i = 3, #ARGV do
  local sid = ARGV[i]
  local fields = redis.call('HMGET', k_socket(prefix, sid), 'user', 'parked')
  if not fields[1] then
    table.insert(missing, sid)
  elseif not fields[2] then
    redis.call('ZADD', k_sockets(prefix), expiry, sid)
    redis.call('ZADD', k_user_sockets(prefix, fields[1]), expiry, sid)
  end
end
return missing
