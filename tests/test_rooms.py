"""RoomManager: naming convention, private user rooms, auth hooks, the per-socket cap and the member index."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from realtime.errors import ErrorCode, RealtimeError
from realtime.services.room_manager import REVALIDATE_ROOM, RoomManager
from realtime.services.room_rules import AllowAll
from realtime.stores.control_bus import LocalControlBus
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet
from realtime.stores.room_index import MemoryRoomStore, RedisRoomStore, RoomStore

DEFAULT_ROOMS = ("user:{userId}", "broadcast:all")
OPEN_PREFIXES = ("group:", "game:", "party:", "broadcast:")


class FakeRouter:
    """The RoomRouter protocol over a dict, standing in for Socket.IO's manager."""

    def __init__(self) -> None:
        self._rooms: dict[str, set[str]] = {}

    def enter(self, sid: str, room: str) -> None:
        self._rooms.setdefault(sid, set()).add(room)

    def leave(self, sid: str, room: str) -> None:
        self._rooms.get(sid, set()).discard(room)

    def rooms(self, sid: str) -> set[str]:
        return set(self._rooms.get(sid, set()))

    def is_in(self, sid: str, room: str) -> bool:
        return room in self._rooms.get(sid, set())

    def members(self, room: str) -> list[str]:
        return sorted(sid for sid, rooms in self._rooms.items() if room in rooms)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[RoomStore]:
    if request.param == "memory":
        yield MemoryRoomStore()
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    yield RedisRoomStore(client, Keys("t:"), ScriptSet(client))
    client.close()


@pytest.fixture
def router() -> FakeRouter:
    return FakeRouter()


@pytest.fixture
def bus() -> LocalControlBus:
    return LocalControlBus()


@pytest.fixture
def manager(router: FakeRouter, store: RoomStore, bus: LocalControlBus) -> RoomManager:
    """Closed by default: no hooks, at most 3 rooms per socket."""
    return RoomManager(router, store, DEFAULT_ROOMS, max_rooms_per_socket=3, bus=bus)


@pytest.fixture
def open_manager(manager: RoomManager) -> RoomManager:
    """Every prefix but ``user:`` allows everyone."""
    for prefix in OPEN_PREFIXES:
        manager.register_auth_hook(prefix, AllowAll())
    return manager


def refusal(manager: RoomManager, sid: str, user_id: str, room: object) -> RealtimeError:
    with pytest.raises(RealtimeError) as excinfo:
        manager.join(sid, user_id, room)  # type: ignore[arg-type]
    return excinfo.value


def test_own_user_room_is_allowed(manager: RoomManager) -> None:
    assert manager.join("s1", "alice", "user:alice").changed is True
    assert manager.is_member("s1", "user:alice")
    assert manager.count("user:alice").sockets == 1


def test_another_users_room_is_forbidden_even_with_every_hook_open(open_manager: RoomManager) -> None:
    assert refusal(open_manager, "s1", "alice", "user:bob").code == ErrorCode.FORBIDDEN
    assert open_manager.rooms_of("s1") == set()
    assert open_manager.count("user:bob").sockets == 0
    assert open_manager.can_join("alice", "user:bob") is False


CRAFTED_NAMES = [
    pytest.param("group:../x", id="dot-dot-slash"),
    pytest.param("group:a/b", id="slash"),
    pytest.param("group:", id="empty-id"),
    pytest.param("group:\uff4cobby", id="fullwidth-l"),
    pytest.param("group:lobby\n", id="trailing-newline"),
    pytest.param("Group:lobby", id="capitalised-prefix"),
    pytest.param("room:1", id="unknown-prefix"),
    pytest.param("group:" + "a" * 65, id="id-65-chars"),
    pytest.param("user:alice:extra", id="user-room-suffix"),
    pytest.param("group", id="no-colon"),
    pytest.param(123, id="int"),
    pytest.param(None, id="none"),
]


@pytest.mark.parametrize("room", CRAFTED_NAMES)
def test_crafted_room_names_are_forbidden(open_manager: RoomManager, room: object) -> None:
    assert refusal(open_manager, "s1", "alice", room).code == ErrorCode.FORBIDDEN
    assert open_manager.rooms_of("s1") == set()


