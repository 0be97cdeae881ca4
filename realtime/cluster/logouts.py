"""Logging sockets out on every worker: revoked sessions, the control command, the periodic session check."""
from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import redis

from realtime.services.container import Services
from realtime.stores.control_bus import LOGOUT_REASONS, logout_command

logger = logging.getLogger(__name__)

NAMESPACE = "/"


class SessionLogouts:
    """Disconnects this worker's sockets of sessions that are revoked or gone."""

    def __init__(self, services: Services, socketio: Any) -> None:
        self._services = services
        self._socketio = socketio

    def on_control(self, message: dict[str, Any]) -> None:
        """Handle a cluster command; today: log out every local socket of some sessions."""
        if message.get("op") != "logout":
            return
        sessions = message.get("sessions")
        if not isinstance(sessions, list):
            return
        reason = message.get("reason") if message.get("reason") in LOGOUT_REASONS else "revoked"
        self.log_out(set(map(str, sessions)), reason)

    def log_out(self, session_ids: Collection[str], reason: str) -> int:
        """Send ``force_logout`` to every socket of ``session_ids`` on this worker, then disconnect it at the
        Socket.IO level; return how many sockets.

        The client sees ``io server disconnect`` and does not reconnect by itself; the disconnect handler
        keeps no recovery record for that reason, so the socket cannot be recovered either.
        """
        count = 0
        for sid, identity in self._services.connections.items():
            if identity.session_id not in session_ids:
                continue
            try:
                self._services.broadcaster.emit_local(sid, "force_logout", {"reason": reason})
                self._socketio.server.disconnect(sid, namespace=NAMESPACE, ignore_queue=True)
            except Exception:
                logger.exception("could not log out a socket", extra={"sid": sid, "reason": reason})
                continue
            count += 1
            logger.info("socket logged out", extra={"sid": sid, "reason": reason})
        return count

    def revoke(self, session_id: str) -> bool:
        """Revoke a session (``flask token revoke``, ``DELETE /api/v1/sessions/{sid}``): delete it, then log
        out its sockets on every worker at once; return whether it was known.

        Known means stored; in the embedded default, where tokens minted elsewhere connect without a stored
        session, a live socket of it here counts too. The command goes out even for an unknown session: the
        login service may have deleted the key a moment ago while sockets of it are still live, and the
        periodic check would reach them only later.
        """
        services = self._services
        known = services.sessions.revoke(session_id)
        if not services.sessions.checks_sessions:
            known = known or any(identity.session_id == session_id for _, identity in services.connections.items())
        services.bus.publish(logout_command([session_id], "revoked"))
        return known

    def check_sessions(self) -> int:
        """One session check: log out this worker's sockets whose session is gone (deleted or expired by the
        login service, or lost by Redis); return how many sockets.

        One pipelined round trip per 250 sessions of this worker (``CHECK_CHUNK``), whatever the traffic. A Redis that does
        not answer logs nobody out: only an answer saying a session is gone does.
        """
        owners = {identity.session_id: identity.user_id for _, identity in self._services.connections.items()}
        if not owners:
            return 0
        try:
            gone = self._services.sessions.missing(owners)
        except redis.RedisError as exc:
            logger.warning("session check skipped: redis did not answer (%s)", type(exc).__name__)
            return 0
        if not gone:
            return 0
        count = self.log_out(set(gone), "revoked")
        logger.info("session check: %d session(s) gone, %d socket(s) logged out", len(gone), count)
        return count
