-- The periodic session check of a worker's sockets (realtime.stores.sessions.RedisSessionStore.missing): which
-- sessions no longer name their user (deleted or expired by the login service, or lost by Redis). The rule of
-- SessionCheck.of_stored: a session is valid while its hash's userId is that user.
-- KEYS: session hashes; ARGV: the user each one must name, in the same order.
-- Returns the 1-based positions of the sessions that do not (usually none: the reply stays small).
local gone = {}
for i, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'userId') ~= ARGV[i] then
    gone[#gone + 1] = i
  end
end
return gone
