-- Store broadcast packets for connection-state recovery and publish them, offsets included
-- (log_packet, lua/recovery_fn.lua).
-- KEYS: stream_key, last offset key
-- ARGV: max_len, min_id, channel ('' = do not publish), then groups of
--       (event, room, skip_sid, payload_json, envelope_head, envelope_tail)
-- Returns the offsets, in order.
local stream = KEYS[1]
local max_len, min_id, channel = ARGV[1], ARGV[2], ARGV[3]
local offsets = {}
for i = 4, #ARGV, 6 do
  -- The parentheses keep log_packet's first value (the offset): table.insert takes no position here.
  table.insert(offsets, (log_packet(stream, KEYS[2], min_id, channel, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4], ARGV[i + 5])))
end
redis.call('XTRIM', stream, 'MAXLEN', '~', max_len)
return offsets
