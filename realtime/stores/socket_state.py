"""Cluster-wide state of live sockets: liveness, their rooms in the index, presence and session eviction.

One interface, two transports. The Redis one keeps per-socket entries with an expiry that each worker's
heartbeat extends; a worker that dies stops extending them and any other worker's reaper releases them
within ``PRESENCE_TTL``. Every lifecycle step is one Lua script: one round trip, atomic.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from realtime.stores.control_bus import ControlBus, logout_command
from realtime.stores.notifications import NotificationStore
from realtime.stores.presence import MemoryPresenceStore
from realtime.timestamps import iso
from realtime.stores.recovery import NAMESPACE, RecoveryStore
from realtime.stores.recovery_packets import ReplayPacket
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet
from realtime.stores.room_index import MemoryRoomStore, RoomCount
from realtime.stores.sessions import SessionCheck, SessionStore, session_revoked
from realtime.stores.socket_records import ConnectInfo, LocalSocket, ReleaseInfo, SessionQuery, too_many_connections


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
        session: SessionQuery | None = None,
        counted: Sequence[str] = (),
    ) -> ConnectInfo:
        """Register a socket with its rooms; evict the user's other live sessions if asked; with
        ``replay_after``, also return the broadcast packets logged after that offset; with ``session``,
        check the session first; count the sockets in ``counted`` rooms.

        :raises RealtimeError: ``SESSION_REVOKED`` (nothing registered), ``TOO_MANY_CONNECTIONS`` past
            MAX_CONNECTIONS_PER_USER.
        """

    def release(self, sids: Sequence[str], counted: Sequence[str] = ()) -> list[ReleaseInfo]:
        """Forget disconnected sockets; count the sockets left in each room of ``counted`` (templates with
        ``{userId}``) for each socket's user."""

    def reap(self, limit: int, counted: Sequence[str] = ()) -> list[ReleaseInfo]:
        """Forget sockets whose heartbeat expired (their worker died), counting as :meth:`release` does."""

    def refresh(self, sockets: Sequence[LocalSocket]) -> list[str]:
        """Extend (or restore) this worker's sockets; return the sids among them that were parked meanwhile
        (disconnected after the snapshot), which it leaves alone."""

    def park(self, sids: Sequence[str], seconds: float) -> None:
        """Keep disconnected sockets present for ``seconds`` (the recovery window); the reaper releases
        the ones no reconnect claims."""


class RedisSocketState:
    """The cluster transport: Lua scripts over the keys of :class:`realtime.stores.redis.keys.Keys`."""

    def __init__(
        self,
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
        session: SessionQuery | None = None,
        counted: Sequence[str] = (),
    ) -> ConnectInfo:
        now = self._clock()
        reply = self._connect(
            args=[
                self._keys.prefix, sid, user_id, session_id, now + self._ttl, now, iso(now),
                "1" if single_session else "0", self._keys.control_channel, self._max_sockets,
                self._keys.recovery_stream(NAMESPACE) if replay_after else "", replay_after or "0-0",
                self._replay_cap, "0" if session is None else "2" if session.profile else "1", len(counted),
                *counted, *rooms,
            ]
        )
        if reply[0] == -1:
            raise too_many_connections(self._max_sockets)
        if reply[0] == -2:
            raise session_revoked()
        first, unread, evicted, missed, joined, counts, flat = reply
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return ConnectInfo(
            first_socket=bool(first),
            unread_count=int(unread),
            evicted_sessions=list(evicted),
            missed=[
                ReplayPacket(offset=r[0], event=r[1], room=r[2], skip_sid=r[3] or None, payload=json.loads(r[4]))
                for r in missed
            ],
            room_counts={r[0]: RoomCount(int(r[1]), int(r[2]), bool(r[3])) for r in joined},
            counted=dict(zip(counted, map(int, counts), strict=True)),
            session=None if session is None else SessionCheck.of_stored(user_id, user_id, fields if session.profile else None),
        )

    def release(self, sids: Sequence[str], counted: Sequence[str] = ()) -> list[ReleaseInfo]:
        if not sids:
            return []
        now = self._clock()
        args = [self._keys.prefix, now, iso(now), "sids", len(counted), *counted, *sids]
        return self._parse(self._release(args=args), now, counted)

    def reap(self, limit: int, counted: Sequence[str] = ()) -> list[ReleaseInfo]:
        now = self._clock()
        args = [self._keys.prefix, now, iso(now), "expired", len(counted), *counted, limit]
        return self._parse(self._release(args=args), now, counted)

    def refresh(self, sockets: Sequence[LocalSocket]) -> list[str]:
        expiry = self._clock() + self._ttl
        parked: list[str] = []
        for start in range(0, len(sockets), self._chunk):
            args: list[Any] = [self._keys.prefix, expiry]
            for sock in sockets[start : start + self._chunk]:
                args += [sock.sid, sock.user_id, sock.session_id, len(sock.rooms), *sock.rooms]
            parked += list(self._refresh(args=args) or [])
        return parked

    def park(self, sids: Sequence[str], seconds: float) -> None:
        for start in range(0, len(sids), self._chunk):
            self._park(args=[self._keys.prefix, self._clock() + seconds, *sids[start : start + self._chunk]])

    def _parse(self, rows: list[Any], now: float, counted: Sequence[str]) -> list[ReleaseInfo]:
        infos = []
        for sid, user, last, counts, sizes in rows:
            if not user:
                continue
            room_counts = {
                counts[i]: RoomCount(int(counts[i + 1]), int(counts[i + 2]), bool(counts[i + 3]))
                for i in range(0, len(counts), 4)
            }
            rooms = [template.replace("{userId}", user) for template in counted]
            infos.append(
                ReleaseInfo(
                    sid=sid,
                    user_id=user,
                    last_socket=bool(last),
                    last_seen=iso(now),
                    room_counts=room_counts,
                    counted=dict(zip(rooms, map(int, sizes), strict=True)),
                )
            )
        return infos


