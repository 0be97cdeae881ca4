-- The offline-member work of one chat message, for one batch of its room's members (an offline job, off
-- the message path): members with no socket alive at the message's time get the stored notification. A
-- socket is alive then when it has not expired by then and connected before (``since`` in its hash; one
-- registered before that field existed counts as connected before).
-- ARGV: prefix, sender, message time (unix seconds), notification id, notification json, cap, members...
-- Returns the members notified.
local prefix, sender, at, id, json, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local at_number = tonumber(at)

local function online_at(member)
  for _, sid in ipairs(redis.call('ZRANGEBYSCORE', k_user_sockets(prefix, member), '(' .. at, '+inf')) do
    local since = redis.call('HGET', k_socket(prefix, sid), 'since')
    if not since or tonumber(since) <= at_number then return true end
  end
  return false
end

local offline = {}
for i = 7, #ARGV do
  local member = ARGV[i]
  if member ~= sender and not online_at(member) then
    store_notification(prefix, member, id, json, cap)
    table.insert(offline, member)
  end
end
return offline
