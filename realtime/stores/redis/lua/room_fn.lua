-- Shared room-index steps (prepended by realtime.stores.redis.scripts). Per room the index keeps the sids
-- (room:{room}), the users (room-users:{room}) and each user's sids there (room-user:{room}:{user}), so
-- counts of sockets and of distinct users stay right across workers and tabs.

-- Put sid in room; return {sockets, users, user_first (0|1)}.
local function room_add(prefix, sid, user, room)
  redis.call('SADD', k_socket_rooms(prefix, sid), room)
  redis.call('SADD', k_room(prefix, room), sid)
  local per_user = k_room_user(prefix, room, user)
  local added = redis.call('SADD', per_user, sid)
  local first = 0
  if added == 1 and redis.call('SCARD', per_user) == 1 then first = 1 end
  redis.call('SADD', k_room_users(prefix, room), user)
  return {redis.call('SCARD', k_room(prefix, room)), redis.call('SCARD', k_room_users(prefix, room)), first}
end

-- Take sid out of room; return {sockets, users, user_last (0|1)}.
local function room_remove(prefix, sid, user, room)
  redis.call('SREM', k_socket_rooms(prefix, sid), room)
  redis.call('SREM', k_room(prefix, room), sid)
  local per_user = k_room_user(prefix, room, user)
  local removed = redis.call('SREM', per_user, sid)
  local last = 0
  if redis.call('SCARD', per_user) == 0 then
    if redis.call('SREM', k_room_users(prefix, room), user) == 1 then
      -- The user may be a member of a chat room who is now offline there (lua/chat_append.lua).
      redis.call('DEL', k_room_complete(prefix, room))
    end
    if removed == 1 then last = 1 end
  end
  return {redis.call('SCARD', k_room(prefix, room)), redis.call('SCARD', k_room_users(prefix, room)), last}
end
