-- Forget sockets: the ones named (disconnect), or those whose heartbeat expired (reaper).
-- ARGV: prefix, now, now_iso, mode ('sids'|'expired'), counted (how many room templates to count),
--       templates ('{userId}' replaced by the socket's user)..., limit_or_sid...
-- Returns one entry per socket: {sid, user ('' if unknown), last_socket (0|1),
--   {room, sockets, users, user_last, room, sockets, users, user_last...},
--   {sockets in each counted room, after the release...}}
local prefix, now, now_iso, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local first_sid = 6 + tonumber(ARGV[5])

local sids
if mode == 'expired' then
  sids = redis.call('ZRANGEBYSCORE', k_sockets(prefix), '-inf', now, 'LIMIT', 0, tonumber(ARGV[first_sid]))
else
  sids = {}
  for i = first_sid, #ARGV do table.insert(sids, ARGV[i]) end
end

local results = {}
for _, sid in ipairs(sids) do
  local socket_key = k_socket(prefix, sid)
  local user = redis.call('HGET', socket_key, 'user')
  redis.call('ZREM', k_sockets(prefix), sid)
  redis.call('DEL', socket_key)
  local rooms_key = k_socket_rooms(prefix, sid)
  local counts = {}
  for _, room in ipairs(redis.call('SMEMBERS', rooms_key)) do
    local result = room_remove(prefix, sid, user or '', room)
    table.insert(counts, room)
    table.insert(counts, result[1])
    table.insert(counts, result[2])
    table.insert(counts, result[3])
  end
  redis.call('DEL', rooms_key)
  local last = 0
  if user then
    local user_sockets = k_user_sockets(prefix, user)
    redis.call('ZREM', user_sockets, sid)
    if redis.call('ZCOUNT', user_sockets, '(' .. now, '+inf') == 0 then
      last = 1
      redis.call('HSET', k_presence(prefix, user), 'status', 'offline', 'lastSeen', now_iso)
    end
  else
    user = ''
  end
  local counted = {}
  if user ~= '' then
    for i = 6, first_sid - 1 do
      local room = string.gsub(ARGV[i], '{userId}', (string.gsub(user, '%%', '%%%%')))
      table.insert(counted, redis.call('SCARD', k_room(prefix, room)))
    end
  end
  table.insert(results, {sid, user, last, counts, counted})
end
return results
