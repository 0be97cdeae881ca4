"""Who is in which room, cluster-wide: one interface, an in-memory and a Redis transport.

Socket.IO's own manager routes emits; this index answers what the manager cannot across workers
(how many sockets are in ``party:42``?). Entries of a socket are removed on disconnect, or by the
reaper when its worker died (see :mod:`realtime.socket_state`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import redis

from realtime.redis_keys import Keys


class RoomStore(Protocol):
    """Membership index keyed by socket id and by room."""

    def add(self, sid: str, rooms: Sequence[str]) -> list[int]:
        """Record ``sid`` in each room; return each room's member count afterwards."""

    def remove(self, sid: str, rooms: Sequence[str]) -> list[int]:
        """Record that ``sid`` left each room; return each room's member count afterwards."""

    def count(self, room: str) -> int:
        """How many sockets are in ``room``, across the cluster."""


class MemoryRoomStore:
    """The embedded default: one process, plain dicts."""

    def __init__(self) -> None:
        self._by_room: dict[str, set[str]] = {}
        self._by_sid: dict[str, set[str]] = {}

    def add(self, sid: str, rooms: Sequence[str]) -> list[int]:
        mine = self._by_sid.setdefault(sid, set())
        for room in rooms:
            mine.add(room)
            self._by_room.setdefault(room, set()).add(sid)
        return [len(self._by_room[room]) for room in rooms]

    def remove(self, sid: str, rooms: Sequence[str]) -> list[int]:
        counts = []
        for room in rooms:
            self._by_sid.get(sid, set()).discard(room)
            members = self._by_room.get(room)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self._by_room[room]
            counts.append(self.count(room))
        if not self._by_sid.get(sid, True):
            del self._by_sid[sid]
        return counts

    def rooms_of(self, sid: str) -> list[str]:
        """The rooms indexed for ``sid`` (used when the socket goes away)."""
        return sorted(self._by_sid.get(sid, ()))

    def count(self, room: str) -> int:
        return len(self._by_room.get(room, ()))


class RedisRoomStore:
    """Cluster-wide index: a set of sids per room and of rooms per sid; each change is one pipeline."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def add(self, sid: str, rooms: Sequence[str]) -> list[int]:
        if not rooms:
            return []
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(self._keys.socket_rooms(sid), *rooms)
        for room in rooms:
            pipe.sadd(self._keys.room(room), sid)
            pipe.scard(self._keys.room(room))
        replies = pipe.execute()
        return [int(n) for n in replies[2::2]]

    def remove(self, sid: str, rooms: Sequence[str]) -> list[int]:
        if not rooms:
            return []
        pipe = self._redis.pipeline(transaction=False)
        pipe.srem(self._keys.socket_rooms(sid), *rooms)
        for room in rooms:
            pipe.srem(self._keys.room(room), sid)
            pipe.scard(self._keys.room(room))
        replies = pipe.execute()
        return [int(n) for n in replies[2::2]]

    def count(self, room: str) -> int:
        return int(self._redis.scard(self._keys.room(room)))
