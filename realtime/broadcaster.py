"""Emit server→client events: shaped by their schemas, logged for recovery, fanned out, batched.

Flask-SocketIO's queue publishes one message per round trip. Several emits of one socket event go out here
in one round trip, in the exact message format python-socketio's ``PubSubManager`` reads, and are delivered
to this worker's own sockets directly. With connection-state recovery on, each broadcast is first logged and
given an offset, which travels as the event's last argument (what socket.io-client expects).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from socketio.packet import Packet
from socketio.pubsub_manager import PubSubManager

from realtime.recovery import LoggedPacket, RecoveryStore

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


def envelope_halves(event: str, payload_json: str, room: str, skip_sid: str | None, host_id: str) -> tuple[str, str]:
    """The queue message as JSON text before and after the offset string."""
    head = f'{{"method":"emit","event":{json.dumps(event)},"data":[{payload_json},"'
    tail = (
        f'"],"binary":false,"namespace":"/","room":{json.dumps(room)},"skip_sid":{json.dumps(skip_sid)},'
        f'"callback":null,"host_id":{json.dumps(host_id)}}}'
    )
    return head, tail


class Broadcaster:
    """Shapes payloads with the catalog and sends them to rooms, cluster-wide."""

    def __init__(
        self,
        socketio: Any,
        catalog: EventCatalog,
        queue: redis.Redis | None,
        recovery: RecoveryStore | None = None,
        publish_with_log: bool = False,
    ) -> None:
        self._socketio = socketio
        self._catalog = catalog
        self._queue = queue
        self._recovery = recovery
        self._publish_with_log = publish_with_log
        #: Publishes that still failed after a retry (also logged); /readyz reports them.
        self.failed_publishes = 0

    def emit(self, event: str, data: Any, to: str, skip_sid: str | None = None) -> None:
        """Send ``event`` to room (or sid) ``to`` on every worker: at most one Redis round trip."""
        self.emit_many([Outgoing(event, data, to, skip_sid)])

    def emit_local(self, sid: str, event: str, data: Any) -> None:
        """Send ``event`` to a socket of this worker without touching Redis (no offset: not a broadcast)."""
        self._socketio.server.emit(
            event, self._catalog.shape(event, data), to=sid, namespace=NAMESPACE, ignore_queue=True
        )

    def emit_many(self, messages: list[Outgoing]) -> None:
        """Send several events with at most one Redis round trip (two with a separate queue Redis)."""
        if not messages:
            return
        manager = self._socketio.server.manager
        shaped = [(m, self._catalog.shape(m.event, m.data)) for m in messages]
        queued = self._queue is not None and isinstance(manager, PubSubManager)
        if self._recovery is None:
            self._emit_plain(manager, shaped, queued)
            return
        # Through the queue, every worker, this one included, delivers from the channel, i.e. in offset
        # order (delivering our own copies directly would follow the order of Redis replies instead).
        host_id = f"log:{manager.host_id}" if queued else ""
        packets = []
        for message, payload in shaped:
            payload_json = json.dumps(payload, separators=(",", ":"), allow_nan=False)
            head, tail = envelope_halves(message.event, payload_json, message.to, message.skip_sid, host_id)
            packets.append(LoggedPacket(message.event, message.to, message.skip_sid, payload_json, head, tail))
        channel = manager.channel if queued and self._publish_with_log else None
        offsets = self._retrying(lambda: self._recovery.append(packets, channel), len(packets))
        if queued and channel is None:
            bodies = [p.envelope_head + offset + p.envelope_tail for p, offset in zip(packets, offsets, strict=True)]
            self._retrying(lambda: self._publish(manager.channel, bodies), len(bodies))
        if queued:
            return
        for (message, payload), offset in zip(shaped, offsets, strict=True):
            self._socketio.server.emit(
                message.event, (payload, offset), to=message.to, skip_sid=message.skip_sid, namespace=NAMESPACE
            )

    def _emit_plain(self, manager: Any, shaped: list[tuple[Outgoing, Any]], queued: bool) -> None:
        if not queued:
            for message, payload in shaped:
                self._socketio.server.emit(
                    message.event, payload, to=message.to, skip_sid=message.skip_sid, namespace=NAMESPACE
                )
            return
        bodies: list[str] = []
        for message, payload in shaped:
            if Packet.data_is_binary([payload]):
                manager.emit(message.event, payload, namespace=NAMESPACE, room=message.to, skip_sid=message.skip_sid)
                continue
            envelope = self._envelope(message, [payload], manager.host_id)
            manager._handle_emit(envelope)
            bodies.append(json.dumps(envelope, separators=(",", ":")))
        self._retrying(lambda: self._publish(manager.channel, bodies), len(bodies))

    @staticmethod
    def _envelope(message: Outgoing, data: list[Any], host_id: str) -> dict[str, Any]:
        return {
            "method": "emit",
            "event": message.event,
            "data": data,
            "binary": False,
            "namespace": NAMESPACE,
            "room": message.to,
            "skip_sid": message.skip_sid,
            "callback": None,
            "host_id": host_id,
        }

    def _publish(self, channel: str, bodies: list[str]) -> None:
        if not bodies or self._queue is None:
            return
        pipe = self._queue.pipeline(transaction=False)
        for body in bodies:
            pipe.publish(channel, body)
        pipe.execute()

    def _retrying(self, action: Any, count: int) -> Any:
        for attempt in (1, 2):
            try:
                return action()
            except redis.RedisError:
                if attempt == 2:
                    self.failed_publishes += count
                    logger.error(
                        "could not publish %d event(s) after a retry (%d failed so far)",
                        count,
                        self.failed_publishes,
                        exc_info=True,
                    )
                    raise
                logger.warning("publish failed; retrying once", exc_info=True)
        return None
