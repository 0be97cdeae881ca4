-- Keep disconnected sockets' recovery records: what each was (rooms, user, session) and the stream
-- position at that moment, for RECOVERY_WINDOW seconds.
-- ARGV: stream_key, ttl, then pairs of (recovery_key, record_json without lastOffset)
local stream, ttl = ARGV[1], ARGV[2]
local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
local last_offset = '0-0'
if #last > 0 then last_offset = last[1][1] end
for i = 3, #ARGV, 2 do
  local record = cjson.decode(ARGV[i + 1])
  record.lastOffset = last_offset
  redis.call('SET', ARGV[i], cjson.encode(record), 'EX', ttl)
end
return last_offset
