-- Keep disconnected sockets' recovery records: what each was (rooms, user, session) and the stream
-- position at that moment, for RECOVERY_WINDOW seconds.
-- KEYS: stream_key, then one recovery_key per record
-- ARGV: ttl, then one record_json (without lastOffset) per record, in the order of their keys
local stream, ttl = KEYS[1], ARGV[1]
local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
local last_offset = '0-0'
if #last > 0 then last_offset = last[1][1] end
for i = 2, #KEYS do
  local record = cjson.decode(ARGV[i])
  record.lastOffset = last_offset
  redis.call('SET', KEYS[i], cjson.encode(record), 'EX', ttl)
end
return last_offset
