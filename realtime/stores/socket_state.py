"""Cluster-wide state of live sockets: liveness, their rooms in the index, presence and session eviction.

One interface, two transports: the Redis one here, the in-memory one in :mod:`.memory_socket_state`. The
Redis one keeps per-socket entries with an expiry that each worker's heartbeat extends (:meth:`touch`); a
worker that dies stops extending them and any other worker's reaper releases them within ``PRESENCE_TTL``.
Every lifecycle step is one Lua script: one round trip, atomic.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from realtime.stores.recovery import NAMESPACE
from realtime.stores.recovery_packets import ReplayPacket
from realtime.stores.redis.keys import Keys
from realtime.stores.redis.scripts import ScriptSet
from realtime.stores.room_index import RoomCount
from realtime.stores.sessions import SessionCheck, session_revoked
from realtime.stores.socket_records import (
    ConnectInfo,
    LocalSocket,
    ReleaseInfo,
    SessionQuery,
    too_many_connections,
)
from realtime.timestamps import iso


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

    def touch(self, sids: Sequence[str]) -> list[str]:
        """Extend the expiry of this worker's sockets whose entries the store holds (parked ones keep their
        recovery window); return the sids to :meth:`refresh` in full: those without an entry, or every one of
        them when the store's server is not the one of the previous call (it restarted or failed over).
        ``touch([])`` only notes the server."""

    def refresh(self, sockets: Sequence[LocalSocket]) -> list[str]:
        """Write (restore) this worker's sockets with their rooms; return the sids among them that were parked
        meanwhile (disconnected after the snapshot), which it leaves alone."""

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
        server_id: Callable[[], str],
        touch_chunk: int = 500,
        refresh_chunk: int = 100,
    ) -> None:
        self._max_sockets = max_sockets_per_user
        self._replay_cap = replay_cap
        self._keys = keys
        self._ttl = ttl
        self._clock = clock
        self._chunk = refresh_chunk
        self._touch_chunk = touch_chunk
        self._server_id = server_id
        self._server: str | None = None
        self._connect = scripts.load("connect", "room_fn")
        self._park = scripts.load("park")
        self._release = scripts.load("release", "room_fn")
        self._refresh = scripts.load("refresh", "room_fn")
        self._touch = scripts.load("touch")

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

    def touch(self, sids: Sequence[str]) -> list[str]:
        server, known = self._server_id(), self._server
        self._server = server
        if known != server:
            return list(sids)
        expiry = self._clock() + self._ttl
        missing: list[str] = []
        for start in range(0, len(sids), self._touch_chunk):
            missing += self._touch(args=[self._keys.prefix, expiry, *sids[start : start + self._touch_chunk]]) or []
        return missing

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