@pytest.mark.parametrize("room", CRAFTED_NAMES)
def test_can_join_refuses_crafted_names_without_raising(open_manager: RoomManager, room: object) -> None:
    assert open_manager.can_join("alice", room) is False  # type: ignore[arg-type]


def test_id_of_64_chars_is_accepted(open_manager: RoomManager) -> None:
    assert open_manager.join("s1", "alice", "group:" + "a" * 64).changed is True


def test_prefix_without_hook_is_closed(manager: RoomManager) -> None:
    assert refusal(manager, "s1", "alice", "game:chess").code == ErrorCode.FORBIDDEN
    assert manager.can_join("alice", "game:chess") is False
    assert manager.rooms_of("s1") == set()


class ChessPlayers:
    """A hook object: only alice plays; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def can_join(self, user_id: str, room: str) -> bool:
        self.calls.append((user_id, room))
        return user_id == "alice"


def only_alice(user_id: str, room: str) -> bool:
    return user_id == "alice" and room == "game:chess"


@pytest.mark.parametrize("hook", [pytest.param(ChessPlayers(), id="object"), pytest.param(only_alice, id="callable")])
def test_hook_allows_and_denies(manager: RoomManager, hook: object) -> None:
    manager.register_auth_hook("game:", hook)  # type: ignore[arg-type]
    assert manager.can_join("alice", "game:chess") is True
    assert manager.can_join("bob", "game:chess") is False
    assert manager.join("s1", "alice", "game:chess").changed is True
    assert refusal(manager, "s2", "bob", "game:chess").code == ErrorCode.FORBIDDEN
    assert manager.count("game:chess").sockets == 1
    assert manager.rooms_of("s2") == set()


def test_hook_receives_user_and_full_room_name(manager: RoomManager) -> None:
    hook = ChessPlayers()
    manager.register_auth_hook("game", hook)
    manager.join("s1", "alice", "game:chess")
    assert hook.calls == [("alice", "game:chess")]


def test_later_hook_replaces_earlier(manager: RoomManager) -> None:
    manager.register_auth_hook("group:", AllowAll())
    manager.register_auth_hook("group:", lambda user_id, room: False)
    assert refusal(manager, "s1", "alice", "group:lobby").code == ErrorCode.FORBIDDEN


def test_hook_that_raises_denies(manager: RoomManager, caplog: pytest.LogCaptureFixture) -> None:
    def broken(user_id: str, room: str) -> bool:
        raise RuntimeError("database down")

    manager.register_auth_hook("party:", broken)
    assert manager.can_join("alice", "party:42") is False
    assert refusal(manager, "s1", "alice", "party:42").code == ErrorCode.FORBIDDEN
    assert manager.rooms_of("s1") == set()
    assert "room auth hook failed" in caplog.text


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("user:", id="user-with-colon"),
        pytest.param("user", id="user-bare"),
        pytest.param("room:", id="unknown"),
        pytest.param("Group:", id="capitalised"),
        pytest.param("", id="empty"),
    ],
)
def test_register_auth_hook_refuses_user_and_unknown_prefixes(manager: RoomManager, prefix: str) -> None:
    with pytest.raises(ValueError, match="user: rooms are private|Unknown room prefix"):
        manager.register_auth_hook(prefix, AllowAll())


def test_fourth_room_hits_the_cap(open_manager: RoomManager) -> None:
    for room in ("group:a", "group:b", "group:c"):
        assert open_manager.join("s1", "alice", room).changed is True
    assert refusal(open_manager, "s1", "alice", "group:d").code == ErrorCode.ROOM_LIMIT
    assert open_manager.rooms_of("s1") == {"group:a", "group:b", "group:c"}
    assert open_manager.count("group:d").sockets == 0


def test_leaving_frees_a_slot_under_the_cap(open_manager: RoomManager) -> None:
    for room in ("group:a", "group:b", "group:c"):
        open_manager.join("s1", "alice", room)
    assert open_manager.leave("s1", "alice", "group:a").changed is True
    assert open_manager.join("s1", "alice", "group:d").changed is True
    assert open_manager.rooms_of("s1") == {"group:b", "group:c", "group:d"}


def test_joining_twice_returns_false_and_counts_once(open_manager: RoomManager) -> None:
    assert open_manager.join("s1", "alice", "group:a").changed is True
    assert open_manager.join("s1", "alice", "group:a").changed is False
    assert open_manager.join("s1", "alice", "group:a").changed is False
    assert open_manager.count("group:a").sockets == 1
    assert open_manager.join("s1", "alice", "group:b").changed is True
    assert open_manager.join("s1", "alice", "group:c").changed is True
    assert open_manager.rooms_of("s1") == {"group:a", "group:b", "group:c"}


def test_rejoin_of_a_full_socket_is_not_a_limit_error(open_manager: RoomManager) -> None:
    for room in ("group:a", "group:b", "group:c"):
        open_manager.join("s1", "alice", room)
    assert open_manager.join("s1", "alice", "group:a").changed is False


def test_leave_returns_true_then_false(open_manager: RoomManager) -> None:
    open_manager.join("s1", "alice", "group:a")
    assert open_manager.leave("s1", "alice", "group:a").changed is True
    assert open_manager.leave("s1", "alice", "group:a").changed is False
    assert open_manager.count("group:a").sockets == 0
    assert not open_manager.is_member("s1", "group:a")


def test_count_across_sockets(open_manager: RoomManager) -> None:
    open_manager.join("s1", "alice", "group:lobby")
    open_manager.join("s2", "bob", "group:lobby")
    open_manager.join("s3", "alice", "group:other")
    assert open_manager.count("group:lobby").sockets == 2
    open_manager.leave("s1", "alice", "group:lobby")
    assert open_manager.count("group:lobby").sockets == 1
    assert open_manager.count("group:other").sockets == 1
    assert open_manager.count("group:nobody").sockets == 0


def test_join_and_leave_report_cluster_counts(open_manager: RoomManager) -> None:
    assert open_manager.join("s1", "alice", "party:p1").sockets == 1
    assert open_manager.join("s2", "bob", "party:p1").sockets == 2
    assert open_manager.join("s2", "bob", "party:p1").sockets == 2
    assert open_manager.leave("s1", "alice", "party:p1").sockets == 1
    assert open_manager.leave("s1", "alice", "party:p1").sockets == 1


def test_a_users_second_socket_is_counted_once_and_announced_once(open_manager: RoomManager) -> None:
    first = open_manager.join("s1", "alice", "party:p1")
    second_tab = open_manager.join("s3", "alice", "party:p1")
    bob = open_manager.join("s2", "bob", "party:p1")
    assert (first.user_changed, first.sockets, first.users) == (True, 1, 1)
    assert (second_tab.user_changed, second_tab.sockets, second_tab.users) == (False, 2, 1)
    assert (bob.user_changed, bob.sockets, bob.users) == (True, 3, 2)
    one_tab_left = open_manager.leave("s1", "alice", "party:p1")
    last_tab_left = open_manager.leave("s3", "alice", "party:p1")
    assert (one_tab_left.user_changed, one_tab_left.users) == (False, 2)
    assert (last_tab_left.user_changed, last_tab_left.users) == (True, 1)


def test_join_many_is_all_or_nothing(open_manager: RoomManager) -> None:
    with pytest.raises(RealtimeError) as excinfo:
        open_manager.join_many("s1", "alice", ["group:a", "user:bob"])
    assert excinfo.value.code == ErrorCode.FORBIDDEN
    assert open_manager.rooms_of("s1") == set()
    joined = open_manager.join_many("s1", "alice", ["group:a", "group:b", "group:a"])
    assert [(r, c.sockets, c.users) for r, c in joined] == [("group:a", 1, 1), ("group:b", 1, 1)]
    assert [(r, c.sockets) for r, c in open_manager.leave_many("s1", "alice", ["group:a", "group:zzz"])] == [("group:a", 0)]


def test_join_many_past_the_cap_joins_nothing(open_manager: RoomManager) -> None:
    open_manager.join("s1", "alice", "group:a")
    with pytest.raises(RealtimeError) as excinfo:
        open_manager.join_many("s1", "alice", ["group:b", "group:c", "group:d"])
    assert excinfo.value.code == ErrorCode.ROOM_LIMIT
    assert open_manager.rooms_of("s1") == {"group:a"}


def test_default_rooms_substitute_user_id(manager: RoomManager) -> None:
    assert manager.default_rooms_for("alice") == ["user:alice", "broadcast:all"]
    manager.enter_local("s1", manager.default_rooms_for("alice"))
    assert manager.rooms_of("s1") == {"user:alice", "broadcast:all"}


def test_defaults_count_towards_the_cap(open_manager: RoomManager) -> None:
    open_manager.enter_local("s1", open_manager.default_rooms_for("alice"))
    assert open_manager.join("s1", "alice", "group:a").changed is True
    assert refusal(open_manager, "s1", "alice", "group:b").code == ErrorCode.ROOM_LIMIT


def test_revalidate_room_publishes_one_command_for_every_worker(manager: RoomManager, bus: LocalControlBus) -> None:
    heard: list[dict[str, object]] = []
    bus.subscribe(heard.append)
    manager.revalidate_room("game:g1")
    assert heard == [{"op": REVALIDATE_ROOM, "room": "game:g1"}]


@pytest.mark.parametrize("room", ["user:alice", "game:../x", "nope:x", "game:"])
def test_revalidate_room_refuses_user_rooms_and_crafted_names(manager: RoomManager, room: str) -> None:
    with pytest.raises(ValueError, match="revalidate"):
        manager.revalidate_room(room)


def test_refused_asks_the_hooks_again_and_keeps_default_rooms(manager: RoomManager, router: FakeRouter) -> None:
    players = {"alice", "bob"}
    manager.register_auth_hook("game:", lambda user_id, room: user_id in players)
    manager.register_auth_hook("broadcast:", lambda user_id, room: False)
    manager.join("s1", "bob", "game:g1")
    players.discard("bob")
    rooms = ["user:bob", "broadcast:all", "game:g1", "game:g2"]
    assert manager.refused("bob", rooms) == ["game:g1", "game:g2"]
    assert manager.refused("alice", ["game:g1"]) == []
    assert manager.local_members("game:g1") == ["s1"]


def test_forget_drops_index_entries_and_reports_the_last_socket_of_a_user(open_manager: RoomManager) -> None:
    open_manager.join("s1", "bob", "game:g1")
    open_manager.join("s2", "alice", "game:g1")
    [(room, count)] = open_manager.forget("s1", "bob", ["game:g1"])
    assert room == "game:g1"
    assert (count.sockets, count.users, count.user_changed) == (1, 1, True)
    assert open_manager.count("game:g1").users == 1


class BatchHook:
    """A hook that offers ``allowed_among``: re-checks of several rooms ask it once."""

    def __init__(self, players: set[str]) -> None:
        self.players = players
        self.calls: list[tuple[str, ...]] = []

    def can_join(self, user_id: str, room: str) -> bool:
        self.calls.append((room,))
        return user_id in self.players

    def allowed_among(self, user_id: str, rooms: list[str]) -> set[str]:
        self.calls.append(tuple(rooms))
        return {room for room in rooms if room != "game:g2" and user_id in self.players}


def test_refused_asks_a_batch_hook_once_for_all_its_rooms(manager: RoomManager) -> None:
    hook = BatchHook({"bob"})
    manager.register_auth_hook("game:", hook)
    assert manager.refused("bob", ["game:g1", "game:g2", "game:g3", "user:bob"]) == ["game:g2"]
    assert hook.calls == [("game:g1", "game:g2", "game:g3")]


def test_a_batch_hook_that_raises_refuses_all_its_rooms(manager: RoomManager) -> None:
    class Broken(BatchHook):
        def allowed_among(self, user_id: str, rooms: list[str]) -> set[str]:
            raise RuntimeError("database down")

    manager.register_auth_hook("game:", Broken({"bob"}))
    assert manager.refused("bob", ["game:g1", "game:g2"]) == ["game:g1", "game:g2"]
