"""Emit server→client events: shaped by their schemas, fanned out through the message queue, batched.

Flask-SocketIO's queue publishes one message per round trip. Several emits of one socket event (a
disconnect that updates presence and two viewer counts) go out here in one pipeline, in the exact message
format python-socketio's ``PubSubManager`` reads, after being delivered to this worker's own sockets.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from socketio.packet import Packet
from socketio.pubsub_manager import PubSubManager

if TYPE_CHECKING:
    from realtime.sockets.catalog import EventCatalog

logger = logging.getLogger(__name__)

NAMESPACE = "/"


@dataclass(frozen=True)
class Outgoing:
    """One emit: event, payload (before shaping) and target room or sid."""

    event: str
    data: Any
    to: str
    skip_sid: str | None = None


class Broadcaster:
    """Shapes payloads with the catalog and sends them to rooms, cluster-wide."""

    def __init__(self, socketio: Any, catalog: EventCatalog, queue: redis.Redis | None) -> None:
        self._socketio = socketio
        self._catalog = catalog
        self._queue = queue

    def emit(self, event: str, data: Any, to: str, skip_sid: str | None = None) -> None:
        """Send ``event`` to room (or sid) ``to`` on every worker: at most one Redis round trip."""
        self.emit_many([Outgoing(event, data, to, skip_sid)])

    def emit_local(self, sid: str, event: str, data: Any) -> None:
        """Send ``event`` to a socket of this worker without touching Redis."""
        self._socketio.server.emit(
            event, self._catalog.shape(event, data), to=sid, namespace=NAMESPACE, ignore_queue=True
        )

    def emit_many(self, messages: list[Outgoing]) -> None:
        """Send several events with at most one Redis round trip."""
        if not messages:
            return
        manager = self._socketio.server.manager
        shaped = [(m, self._catalog.shape(m.event, m.data)) for m in messages]
        if self._queue is None or not isinstance(manager, PubSubManager):
            for message, payload in shaped:
                self._socketio.server.emit(
                    message.event, payload, to=message.to, skip_sid=message.skip_sid, namespace=NAMESPACE
                )
            return
        published: list[str] = []
        for message, payload in shaped:
            if Packet.data_is_binary([payload]):
                manager.emit(message.event, payload, namespace=NAMESPACE, room=message.to, skip_sid=message.skip_sid)
                continue
            envelope = {
                "method": "emit",
                "event": message.event,
                "data": [payload],
                "binary": False,
                "namespace": NAMESPACE,
                "room": message.to,
                "skip_sid": message.skip_sid,
                "callback": None,
                "host_id": manager.host_id,
            }
            manager._handle_emit(envelope)
            published.append(json.dumps(envelope, separators=(",", ":")))
        self._publish(manager.channel, published)

    def _publish(self, channel: str, published: list[str]) -> None:
        if not published or self._queue is None:
            return
        for attempt in (1, 2):
            pipe = self._queue.pipeline(transaction=False)
            for body in published:
                pipe.publish(channel, body)
            try:
                pipe.execute()
                return
            except redis.RedisError:
                if attempt == 2:
                    logger.error(
                        "publish of %d event(s) to other workers failed after a retry", len(published), exc_info=True
                    )
                    raise
                logger.warning("publish to other workers failed; retrying once", exc_info=True)
