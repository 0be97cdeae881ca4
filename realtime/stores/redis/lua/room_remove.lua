-- ARGV: prefix, sid, user, rooms...  Returns one {sockets, users, user_last} per room.
local out = {}
for i = 4, #ARGV do table.insert(out, room_remove(ARGV[1], ARGV[2], ARGV[3], ARGV[i])) end
return out
