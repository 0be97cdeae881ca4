-- Shared room-index steps (prepended by realtime.lua_scripts). Per room the index keeps the sids
-- (room:{room}), the users (room-users:{room}) and each user's sids there (room-user:{room}:{user}), so
-- counts of sockets and of distinct users stay right across workers and tabs.

-- Put sid in room; return {sockets, users, user_first (0|1)}.
local function room_add(prefix, sid, user, room)
  redis.call('SADD', prefix .. 'socket-rooms:' .. sid, room)
  redis.call('SADD', prefix .. 'room:' .. room, sid)
  local per_user = prefix .. 'room-user:' .. room .. ':' .. user
  local added = redis.call('SADD', per_user, sid)
  local first = 0
  if added == 1 and redis.call('SCARD', per_user) == 1 then first = 1 end
  redis.call('SADD', prefix .. 'room-users:' .. room, user)
  return {redis.call('SCARD', prefix .. 'room:' .. room), redis.call('SCARD', prefix .. 'room-users:' .. room), first}
end

-- Take sid out of room; return {sockets, users, user_last (0|1)}.
local function room_remove(prefix, sid, user, room)
  redis.call('SREM', prefix .. 'socket-rooms:' .. sid, room)
  redis.call('SREM', prefix .. 'room:' .. room, sid)
  local per_user = prefix .. 'room-user:' .. room .. ':' .. user
  local removed = redis.call('SREM', per_user, sid)
  local last = 0
  if redis.call('SCARD', per_user) == 0 then
    redis.call('SREM', prefix .. 'room-users:' .. room, user)
    if removed == 1 then last = 1 end
  end
  return {redis.call('SCARD', prefix .. 'room:' .. room), redis.call('SCARD', prefix .. 'room-users:' .. room), last}
end
