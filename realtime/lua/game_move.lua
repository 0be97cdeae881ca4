-- Apply a move if the game exists, the user plays in it and it is their turn.
-- ARGV: game_key, user, move_json, at_iso, keep
-- Returns {'ok', state_json} or {'err', code}
local key, user, move_json, at, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local players_json = redis.call('HGET', key, 'players')
if not players_json then return {'err', 'NOT_FOUND'} end
local players = cjson.decode(players_json)
local is_player = false
for _, p in ipairs(players) do if p == user then is_player = true end end
if not is_player then return {'err', 'FORBIDDEN'} end
local count = tonumber(redis.call('HGET', key, 'moveCount') or '0')
if players[(count % #players) + 1] ~= user then return {'err', 'NOT_YOUR_TURN'} end
local moves = cjson.decode(redis.call('HGET', key, 'moves') or '[]')
table.insert(moves, {n = count + 1, by = user, move = cjson.decode(move_json), at = at})
while #moves > keep do table.remove(moves, 1) end
local moves_json = cjson.encode(moves)
if #moves == 0 then moves_json = '[]' end
redis.call('HSET', key, 'moveCount', count + 1, 'moves', moves_json)
return {'ok', cjson.encode({players = players, moveCount = count + 1, moves = moves})}
