"""What the admin view shows and does, cluster-wide: workers and their sockets, the busiest rooms, users
online page by page, recent errors and message rates; disconnect a socket, log a user out everywhere.

Reads are bounded (:mod:`realtime.stores.directory`, :mod:`realtime.stores.workers`). The actions reuse the
paths that already cross workers: python-socketio's own disconnect, which its manager forwards through the
message queue to the worker holding the socket, and session revocation
(:meth:`realtime.cluster.logouts.SessionLogouts.revoke`), which ``DELETE /api/v1/sessions/{sid}`` and
``flask token revoke`` use too.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realtime.cluster.lifecycle import Lifecycle
from realtime.cluster.recent_errors import recent_errors
from realtime.services.container import Services
from realtime.stores.directory import (
    Directory,
    LiveSocket,
    MemoryDirectory,
    RedisDirectory,
)
from realtime.stores.workers import WorkerRecord, WorkerRegistry
from realtime.timestamps import iso

logger = logging.getLogger(__name__)

NAMESPACE = "/"
#: Rooms shown, the busiest first (sizes read exactly for these only).
ROOMS_SHOWN = 25
#: Recent errors shown.
ERRORS_SHOWN = 50
#: Users per page at most.
MAX_PAGE = 100
#: The fields of a recent-errors entry the page shows; anything else a handler adds stays out.
ERROR_FIELDS = ("ts", "level", "logger", "message", "worker", "host", "event", "code", "exc")

RecentErrors = Callable[[int], list[dict[str, Any]]]


@dataclass(frozen=True)
class Logout:
    """What a forced logout reached: the sessions revoked and the sockets they had."""

    user_id: str
    sessions: int
    sockets: int


def build_directory(services: Services) -> Directory:
    """The Redis directory with Redis, else this process's sockets."""
    if services.redis is not None:
        return RedisDirectory(services.redis, services.keys, time.time)

    def local() -> list[LiveSocket]:
        return [LiveSocket(sid, identity.user_id, identity.session_id) for sid, identity in services.connections.items()]

    return MemoryDirectory(local, services.rooms.count)


class AdminView:
    """Cluster-wide reads and the two actions of the admin page."""

    def __init__(
        self,
        socketio: Any,
        registry: WorkerRegistry,
        directory: Directory,
        revoke: Callable[[str], bool],
        local: Callable[[], WorkerRecord],
        errors: RecentErrors = recent_errors,
    ) -> None:
        self._socketio = socketio
        self._local = local
        self._revoke = revoke
        self._registry = registry
        self._directory = directory
        self._errors = errors

    @classmethod
    def for_services(cls, services: Services, socketio: Any) -> AdminView:
        """The view over the worker registry this worker's heartbeat publishes to."""
        lifecycle = services.lifecycle
        if not isinstance(lifecycle, Lifecycle):
            raise TypeError("the admin view needs the services' Lifecycle (built by realtime.services.factory)")
        heartbeat = lifecycle.heartbeat
        return cls(socketio, heartbeat.registry, build_directory(services), lifecycle.revoke, heartbeat.status.record)

    def overview(self) -> dict[str, Any]:
        """Workers (each with its listed sockets and rates), cluster totals, the busiest rooms, recent errors."""
        # The worker answering reports itself as of now, not as of its last beat (nor not at all before it).
        by_id = {str(worker.get("id")): worker for worker in self._registry.live()}
        here = self._local()
        by_id[str(here["id"])] = here
        workers = sorted(by_id.values(), key=lambda worker: str(worker.get("id")))
        rates: Counter[str] = Counter()
        for worker in workers:
            rates.update(worker.get("rates") or {})
        return {
            "generatedAt": iso(time.time()),
            "workers": [{key: value for key, value in worker.items() if key != "rooms"} for worker in workers],
            "totals": {
                "workers": len(workers),
                "sockets": sum(int(worker.get("sockets", 0)) for worker in workers),
                "rates": {name: round(value, 3) for name, value in rates.items()},
            },
            "rooms": self._busiest_rooms(workers),
            "errors": [
                {key: entry[key] for key in ERROR_FIELDS if key in entry} for entry in self._errors(ERRORS_SHOWN)
            ],
        }

    def _busiest_rooms(self, workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rooms with most sockets on the workers' reports, with their exact cluster-wide sizes."""
        local: Counter[str] = Counter()
        for worker in workers:
            for room, count in worker.get("rooms") or []:
                local[str(room)] += int(count)
        names = [room for room, _ in local.most_common(ROOMS_SHOWN)]
        sizes = self._directory.room_sizes(names)
        rooms = [{"room": room, "sockets": size.sockets, "users": size.users} for room, size in sizes.items()]
        return sorted(rooms, key=lambda room: (-room["sockets"], room["room"]))

    def users(self, cursor: str, limit: int) -> dict[str, Any]:
        """A page of users online with their socket ids, and the cursor of the next page."""
        page = self._directory.users_page(cursor, max(1, min(limit, MAX_PAGE)))
        return {
            "users": [{"userId": user_id, "sockets": sids} for user_id, sids in page.users],
            "next": page.next_cursor,
        }

    def user(self, user_id: str) -> dict[str, Any]:
        """One user's live sockets."""
        return {"userId": user_id, "sockets": [sock.sid for sock in self._directory.sockets_of(user_id)]}

    def disconnect(self, sid: str) -> LiveSocket | None:
        """Disconnect socket ``sid`` wherever it lives; None when the cluster does not know it.

        The client sees ``io server disconnect`` and does not reconnect by itself.
        """
        sock = self._directory.owner(sid)
        if sock is None:
            return None
        self._socketio.server.disconnect(sid, namespace=NAMESPACE)
        logger.info(
            "admin action: disconnect socket %s of user %s", sid, sock.user_id,
            extra={"actor": "admin", "action": "disconnect", "targetSid": sid, "targetUser": sock.user_id},
        )
        return sock

    def force_logout(self, user_id: str) -> Logout | None:
        """Revoke every session with a live (or recoverable) socket of ``user_id``: each of those sockets gets
        ``force_logout`` (reason ``revoked``) on its worker and is disconnected, and the sessions' tokens
        no longer connect. None when the user has no socket."""
        sockets = self._directory.sockets_of(user_id)
        if not sockets:
            return None
        sessions = sorted({sock.session_id for sock in sockets if sock.session_id})
        for session_id in sessions:
            self._revoke(session_id)
        logger.info(
            "admin action: force logout of user %s (%d session(s), %d socket(s))", user_id, len(sessions), len(sockets),
            extra={"actor": "admin", "action": "force_logout", "targetUser": user_id},
        )
        return Logout(user_id, len(sessions), len(sockets))
