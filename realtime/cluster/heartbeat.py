"""The heartbeat: keep this worker's sockets alive in the cluster-wide state and reap dead workers' sockets."""
from __future__ import annotations

import logging

from realtime.services.container import Services
from realtime.stores.socket_state import LocalSocket

logger = logging.getLogger(__name__)

#: Sockets reaped per heartbeat at most.
REAP_BATCH = 500


class Heartbeat:
    """One beat refreshes every local socket and reaps expired ones of workers that stopped beating."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def beat(self) -> int:
        """One heartbeat: refresh this worker's sockets, reap expired ones; return how many were reaped."""
        services = self._services
        local = [
            LocalSocket(sid, identity.user_id, identity.session_id, sorted(services.rooms.rooms_of(sid)))
            for sid, identity in services.connections.items()
        ]
        services.state.refresh(local)
        self._undo_changes_during_refresh(local)
        reaped = services.state.reap(REAP_BATCH)
        if reaped:
            logger.info("reaped %d socket(s) of a worker that stopped heartbeating", len(reaped))
            services.broadcaster.emit_many(services.release_events(reaped))
        return len(reaped)

    def _undo_changes_during_refresh(self, snapshot: list[LocalSocket]) -> None:
        """The refresh wrote a snapshot; a socket that disconnected or left a room while it ran was
        re-added. Remove those entries again, quietly: their own disconnect or leave already announced it."""
        services = self._services
        live = dict(services.connections.items())
        gone = [sock.sid for sock in snapshot if sock.sid not in live]
        if gone:
            services.state.release(gone)
        for sock in snapshot:
            if sock.sid in live:
                left = sorted(set(sock.rooms) - services.rooms.rooms_of(sock.sid))
                if left:
                    services.rooms.unindex(sock.sid, sock.user_id, left)
