"""Who is in which room, cluster-wide: one interface, an in-memory and a Redis transport.

Socket.IO's own manager routes emits; this index answers questions the manager cannot
across workers (how many sockets are in ``party:42``?) and is cleaned up on disconnect.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import redis


class RoomStore(Protocol):
    """Membership index keyed by socket id and by room."""

    def add(self, sid: str, rooms: Iterable[str]) -> None:
        """Record that ``sid`` is in each of ``rooms``."""

    def remove(self, sid: str, room: str) -> None:
        """Record that ``sid`` left ``room``."""

    def clear(self, sid: str) -> None:
        """Forget every membership of ``sid`` (on disconnect)."""

    def count(self, room: str) -> int:
        """How many sockets are in ``room``, across the cluster."""


class MemoryRoomStore:
    """The embedded default: one process, plain dicts."""

    def __init__(self) -> None:
        self._by_room: dict[str, set[str]] = {}
        self._by_sid: dict[str, set[str]] = {}

    def add(self, sid: str, rooms: Iterable[str]) -> None:
        mine = self._by_sid.setdefault(sid, set())
        for room in rooms:
            mine.add(room)
            self._by_room.setdefault(room, set()).add(sid)

    def remove(self, sid: str, room: str) -> None:
        self._by_sid.get(sid, set()).discard(room)
        members = self._by_room.get(room)
        if members is not None:
            members.discard(sid)
            if not members:
                del self._by_room[room]

    def clear(self, sid: str) -> None:
        for room in self._by_sid.pop(sid, set()):
            self.remove(sid, room)

    def count(self, room: str) -> int:
        return len(self._by_room.get(room, ()))


class RedisRoomStore:
    """Cluster-wide index: a set of sids per room and a set of rooms per sid; each change is one pipeline."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _room_key(self, room: str) -> str:
        return f"{self._prefix}room:{room}"

    def _sid_key(self, sid: str) -> str:
        return f"{self._prefix}socket-rooms:{sid}"

    def add(self, sid: str, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        if not rooms:
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(self._sid_key(sid), *rooms)
        for room in rooms:
            pipe.sadd(self._room_key(room), sid)
        pipe.execute()

    def remove(self, sid: str, room: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.srem(self._sid_key(sid), room)
        pipe.srem(self._room_key(room), sid)
        pipe.execute()

    def clear(self, sid: str) -> None:
        rooms = self._redis.smembers(self._sid_key(sid))
        pipe = self._redis.pipeline(transaction=False)
        for room in rooms:
            pipe.srem(self._room_key(room), sid)
        pipe.delete(self._sid_key(sid))
        pipe.execute()

    def count(self, room: str) -> int:
        return int(self._redis.scard(self._room_key(room)))
