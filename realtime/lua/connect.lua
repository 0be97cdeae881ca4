-- Register a socket: liveness, owner, default rooms, presence; evict other live sessions of the user.
-- ARGV: prefix, sid, user, session, expiry, now, now_iso, single_session (0|1), control_channel, rooms...
-- Returns {first_socket (0|1), unread_count, {evicted session ids...}}
local prefix, sid, user, session = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expiry, now, now_iso = ARGV[5], ARGV[6], ARGV[7]
local single, channel = ARGV[8], ARGV[9]

local user_sockets = prefix .. 'user-sockets:' .. user
redis.call('ZREMRANGEBYSCORE', user_sockets, '-inf', now)
local live = redis.call('ZRANGE', user_sockets, 0, -1)

local others, seen = {}, {}
for _, other in ipairs(live) do
  if other ~= sid then
    local other_session = redis.call('HGET', prefix .. 'socket:' .. other, 'session')
    if other_session and other_session ~= session and not seen[other_session] then
      seen[other_session] = true
      table.insert(others, other_session)
    end
  end
end

redis.call('ZADD', prefix .. 'sockets', expiry, sid)
redis.call('HSET', prefix .. 'socket:' .. sid, 'user', user, 'session', session)
redis.call('ZADD', user_sockets, expiry, sid)
for i = 10, #ARGV do room_add(prefix, sid, user, ARGV[i]) end

local first = 0
if #live == 0 then
  first = 1
  redis.call('HSET', prefix .. 'presence:' .. user, 'status', 'online', 'lastSeen', now_iso)
end

local evicted = {}
if single == '1' and #others > 0 then
  for _, old in ipairs(others) do
    redis.call('DEL', prefix .. 'session:' .. old)
    table.insert(evicted, old)
  end
  redis.call('PUBLISH', channel, cjson.encode({op = 'logout', sessions = evicted, reason = 'duplicate_login'}))
end

local unread = redis.call('SCARD', prefix .. 'notifications-unread:' .. user)
return {first, unread, evicted}
