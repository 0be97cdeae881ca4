"""The embedded default of :class:`realtime.stores.socket_state.SocketState`: one process, in memory."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from realtime.stores.control_bus import ControlBus, logout_command
from realtime.stores.notifications import NotificationStore
from realtime.stores.presence import MemoryPresenceStore
from realtime.stores.recovery import RecoveryStore
from realtime.stores.room_index import MemoryRoomStore
from realtime.stores.sessions import SessionStore, session_revoked
from realtime.stores.socket_records import (
    ConnectInfo,
    LocalSocket,
    ReleaseInfo,
    SessionQuery,
    too_many_connections,
)
from realtime.timestamps import iso


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

    def touch(self, sids: Sequence[str]) -> list[str]:
        return []

    def refresh(self, sockets: Sequence[LocalSocket]) -> list[str]:
        return []

    def park(self, sids: Sequence[str], seconds: float) -> None:
        until = self._clock() + seconds
        for sid in sids:
            if sid in self._sockets:
                self._parked[sid] = until
