-- Shared by scripts that store personal notifications (prepended by realtime.stores.redis.scripts).
-- Pushes one JSON notification (newest first), marks it unread and trims the oldest past `cap`.
local function store_notification(prefix, user, id, json, cap)
  local list_key = k_notifications(prefix, user)
  local unread_key = k_unread(prefix, user)
  redis.call('LPUSH', list_key, json)
  redis.call('SADD', unread_key, id)
  while redis.call('LLEN', list_key) > cap do
    local oldest = redis.call('RPOP', list_key)
    local ok, decoded = pcall(cjson.decode, oldest)
    if ok and type(decoded) == 'table' and decoded.id then
      redis.call('SREM', unread_key, decoded.id)
    end
  end
end
