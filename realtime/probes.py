"""Self-probes of the two pub/sub listeners: a subscriber can stay connected yet receive nothing.

Each probe publishes a marker through the channel and waits for this worker's own listener to see it. A
silent listener gets its connection dropped, which makes it resubscribe (python-socketio's listener and
:class:`realtime.control_bus.RedisControlBus` both reconnect on a connection error).
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from gevent.event import Event
from socketio.pubsub_manager import PubSubManager

logger = logging.getLogger(__name__)

PROBE_ROOM = "__realtime_probe__"
#: Seconds after a forced resubscribe during which a missed probe does not force another one.
RESUBSCRIBE_GRACE = 10.0


class QueueProbe:
    """Probes the Socket.IO message-queue listener of this worker."""

    def __init__(self, socketio: Any, queue: Any) -> None:
        self._socketio = socketio
        self._queue = queue
        self._waiting: dict[str, Event] = {}
        self._installed_on: Any = None
        self._grace_until = 0.0

    def _manager(self) -> PubSubManager | None:
        manager = self._socketio.server.manager
        return manager if isinstance(manager, PubSubManager) and self._queue is not None else None

    def _install(self, manager: PubSubManager) -> None:
        if self._installed_on is manager:
            return
        original = manager._handle_emit

        def handle_emit(message: dict[str, Any]) -> Any:
            room = message.get("room")
            if isinstance(room, str) and room.startswith(PROBE_ROOM):
                waiting = self._waiting.pop(room, None)
                if waiting is not None:
                    waiting.set()
                return None
            return original(message)

        manager._handle_emit = handle_emit
        self._installed_on = manager

    def run(self, timeout: float) -> bool | None:
        """Publish a probe and wait for it; None when there is no queue to probe."""
        manager = self._manager()
        if manager is None:
            return None
        self._install(manager)
        room = f"{PROBE_ROOM}:{secrets.token_hex(8)}"
        seen = Event()
        self._waiting[room] = seen
        message = {
            "method": "emit", "event": "__probe__", "data": [None], "binary": False, "namespace": "/",
            "room": room, "skip_sid": None, "callback": None, "host_id": f"probe:{manager.host_id}",
        }
        try:
            self._queue.publish(manager.channel, json.dumps(message))
            ok = seen.wait(timeout)
        finally:
            self._waiting.pop(room, None)
        if not ok and time.monotonic() >= self._grace_until:
            logger.warning("message-queue listener missed its probe; forcing it to resubscribe")
            connection = getattr(getattr(manager, "pubsub", None), "connection", None)
            if connection is not None:
                connection.disconnect()
            # python-socketio waits before resubscribing; do not cut the new subscription meanwhile.
            self._grace_until = time.monotonic() + RESUBSCRIBE_GRACE
        return ok
