-- Keep a disconnected socket's recovery record: what it was (rooms, user, session) and the stream
-- position at that moment, for RECOVERY_WINDOW seconds.
-- ARGV: recovery_key, ttl, record_json (without lastOffset), stream_key
local key, ttl, record, stream = ARGV[1], ARGV[2], cjson.decode(ARGV[3]), ARGV[4]
local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
if #last > 0 then record.lastOffset = last[1][1] else record.lastOffset = '0-0' end
redis.call('SET', key, cjson.encode(record), 'EX', ttl)
return record.lastOffset
