-- Which members of a chat room an offline-member job must check (chat_offline.lua), without touching
-- every member: those with no socket in the room now (SDIFF, in C), and those whose socket in the room is
-- new since the message. A member in the room now through a socket that connected before the message had a
-- live socket at the message's time, so is not offline. Valid while the message is younger than the minute
-- connect.lua keeps in recent-connects; older jobs check every member.
-- KEYS: group members, the room's users, recent connects
-- ARGV: prefix, message time (unix seconds), max members
-- Returns the members to check (at most max, the sender included when it qualifies).
local members_key, room_users_key, recent_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, at, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local candidates, seen = {}, {}
for _, user in ipairs(redis.call('SDIFF', members_key, room_users_key)) do
  if #candidates >= max then return candidates end
  seen[user] = true
  table.insert(candidates, user)
end
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', recent_key, '(' .. at, '+inf')) do
  if #candidates >= max then break end
  local user = redis.call('HGET', k_socket(prefix, sid), 'user')
  if user and not seen[user] and redis.call('SISMEMBER', members_key, user) == 1 then
    seen[user] = true
    table.insert(candidates, user)
  end
end
return candidates
