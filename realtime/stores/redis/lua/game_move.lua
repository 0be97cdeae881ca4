-- Apply a move if the game exists, the user plays in it and it is their turn.
-- Move records are stored as the JSON text they arrive in (cjson would round numbers to 14 digits).
-- KEYS: game_key, moves_key
-- ARGV: user, move_json, at_iso, keep
-- Returns {'ok', players_json, move_count, {record_json...}} or {'err', code}
local key, moves_key = KEYS[1], KEYS[2]
local user, move_json, at, keep = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local players_json = redis.call('HGET', key, 'players')
if not players_json then return {'err', 'NOT_FOUND'} end
local players = cjson.decode(players_json)
local is_player = false
for _, p in ipairs(players) do if p == user then is_player = true end end
if not is_player then return {'err', 'FORBIDDEN'} end
local count = tonumber(redis.call('HGET', key, 'moveCount') or '0')
if players[(count % #players) + 1] ~= user then return {'err', 'NOT_YOUR_TURN'} end
local record = '{"n":' .. (count + 1) .. ',"by":' .. cjson.encode(user) .. ',"move":' .. move_json ..
  ',"at":' .. cjson.encode(at) .. '}'
redis.call('RPUSH', moves_key, record)
redis.call('LTRIM', moves_key, -keep, -1)
redis.call('HSET', key, 'moveCount', count + 1)
return {'ok', players_json, count + 1, redis.call('LRANGE', moves_key, 0, -1)}
