-- Store a chat message once per clientId, and notify room members who are offline.
-- ARGV: prefix, room_id, sender, client_id ('' for none), dedup_ttl, message_json, max_len, now,
--       notification_template_json (id and data.messageId filled here), notify_cap, max_members
-- Returns {duplicate (0|1), message id, {offline user ids...}}
local prefix, room, sender, client_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local dedup_ttl, message_json, max_len, now = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local template, cap, max_members = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])

local dedup_key = prefix .. 'chat-dedup:' .. room .. ':' .. sender .. ':' .. client_id
if client_id ~= '' then
  local existing = redis.call('GET', dedup_key)
  if existing then return {1, existing, {}} end
end

local id = redis.call('XADD', prefix .. 'chat:' .. room, 'MAXLEN', '~', max_len, '*', 'm', message_json)
if client_id ~= '' then redis.call('SET', dedup_key, id, 'EX', dedup_ttl) end

local offline = {}
local members = redis.call('SRANDMEMBER', prefix .. 'group-members:' .. room, max_members)
for _, member in ipairs(members) do
  if member ~= sender and redis.call('ZCOUNT', prefix .. 'user-sockets:' .. member, '(' .. now, '+inf') == 0 then
    local notification = cjson.decode(template)
    notification.id = 'chat-' .. id
    notification.data.messageId = id
    store_notification(prefix, member, notification.id, cjson.encode(notification), cap)
    table.insert(offline, member)
  end
end
return {0, id, offline}
