"""Who is in which room, cluster-wide: one interface, an in-memory and a Redis transport.

Socket.IO's own manager routes emits; this index answers what it cannot across workers: how many sockets
and how many distinct users are in ``party:42``, and whether a join or leave is a user's first or last
socket there (so two tabs do not announce a user twice). A socket's entries are removed on disconnect, or
by the reaper when its worker died (see :mod:`realtime.stores.socket_state`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis

from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet


@dataclass(frozen=True)
class RoomCount:
    """A room after a change: its sockets, its distinct users, and whether the user arrived or left."""

    sockets: int
    users: int
    user_changed: bool


class RoomStore(Protocol):
    """Membership index keyed by socket, room and user."""

    def add(self, sid: str, user_id: str, rooms: Sequence[str]) -> list[RoomCount]:
        """Record ``sid`` (of ``user_id``) in each room; ``user_changed`` means the user's first socket there."""

    def remove(self, sid: str, user_id: str, rooms: Sequence[str]) -> list[RoomCount]:
        """Record that ``sid`` left each room; ``user_changed`` means the user's last socket there left."""

    def count(self, room: str) -> RoomCount:
        """Sockets and users in ``room`` across the cluster (``user_changed`` is False)."""


class MemoryRoomStore:
    """The embedded default: one process, plain dicts."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, set[str]]] = {}
        self._by_sid: dict[str, set[str]] = {}

    def add(self, sid: str, user_id: str, rooms: Sequence[str]) -> list[RoomCount]:
        counts = []
        for room in rooms:
            self._by_sid.setdefault(sid, set()).add(room)
            mine = self._rooms.setdefault(room, {}).setdefault(user_id, set())
            first = not mine
            mine.add(sid)
            counts.append(RoomCount(*self._sizes(room), user_changed=first))
        return counts

    def remove(self, sid: str, user_id: str, rooms: Sequence[str]) -> list[RoomCount]:
        counts = []
        for room in rooms:
            self._by_sid.get(sid, set()).discard(room)
            users = self._rooms.get(room, {})
            mine = users.get(user_id, set())
            was_there = sid in mine
            mine.discard(sid)
            last = was_there and not mine
            if not mine:
                users.pop(user_id, None)
            if not users:
                self._rooms.pop(room, None)
            counts.append(RoomCount(*self._sizes(room), user_changed=last))
        if not self._by_sid.get(sid, True):
            del self._by_sid[sid]
        return counts

    def rooms_of(self, sid: str) -> list[str]:
        """The rooms indexed for ``sid`` (used when the socket goes away)."""
        return sorted(self._by_sid.get(sid, ()))

    def count(self, room: str) -> RoomCount:
        return RoomCount(*self._sizes(room), user_changed=False)

    def _sizes(self, room: str) -> tuple[int, int]:
        users = self._rooms.get(room, {})
        return sum(len(sids) for sids in users.values()), len(users)


class RedisRoomStore:
    """Cluster-wide index (see ``lua/room_fn.lua``); each change is one script call."""

    def __init__(self, client: redis.Redis, keys: Keys, scripts: ScriptSet) -> None:
        self._redis = client
        self._keys = keys
        self._add = scripts.load("room_add", "room_fn")
        self._remove = scripts.load("room_remove", "room_fn")

    def add(self, sid: str, user_id: str, rooms: Sequence[str]) -> list[RoomCount]:
        if not rooms:
            return []
        return [RoomCount(int(s), int(u), bool(c)) for s, u, c in self._add(args=[self._keys.prefix, sid, user_id, *rooms])]

    def remove(self, sid: str, user_id: str, rooms: Sequence[str]) -> list[RoomCount]:
        if not rooms:
            return []
        replies = self._remove(args=[self._keys.prefix, sid, user_id, *rooms])
        return [RoomCount(int(s), int(u), bool(c)) for s, u, c in replies]

    def count(self, room: str) -> RoomCount:
        pipe = self._redis.pipeline(transaction=False)
        pipe.scard(self._keys.room(room))
        pipe.scard(self._keys.room_users(room))
        sockets, users = pipe.execute()
        return RoomCount(int(sockets), int(users), user_changed=False)
