-- Store a chat message once per clientId, and queue the job that notifies the room's offline members.
-- With the broadcast of the new message, log it for recovery (and publish it) in the same round trip
-- (log_packet, lua/recovery_fn.lua): its payload carries the message id, known only here, so it comes in
-- two parts, the id goes between them.
-- KEYS: chat stream, dedup key (unused without a client_id), offline-job stream, group members, the
--       room's users (users with a socket in group:{roomId}, cluster-wide), the room's "complete" flag,
--       [the recovery stream and its last-offset key, when the broadcast is logged here]
-- ARGV: sender, client_id ('' for none), dedup_ttl, message_json, max_len, now,
--       notification_template_json (the job fills in id and data.messageId), room id, job stream max_len,
--       complete_ttl, [log max_len, log min_id, channel ('' = do not publish), event, room, skip_sid,
--       payload before and after the id, channel message before and after the id, channel message after
--       the offset]
-- Returns {duplicate (0|1), message id, unsent, stored message_json, offset ('' when not logged here),
--          the offset logged before it ('' when not logged here or the log was empty)}
--   The offline-member work is O(room size): one small job on a capped stream here, the rest by a consumer
--   group in the workers (realtime.services.offline_jobs), so a message costs the same in any room.
--   The dedup key holds the message id, followed by '|publish' or '|log' while a failed fan-out left the
--   message unsent (see ChatStore.mark_unsent). A retry that finds such a mark takes it (so concurrent
--   retries send once) and gets the stored message back, to send it: unsent is '' when there is nothing to
--   send, 'publish' when the recovery log already holds it, 'log' when it must be logged too.
local sender, client_id, dedup_ttl, message_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_len, now, template, room_id, jobs_max_len, complete_ttl = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local stream, dedup_key, jobs = KEYS[1], KEYS[2], KEYS[3]

if client_id ~= '' then
  local existing = redis.call('GET', dedup_key)
  if existing then
    local id, unsent = string.match(existing, '^([^|]+)|?(.*)$')
    if unsent == '' then return {1, id, '', '', '', ''} end
    redis.call('SET', dedup_key, id, 'KEEPTTL')
    -- A message trimmed out of the history in the meantime is not sent any more.
    for _, entry in ipairs(redis.call('XRANGE', stream, id, id)) do
      local fields = entry[2]
      for j = 1, #fields, 2 do
        if fields[j] == 'm' then return {1, id, unsent, fields[j + 1], '', ''} end
      end
    end
    return {1, id, '', '', '', ''}
  end
end

local id = redis.call('XADD', stream, 'MAXLEN', '~', max_len, '*', 'm', message_json)
if client_id ~= '' then redis.call('SET', dedup_key, id, 'EX', dedup_ttl) end

-- A member is offline at the message's time only if no socket of theirs is in the room now (a socket in it
-- connected before this message): when every member is in the room, which is the common case, no job at all.
-- Finding that out compares the two sets (O(room size)), so a room found complete keeps a flag, deleted when a
-- user's last socket leaves the room (room_fn.lua) or a member joins (ChatStore.join), and expiring after
-- complete_ttl seconds whatever happens: the comparison runs once per room and change, not per message.
if redis.call('EXISTS', KEYS[6]) == 0 then
  if #redis.call('SDIFF', KEYS[4], KEYS[5]) > 0 then
    redis.call('XADD', jobs, 'MAXLEN', '~', jobs_max_len, '*', 'r', room_id, 'm', id, 's', sender, 't', now, 'n', template)
  else
    redis.call('SET', KEYS[6], '1', 'EX', complete_ttl)
  end
end

local offset, after = '', ''
if KEYS[7] then
  local log_max_len, min_id, channel = ARGV[11], ARGV[12], ARGV[13]
  offset, after = log_packet(KEYS[7], KEYS[8], min_id, channel, ARGV[14], ARGV[15], ARGV[16],
    ARGV[17] .. id .. ARGV[18], ARGV[19] .. id .. ARGV[20], ARGV[21])
  redis.call('XTRIM', KEYS[7], 'MAXLEN', '~', log_max_len)
end
return {0, id, '', '', offset, after}
