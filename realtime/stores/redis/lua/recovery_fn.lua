-- Logging one broadcast packet for connection-state recovery, prepended by realtime.stores.redis.scripts to
-- recovery_append.lua and to chat_append.lua (which logs the message it stores in the same round trip).
-- The offset (the stream id) is spliced between pre-serialized JSON halves, so payloads are never decoded
-- here (cjson would round numbers).
-- stream: the namespace's recovery stream; min_id: entries older than the window go ('~');
-- channel: where to publish the packet with its offset ('' = do not publish);
-- head, tail: the channel message before and after the offset. Returns the offset.
-- last_offset(stream): the offset logged last so far ('' for an empty log); a worker whose listener has
-- delivered exactly that one may deliver the next one itself, at once (realtime.fanout.redis_fanout).
local function last_offset(stream)
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if last[1] then return last[1][1] end
  return ''
end

local function log_packet(stream, min_id, channel, event, room, skip_sid, payload_json, head, tail)
  local offset = redis.call('XADD', stream, 'MINID', '~', min_id, '*',
    'e', event, 'r', room, 's', skip_sid, 'd', payload_json)
  if channel ~= '' then
    redis.call('PUBLISH', channel, head .. offset .. tail)
  end
  return offset
end
