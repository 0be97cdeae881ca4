"""Cluster-wide state of live sockets: liveness, presence, room index and session eviction.

One interface, two transports. The Redis one keeps per-socket entries with an expiry that each worker's
heartbeat extends; a worker that dies stops extending them and any other worker's reaper releases them
within ``PRESENCE_TTL``. Every lifecycle step is one Lua script: one round trip, atomic.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import redis

from realtime.errors import ErrorCode, RealtimeError
from realtime.lua_scripts import ScriptSet
from realtime.recovery import NAMESPACE, ReplayPacket
from realtime.redis_keys import Keys
from realtime.room_store import MemoryRoomStore, RoomCount


def iso(ts: float) -> str:
    """Unix seconds as an ISO-8601 UTC string with milliseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ConnectInfo:
    """What registering a socket found out (``missed``: packets logged after the replay point)."""

    first_socket: bool
    unread_count: int
    evicted_sessions: list[str]
    missed: list[ReplayPacket] = field(default_factory=list)
    room_counts: dict[str, RoomCount] = field(default_factory=dict)


def too_many_connections(limit: int) -> RealtimeError:
    """The refusal when a user already has ``limit`` live sockets."""
    return RealtimeError(
        ErrorCode.TOO_MANY_CONNECTIONS, f"This user already has {limit} live connections; close one first."
    )


@dataclass(frozen=True)
class ReleaseInfo:
    """What releasing a socket (disconnect or reaped) changed."""

    sid: str
    user_id: str
    last_socket: bool
    last_seen: str
    room_counts: dict[str, RoomCount] = field(default_factory=dict)


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


@dataclass(frozen=True)
class LocalSocket:
    """A socket of this worker, as the heartbeat refreshes it."""

    sid: str
    user_id: str
    session_id: str
    rooms: Sequence[str]


class SocketState(Protocol):
    """Where live sockets, presence and the room index of connected sockets live."""

    def connect(
        self,
        sid: str,
        user_id: str,
        session_id: str,
        rooms: Sequence[str],
        single_session: bool,
        replay_after: str | None = None,
    ) -> ConnectInfo:
        """Register a socket with its rooms; evict the user's other live sessions if asked; with
        ``replay_after``, also return the broadcast packets logged after that offset.

        :raises RealtimeError: ``TOO_MANY_CONNECTIONS`` past MAX_CONNECTIONS_PER_USER.
        """

    def release(self, sids: Sequence[str]) -> list[ReleaseInfo]:
        """Forget disconnected sockets."""

    def reap(self, limit: int) -> list[ReleaseInfo]:
        """Forget sockets whose heartbeat expired (their worker died)."""

    def refresh(self, sockets: Sequence[LocalSocket]) -> None:
        """Extend (or restore) this worker's sockets."""

    def park(self, sids: Sequence[str], seconds: float) -> None:
        """Keep disconnected sockets present for ``seconds`` (the recovery window); the reaper releases
        the ones no reconnect claims."""

    def presence(self, user_ids: Sequence[str]) -> list[PresenceEntry]:
        """Presence of each user, in order."""

    def set_status(self, user_id: str, status: str) -> str:
        """Store the user's chosen status; return ``lastSeen``."""


