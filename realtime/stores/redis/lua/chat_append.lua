-- Store a chat message once per clientId, and notify room members who are offline.
-- KEYS: chat stream, dedup key (unused without a client_id), group members
-- ARGV: prefix (for the members' keys, known only here), sender, client_id ('' for none), dedup_ttl,
--       message_json, max_len, now, notification_template_json (id and data.messageId filled here),
--       notify_cap, max_members
-- Returns {duplicate (0|1), message id, {offline user ids...}, unsent, stored message_json}
--   The dedup key holds the message id, followed by '|publish' or '|log' while a failed fan-out left the
--   message unsent (see ChatStore.mark_unsent). A retry that finds such a mark takes it (so concurrent
--   retries send once) and gets the stored message back, to send it: unsent is '' when there is nothing to
--   send, 'publish' when the recovery log already holds it, 'log' when it must be logged too.
local prefix, sender, client_id = ARGV[1], ARGV[2], ARGV[3]
local dedup_ttl, message_json, max_len, now = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local template, cap, max_members = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local stream, dedup_key, members_key = KEYS[1], KEYS[2], KEYS[3]

if client_id ~= '' then
  local existing = redis.call('GET', dedup_key)
  if existing then
    local id, unsent = string.match(existing, '^([^|]+)|?(.*)$')
    if unsent == '' then return {1, id, {}, '', ''} end
    redis.call('SET', dedup_key, id, 'KEEPTTL')
    -- A message trimmed out of the history in the meantime is not sent any more.
    for _, entry in ipairs(redis.call('XRANGE', stream, id, id)) do
      local fields = entry[2]
      for j = 1, #fields, 2 do
        if fields[j] == 'm' then return {1, id, {}, unsent, fields[j + 1]} end
      end
    end
    return {1, id, {}, '', ''}
  end
end

local id = redis.call('XADD', stream, 'MAXLEN', '~', max_len, '*', 'm', message_json)
if client_id ~= '' then redis.call('SET', dedup_key, id, 'EX', dedup_ttl) end

local offline = {}
local members = redis.call('SRANDMEMBER', members_key, max_members)
for _, member in ipairs(members) do
  if member ~= sender and redis.call('ZCOUNT', k_user_sockets(prefix, member), '(' .. now, '+inf') == 0 then
    local notification = cjson.decode(template)
    notification.id = 'chat-' .. id
    notification.data.messageId = id
    store_notification(prefix, member, notification.id, cjson.encode(notification), cap)
    table.insert(offline, member)
  end
end
return {0, id, offline, '', ''}
