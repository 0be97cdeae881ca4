-- Logging one broadcast packet for connection-state recovery, prepended by realtime.stores.redis.scripts to
-- recovery_append.lua and to chat_append.lua (which logs the message it stores in the same round trip).
-- The offset (the stream id) is spliced between pre-serialized JSON halves, so payloads are never decoded
-- here (cjson would round numbers).
-- stream: the namespace's recovery stream; last_key: the string that keeps the offset logged last;
-- min_id: entries older than the window go ('~'); channel: where to publish the packet with its offset
-- ('' = do not publish); head, tail: the channel message before and after the offset.
-- Returns the offset, and the offset logged just before it ('' before the first): a worker whose listener has
-- delivered exactly that one may deliver this one itself, at once (realtime.fanout.redis_fanout). SET ... GET
-- keeps the last offset and reads the one before in one command (reading the stream's last entry with
-- XREVRANGE cost Redis about 10 us more per chat message, a separate GET about 2 us).
local function log_packet(stream, last_key, min_id, channel, event, room, skip_sid, payload_json, head, tail)
  local offset = redis.call('XADD', stream, 'MINID', '~', min_id, '*',
    'e', event, 'r', room, 's', skip_sid, 'd', payload_json)
  local before = redis.call('SET', last_key, offset, 'GET')
  if channel ~= '' then
    redis.call('PUBLISH', channel, head .. offset .. tail)
  end
  return offset, before or ''
end