class MemorySocketState:
    """The embedded default: one process, so no expiry and nothing to reap."""

    def __init__(
        self,
        rooms: MemoryRoomStore,
        presence: MemoryPresenceStore,
        sessions: SessionStore,
        bus: ControlBus,
        notifications: NotificationStore,
        recovery: RecoveryStore | None,
        clock: Callable[[], float],
        max_sockets_per_user: int,
    ) -> None:
        self._max_sockets = max_sockets_per_user
        self._rooms = rooms
        self._presence = presence
        self._sessions = sessions
        self._bus = bus
        self._notifications = notifications
        self._recovery = recovery
        self._clock = clock
        self._sockets: dict[str, tuple[str, str]] = {}
        self._by_user: dict[str, set[str]] = {}
        self._parked: dict[str, float] = {}

    def connect(
        self,
        sid: str,
        user_id: str,
        session_id: str,
        rooms: Sequence[str],
        single_session: bool,
        replay_after: str | None = None,
        session: SessionQuery | None = None,
        counted: Sequence[str] = (),
    ) -> ConnectInfo:
        check = None if session is None else self._sessions.check(session_id, user_id, session.profile)
        if check is not None and not check.valid:
            raise session_revoked()
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
            self._presence.came_online(user_id)
        evicted = others if single_session else []
        if evicted:
            for evicted_id in evicted:
                self._sessions.revoke(evicted_id)
            self._bus.publish(logout_command(evicted, "duplicate_login"))
        return ConnectInfo(
            first_socket=first,
            unread_count=self._notifications.unread_count(user_id),
            evicted_sessions=evicted,
            missed=self._recovery.since(replay_after) if replay_after and self._recovery is not None else [],
            room_counts=counts,
            counted={room: self._rooms.count(room).sockets for room in counted},
            session=check,
        )

    def release(self, sids: Sequence[str], counted: Sequence[str] = ()) -> list[ReleaseInfo]:
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
                self._presence.went_offline(user_id, last_seen)
            rooms = [template.replace("{userId}", user_id) for template in counted]
            infos.append(
                ReleaseInfo(
                    sid=sid,
                    user_id=user_id,
                    last_socket=not live,
                    last_seen=last_seen,
                    room_counts=counts,
                    counted={room: self._rooms.count(room).sockets for room in rooms},
                )
            )
        return infos

    def reap(self, limit: int, counted: Sequence[str] = ()) -> list[ReleaseInfo]:
        now = self._clock()
        expired = [sid for sid, until in self._parked.items() if until < now][:limit]
        for sid in expired:
            del self._parked[sid]
        return self.release(expired, counted)

    def refresh(self, sockets: Sequence[LocalSocket]) -> list[str]:
        return []

    def park(self, sids: Sequence[str], seconds: float) -> None:
        until = self._clock() + seconds
        for sid in sids:
            if sid in self._sockets:
                self._parked[sid] = until
