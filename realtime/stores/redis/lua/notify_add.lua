-- Store one notification for many users.
-- ARGV: prefix, id, json, cap, users...
local prefix, id, json, cap = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
for i = 5, #ARGV do
  store_notification(prefix, ARGV[i], id, json, cap)
end
return #ARGV - 4
