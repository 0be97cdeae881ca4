"""Room re-checks: when a room's authorization hook may answer differently, take refused sockets out of it."""
from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from realtime.errors import RealtimeError
from realtime.services.container import Services
from realtime.services.room_manager import REVALIDATE_ROOM
from realtime.stores.room_index import RoomCount
from realtime.stores.socket_records import ReleaseInfo
from realtime.timestamps import iso

logger = logging.getLogger(__name__)


class RoomRevalidation:
    """Acts on :meth:`realtime.services.room_manager.RoomManager.revalidate_room` commands and re-checks the
    rooms of recovering sockets, for this worker's sockets."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def on_room_control(self, message: dict[str, Any]) -> None:
        """Handle :meth:`realtime.services.room_manager.RoomManager.revalidate_room`: re-check the room off the listener."""
        room = message.get("room")
        if message.get("op") == REVALIDATE_ROOM and isinstance(room, str):
            # Hooks may be slow (an app's database): never hold up the control listener with them.
            gevent.spawn(self._revalidate_logged, room)

    def _revalidate_logged(self, room: str) -> None:
        try:
            self.revalidate(room)
        except Exception:
            logger.exception("room revalidation failed", extra={"room_prefix": room.partition(":")[0]})

    def revalidate(self, room: str) -> int:
        """Take this worker's sockets out of ``room`` where its hook now refuses their user; return how many.

        O(sockets in the room here), one hook call per distinct user; they leave as by a leave (index and
        others' counts, the features' leave announcements) and each gets ``room:removed``.
        """
        services = self._services
        members: list[tuple[str, str]] = []
        for sid in services.rooms.local_members(room):
            try:
                members.append((sid, services.connections.get(sid).user_id))
            except RealtimeError:
                continue  # still connecting, or already gone: its own handler runs the hooks
        refused = {user_id for user_id in {user for _, user in members} if services.rooms.refused(user_id, [room])}
        removed = [
            (sid, user_id, [(room, services.rooms.evict(sid, user_id, room))])
            for sid, user_id in members
            if user_id in refused
        ]
        self._announce_removals(removed)
        if removed:
            logger.info("room revalidated: %d socket(s) removed", len(removed),
                        extra={"room_prefix": room.partition(":")[0]})
        return len(removed)

    def recheck_recovered(self, sid: str, user_id: str, rooms: list[str]) -> list[str]:
        """The rooms a recovering socket may re-enter: those whose hook refuses its user now are dropped
        from its index entries, announced as left and reported to it with ``room:removed``."""
        refused = self._services.rooms.refused(user_id, rooms)
        if not refused:
            return rooms
        self._announce_removals([(sid, user_id, self._services.rooms.forget(sid, user_id, refused))])
        logger.info("recovered socket refused %d room(s) by their hooks", len(refused), extra={"sid": sid})
        return [room for room in rooms if room not in refused]

    def _announce_removals(self, removed: list[tuple[str, str, list[tuple[str, RoomCount]]]]) -> None:
        """``room:removed`` to each socket (local), then the features' leave broadcasts (one round trip)."""
        services = self._services
        for sid, _, counts in removed:
            for room, _ in counts:
                services.broadcaster.emit_local(sid, "room:removed", {"room": room, "reason": "forbidden"})
        stamp = iso(time.time())
        infos = [
            ReleaseInfo(sid=sid, user_id=user_id, last_socket=False, last_seen=stamp, room_counts=dict(counts))
            for sid, user_id, counts in removed
            if counts
        ]
        services.broadcaster.emit_many(services.release_events(infos))