class RedisSocketState:
    """The cluster transport: Lua scripts over the keys of :class:`realtime.redis_keys.Keys`."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        scripts: ScriptSet,
        ttl: float,
        clock: Callable[[], float],
        max_sockets_per_user: int,
        replay_cap: int,
        refresh_chunk: int = 500,
    ) -> None:
        self._max_sockets = max_sockets_per_user
        self._replay_cap = replay_cap
        self._redis = client
        self._keys = keys
        self._ttl = ttl
        self._clock = clock
        self._chunk = refresh_chunk
        self._connect = scripts.load("connect", "room_fn")
        self._park = scripts.load("park")
        self._release = scripts.load("release", "room_fn")
        self._refresh = scripts.load("refresh", "room_fn")

    def connect(
        self,
        sid: str,
        user_id: str,
        session_id: str,
        rooms: Sequence[str],
        single_session: bool,
        replay_after: str | None = None,
    ) -> ConnectInfo:
        now = self._clock()
        reply = self._connect(
            args=[
                self._keys.prefix, sid, user_id, session_id, now + self._ttl, now, iso(now),
                "1" if single_session else "0", self._keys.control_channel, self._max_sockets,
                self._keys.recovery_stream(NAMESPACE) if replay_after else "", replay_after or "0-0",
                self._replay_cap, *rooms,
            ]
        )
        if reply[0] == -1:
            raise too_many_connections(self._max_sockets)
        first, unread, evicted, missed, joined = reply
        return ConnectInfo(
            first_socket=bool(first),
            unread_count=int(unread),
            evicted_sessions=list(evicted),
            missed=[
                ReplayPacket(offset=r[0], event=r[1], room=r[2], skip_sid=r[3] or None, payload=json.loads(r[4]))
                for r in missed
            ],
            room_counts={r[0]: RoomCount(int(r[1]), int(r[2]), bool(r[3])) for r in joined},
        )

    def release(self, sids: Sequence[str]) -> list[ReleaseInfo]:
        if not sids:
            return []
        now = self._clock()
        return self._parse(self._release(args=[self._keys.prefix, now, iso(now), "sids", *sids]), now)

    def reap(self, limit: int) -> list[ReleaseInfo]:
        now = self._clock()
        return self._parse(self._release(args=[self._keys.prefix, now, iso(now), "expired", limit]), now)

    def refresh(self, sockets: Sequence[LocalSocket]) -> None:
        expiry = self._clock() + self._ttl
        for start in range(0, len(sockets), self._chunk):
            args: list[Any] = [self._keys.prefix, expiry]
            for sock in sockets[start : start + self._chunk]:
                args += [sock.sid, sock.user_id, sock.session_id, len(sock.rooms), *sock.rooms]
            self._refresh(args=args)

    def park(self, sids: Sequence[str], seconds: float) -> None:
        for start in range(0, len(sids), self._chunk):
            self._park(args=[self._keys.prefix, self._clock() + seconds, *sids[start : start + self._chunk]])

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

    def _parse(self, rows: list[Any], now: float) -> list[ReleaseInfo]:
        infos = []
        for sid, user, last, counts in rows:
            if not user:
                continue
            room_counts = {
                counts[i]: RoomCount(int(counts[i + 1]), int(counts[i + 2]), bool(counts[i + 3]))
                for i in range(0, len(counts), 4)
            }
            infos.append(
                ReleaseInfo(sid=sid, user_id=user, last_socket=bool(last), last_seen=iso(now), room_counts=room_counts)
            )
        return infos


class MemorySocketState:
    """The embedded default: one process, so no expiry and nothing to reap."""

    def __init__(
        self,
        rooms: MemoryRoomStore,
        evict: Callable[[list[str]], None],
        unread_count: Callable[[str], int],
        clock: Callable[[], float],
        max_sockets_per_user: int,
        since: Callable[[str], list[ReplayPacket]],
    ) -> None:
        self._max_sockets = max_sockets_per_user
        self._since = since
        self._rooms = rooms
        self._evict = evict
        self._unread_count = unread_count
        self._clock = clock
        self._sockets: dict[str, tuple[str, str]] = {}
        self._by_user: dict[str, set[str]] = {}
        self._presence: dict[str, tuple[str, str]] = {}
        self._parked: dict[str, float] = {}

    def connect(
        self,
        sid: str,
        user_id: str,
        session_id: str,
        rooms: Sequence[str],
        single_session: bool,
        replay_after: str | None = None,
    ) -> ConnectInfo:
        self._parked.pop(sid, None)
        live = self._by_user.setdefault(user_id, set())
        present = [s for s in live if s != sid]
        others = sorted({self._sockets[s][1] for s in present if self._sockets[s][1] != session_id})
        active = [s for s in present if s not in self._parked]
        kept = [s for s in active if not single_session or self._sockets[s][1] == session_id]
        if len(kept) >= self._max_sockets:
            if not live:
                self._by_user.pop(user_id, None)
            raise too_many_connections(self._max_sockets)
        first = not live
        live.add(sid)
        self._sockets[sid] = (user_id, session_id)
        counts = dict(zip(rooms, self._rooms.add(sid, user_id, list(rooms)), strict=True))
        if first:
            self._presence[user_id] = ("online", iso(self._clock()))
        evicted = others if single_session else []
        if evicted:
            self._evict(evicted)
        return ConnectInfo(
            first_socket=first,
            unread_count=self._unread_count(user_id),
            evicted_sessions=evicted,
            missed=self._since(replay_after) if replay_after else [],
            room_counts=counts,
        )

    def release(self, sids: Sequence[str]) -> list[ReleaseInfo]:
        infos = []
        for sid in sids:
            self._parked.pop(sid, None)
            owner = self._sockets.pop(sid, None)
            if owner is None:
                continue
            user_id = owner[0]
            rooms = self._rooms.rooms_of(sid)
            counts = dict(zip(rooms, self._rooms.remove(sid, user_id, rooms), strict=True))
            live = self._by_user.get(user_id, set())
            live.discard(sid)
            last_seen = iso(self._clock())
            if not live:
                self._by_user.pop(user_id, None)
                self._presence[user_id] = ("offline", last_seen)
            infos.append(
                ReleaseInfo(sid=sid, user_id=user_id, last_socket=not live, last_seen=last_seen, room_counts=counts)
            )
        return infos

    def reap(self, limit: int) -> list[ReleaseInfo]:
        now = self._clock()
        expired = [sid for sid, until in self._parked.items() if until < now][:limit]
        for sid in expired:
            del self._parked[sid]
        return self.release(expired)

    def refresh(self, sockets: Sequence[LocalSocket]) -> None:
        return None

    def park(self, sids: Sequence[str], seconds: float) -> None:
        until = self._clock() + seconds
        for sid in sids:
            if sid in self._sockets:
                self._parked[sid] = until

    def presence(self, user_ids: Sequence[str]) -> list[PresenceEntry]:
        entries = []
        for user_id in user_ids:
            online = bool(self._by_user.get(user_id))
            status, last_seen = self._presence.get(user_id, ("offline", None))
            entries.append(PresenceEntry.of(user_id, online, status, last_seen))
        return entries

    def set_status(self, user_id: str, status: str) -> str:
        last_seen = iso(self._clock())
        self._presence[user_id] = (status, last_seen)
        return last_seen

