-- Key names for the keys a script finds only while it runs (a member's sockets, a socket's rooms), prepended
-- by realtime.stores.redis.scripts. The same names as realtime.stores.redis.keys.Keys, which builds every key
-- known up front and passes it as KEYS; tests/test_redis_keys.py checks the two agree.
local function k_sockets(prefix) return prefix .. 'sockets' end
local function k_socket(prefix, sid) return prefix .. 'socket:' .. sid end
local function k_socket_rooms(prefix, sid) return prefix .. 'socket-rooms:' .. sid end
local function k_user_sockets(prefix, user) return prefix .. 'user-sockets:' .. user end
local function k_presence(prefix, user) return prefix .. 'presence:' .. user end
local function k_session(prefix, session) return prefix .. 'session:' .. session end
local function k_user(prefix, user) return prefix .. 'user:' .. user end
local function k_notifications(prefix, user) return prefix .. 'notifications:' .. user end
local function k_unread(prefix, user) return prefix .. 'notifications-unread:' .. user end
local function k_room(prefix, room) return prefix .. 'room:' .. room end
local function k_room_users(prefix, room) return prefix .. 'room-users:' .. room end
local function k_room_complete(prefix, room) return prefix .. 'room-complete:' .. room end
local function k_room_user(prefix, room, user) return prefix .. 'room-user:' .. room .. ':' .. user end
local function k_recent_connects(prefix) return prefix .. 'recent-connects' end
