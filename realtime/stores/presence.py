"""Who is online and the status each user chose: one interface, an in-memory and a Redis transport.

Online means "has a live socket": the socket state (:mod:`.socket_state`) writes that as sockets come and go;
this store reads it and keeps the chosen status and ``lastSeen``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from realtime.stores.redis.keys import Keys
from realtime.timestamps import iso


@dataclass(frozen=True)
class PresenceEntry:
    """A user's presence as ``presence:check`` reports it."""

    user_id: str
    is_online: bool
    status: str
    last_seen: str | None

    @classmethod
    def of(cls, user_id: str, online: bool, stored_status: str | None, last_seen: str | None) -> PresenceEntry:
        """Online users show their chosen status (``online`` if none); everyone else is ``offline``."""
        status = (stored_status if stored_status and stored_status != "offline" else "online") if online else "offline"
        return cls(user_id=user_id, is_online=online, status=status, last_seen=last_seen)

    def to_dict(self) -> dict[str, Any]:
        """Wire shape."""
        return {"userId": self.user_id, "isOnline": self.is_online, "status": self.status, "lastSeen": self.last_seen}


class PresenceStore(Protocol):
    """Reads presence and stores the status a user chose."""

    def presence(self, user_ids: Sequence[str]) -> list[PresenceEntry]:
        """Presence of each user, in order."""

    def set_status(self, user_id: str, status: str) -> str:
        """Store the user's chosen status; return ``lastSeen``."""


class RedisPresenceStore:
    """The cluster transport: a user is online while one of their socket entries has not expired."""

    def __init__(self, client: redis.Redis, keys: Keys, clock: Callable[[], float]) -> None:
        self._redis = client
        self._keys = keys
        self._clock = clock

    def presence(self, user_ids: Sequence[str]) -> list[PresenceEntry]:
        now = self._clock()
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zcount(self._keys.user_sockets(user_id), f"({now}", "+inf")
            pipe.hmget(self._keys.presence(user_id), "status", "lastSeen")
        replies = pipe.execute()
        entries = []
        for index, user_id in enumerate(user_ids):
            live, (status, last_seen) = replies[2 * index], replies[2 * index + 1]
            entries.append(PresenceEntry.of(user_id, int(live) > 0, status, last_seen))
        return entries

    def set_status(self, user_id: str, status: str) -> str:
        last_seen = iso(self._clock())
        self._redis.hset(self._keys.presence(user_id), mapping={"status": status, "lastSeen": last_seen})
        return last_seen


class MemoryPresenceStore:
    """The embedded default; :class:`.socket_state.MemorySocketState` reports users coming and going."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._online: set[str] = set()
        self._presence: dict[str, tuple[str, str]] = {}
        #: When each online user's first socket connected (offline-member jobs ask about a message's time).
        self._since: dict[str, float] = {}

    def came_online(self, user_id: str) -> None:
        """The user's first socket connected."""
        self._online.add(user_id)
        self._since[user_id] = self._clock()
        self._presence[user_id] = ("online", iso(self._clock()))

    def went_offline(self, user_id: str, last_seen: str) -> None:
        """The user's last socket is gone."""
        self._online.discard(user_id)
        self._since.pop(user_id, None)
        self._presence[user_id] = ("offline", last_seen)

    def online_at(self, user_ids: Sequence[str], at: float) -> list[bool]:
        """Whether each user had a live socket at ``at`` (and still has one)."""
        return [user_id in self._online and self._since.get(user_id, at) <= at for user_id in user_ids]

    def presence(self, user_ids: Sequence[str]) -> list[PresenceEntry]:
        entries = []
        for user_id in user_ids:
            status, last_seen = self._presence.get(user_id, ("offline", None))
            entries.append(PresenceEntry.of(user_id, user_id in self._online, status, last_seen))
        return entries

    def set_status(self, user_id: str, status: str) -> str:
        last_seen = iso(self._clock())
        self._presence[user_id] = (status, last_seen)
        return last_seen
