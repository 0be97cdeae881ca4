"""Bounded reads of the cluster's live sockets for the admin view: who owns a socket, a user's sockets, users
online page by page, room sizes. One interface, two transports.

Every read has a bound whatever the cluster's size: a user has at most ``MAX_CONNECTIONS_PER_USER``
sockets, a page of users examines at most :data:`SCAN_CALLS` × :data:`SCAN_COUNT` keys, and room sizes are
asked for a short list of rooms in one pipeline. Nothing here walks every key of a big Redis.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis

from realtime.stores.redis.keys import Keys
from realtime.stores.room_index import RoomCount

#: Keys one SCAN call examines (Redis's COUNT hint) while collecting a page of users.
SCAN_COUNT = 500
#: SCAN calls per page at most: a sparse keyspace gives a short page (and a cursor), never a long wait.
SCAN_CALLS = 8
#: Socket ids listed per user in a page of users at most.
SIDS_PER_USER = 20


@dataclass(frozen=True)
class LiveSocket:
    """A socket in the cluster state: its id, user and session."""

    sid: str
    user_id: str
    session_id: str


@dataclass(frozen=True)
class UserPage:
    """Users with live sockets (their socket ids), and the cursor of the next page (None: the last page)."""

    users: list[tuple[str, list[str]]]
    next_cursor: str | None


class Directory(Protocol):
    """Bounded reads of the live sockets of the whole cluster."""

    def owner(self, sid: str) -> LiveSocket | None:
        """The socket ``sid`` if the cluster state knows it."""

    def sockets_of(self, user_id: str) -> list[LiveSocket]:
        """The user's live (or parked, recoverable) sockets."""

    def users_page(self, cursor: str, limit: int) -> UserPage:
        """About ``limit`` users with live sockets from ``cursor`` on (``"0"``: the first page)."""

    def room_sizes(self, rooms: Sequence[str]) -> dict[str, RoomCount]:
        """Sockets and distinct users of each room."""


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisDirectory:
    """Reads the keys the socket-state scripts write (:class:`realtime.stores.redis.keys.Keys`)."""

    def __init__(self, client: redis.Redis, keys: Keys, clock: Callable[[], float]) -> None:
        self._redis = client
        self._keys = keys
        self._clock = clock

    def owner(self, sid: str) -> LiveSocket | None:
        user_id, session_id = self._redis.hmget(f"{self._keys.socket_prefix}{sid}", "user", "session")
        return LiveSocket(sid, user_id, session_id or "") if user_id else None

    def sockets_of(self, user_id: str) -> list[LiveSocket]:
        # Uncapped: a forced logout must reach every session; MAX_CONNECTIONS_PER_USER bounds the list.
        sids = self._live_sids([user_id], None)[user_id]
        if not sids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for sid in sids:
            pipe.hmget(f"{self._keys.socket_prefix}{sid}", "user", "session")
        found = pipe.execute()
        return [LiveSocket(sid, owner, session or "") for sid, (owner, session) in zip(sids, found, strict=True) if owner]

    def users_page(self, cursor: str, limit: int) -> UserPage:
        prefix = self._keys.user_sockets_prefix
        pattern = glob_escape(prefix) + "*"
        position = int(cursor) if cursor.isdigit() else 0
        users: dict[str, None] = {}
        for _ in range(SCAN_CALLS):
            position, names = self._redis.scan(position, match=pattern, count=SCAN_COUNT)
            users.update(dict.fromkeys(name[len(prefix) :] for name in names))
            if position == 0 or len(users) >= limit:
                break
        live = self._live_sids(list(users), SIDS_PER_USER)
        listed = [(user_id, sids) for user_id, sids in live.items() if sids]
        return UserPage(sorted(listed), str(position) if position else None)

    def room_sizes(self, rooms: Sequence[str]) -> dict[str, RoomCount]:
        if not rooms:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for room in rooms:
            pipe.scard(self._keys.room(room))
            pipe.scard(self._keys.room_users(room))
        replies = pipe.execute()
        return {room: RoomCount(int(replies[2 * i]), int(replies[2 * i + 1]), False) for i, room in enumerate(rooms)}

    def _live_sids(self, user_ids: list[str], cap: int | None) -> dict[str, list[str]]:
        """Each user's sockets whose entry has not expired (at most ``cap`` each), in one pipeline."""
        if not user_ids:
            return {}
        now = self._clock()
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            limit = {"start": 0, "num": cap} if cap is not None else {}
            pipe.zrangebyscore(self._keys.user_sockets(user_id), f"({now}", "+inf", **limit)
        return dict(zip(user_ids, pipe.execute(), strict=True))


class MemoryDirectory:
    """The embedded default: this process's sockets are the whole cluster."""

    def __init__(self, sockets: Callable[[], list[LiveSocket]], count: Callable[[str], RoomCount]) -> None:
        self._sockets = sockets
        self._count = count

    def owner(self, sid: str) -> LiveSocket | None:
        return next((sock for sock in self._sockets() if sock.sid == sid), None)

    def sockets_of(self, user_id: str) -> list[LiveSocket]:
        return [sock for sock in self._sockets() if sock.user_id == user_id]

    def users_page(self, cursor: str, limit: int) -> UserPage:
        by_user: dict[str, list[str]] = {}
        for sock in self._sockets():
            by_user.setdefault(sock.user_id, []).append(sock.sid)
        start = int(cursor) if cursor.isdigit() else 0
        page = sorted(by_user.items())[start : start + limit]
        following = start + limit if start + limit < len(by_user) else None
        return UserPage([(user_id, sorted(sids)[:SIDS_PER_USER]) for user_id, sids in page],
                        str(following) if following is not None else None)

    def room_sizes(self, rooms: Sequence[str]) -> dict[str, RoomCount]:
        return {room: self._count(room) for room in rooms}
