-- Store broadcast packets for connection-state recovery and publish them, offsets included.
-- The offset (the stream id) is spliced between pre-serialized JSON halves, so payloads are never
-- decoded here (cjson would round numbers).
-- KEYS: stream_key
-- ARGV: max_len, min_id, channel ('' = do not publish), then groups of
--       (event, room, skip_sid, payload_json, envelope_head, envelope_tail)
-- Returns the offsets, in order.
local stream = KEYS[1]
local max_len, min_id, channel = ARGV[1], ARGV[2], ARGV[3]
local offsets = {}
for i = 4, #ARGV, 6 do
  local id = redis.call('XADD', stream, 'MINID', '~', min_id, '*',
    'e', ARGV[i], 'r', ARGV[i + 1], 's', ARGV[i + 2], 'd', ARGV[i + 3])
  if channel ~= '' then
    redis.call('PUBLISH', channel, ARGV[i + 4] .. id .. ARGV[i + 5])
  end
  table.insert(offsets, id)
end
redis.call('XTRIM', stream, 'MAXLEN', '~', max_len)
return offsets
