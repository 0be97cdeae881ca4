"""Key names: the Lua scripts name the keys they find while running exactly as :class:`Keys` does."""
from __future__ import annotations

import redis

from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import KEY_NAMES, LUA_DIR

PREFIX = "rt-test:"

#: Each Lua key function, its arguments after the prefix, and the Python builder it must agree with.
CASES = [
    ("k_sockets", [], lambda keys: keys.sockets),
    ("k_socket", ["s1"], lambda keys: f"{keys.socket_prefix}s1"),
    ("k_socket_rooms", ["s1"], lambda keys: keys.socket_rooms("s1")),
    ("k_user_sockets", ["alice"], lambda keys: keys.user_sockets("alice")),
    ("k_presence", ["alice"], lambda keys: keys.presence("alice")),
    ("k_session", ["sess1"], lambda keys: keys.session("sess1")),
    ("k_user", ["alice"], lambda keys: keys.user("alice")),
    ("k_notifications", ["alice"], lambda keys: keys.notifications("alice")),
    ("k_unread", ["alice"], lambda keys: keys.unread("alice")),
    ("k_room", ["group:lobby"], lambda keys: keys.room("group:lobby")),
    ("k_room_users", ["group:lobby"], lambda keys: keys.room_users("group:lobby")),
    ("k_room_complete", ["group:lobby"], lambda keys: keys.room_complete("group:lobby")),
    ("k_room_user", ["group:lobby", "alice"], lambda keys: keys.room_user("group:lobby", "alice")),
    ("k_recent_connects", [], lambda keys: keys.recent_connects),
]


def test_lua_key_names_match_the_python_builders(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    fragment = (LUA_DIR / f"{KEY_NAMES}.lua").read_text()
    keys = Keys(PREFIX)
    for function, args, build in CASES:
        source = f"{fragment}\nreturn {function}(unpack(ARGV))"
        assert client.eval(source, 0, PREFIX, *args) == build(keys), function


def test_every_lua_key_function_is_checked() -> None:
    source = (LUA_DIR / f"{KEY_NAMES}.lua").read_text()
    declared = {line.split()[2].split("(")[0] for line in source.splitlines() if line.startswith("local function ")}
    assert declared == {function for function, _, _ in CASES}
