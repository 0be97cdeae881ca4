"""Emit server→client events: shaped by their schemas, logged for recovery, fanned out, batched.

Flask-SocketIO's queue publishes one message per round trip. Several emits of one socket event go out here
in one round trip, in the exact message format python-socketio's ``PubSubManager`` reads, and are delivered
to this worker's own sockets directly. With connection-state recovery on, each broadcast is first logged and
given an offset, which travels as the event's last argument (what socket.io-client expects).

A publish that does not get through after a retry raises :class:`PublishError`, which says whether the
recovery log holds the packets: then a recovering socket replays them from the log, and a caller that sends
them again later (a chat retry) uses :meth:`Broadcaster.emit_unlogged`, so that the log holds each packet once.
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
from realtime.redis_checks import refused_write

if TYPE_CHECKING:
    from realtime.sockets.catalog import EventCatalog

logger = logging.getLogger(__name__)

NAMESPACE = "/"


class PublishError(redis.ConnectionError):
    """Events could not be fanned out, even after a retry; the sender's ack says ``UNAVAILABLE``.

    :param count: how many events were lost.
    :param logged: whether the recovery log holds them (with offsets no live socket has received).
    """

    def __init__(self, count: int, logged: bool) -> None:
        super().__init__(f"could not publish {count} event(s) to the message queue after a retry")
        self.logged = logged


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

    def emit_unlogged(self, event: str, data: Any, to: str) -> None:
        """Send ``event`` to room ``to`` on every worker with no recovery-log entry and no offset.

        For a packet the log already holds from an attempt whose publish failed: recovering sockets replay
        it from there, live sockets get it now, and their offsets stay where they are. At most one round trip.
        """
        manager = self._socketio.server.manager
        queued = self._queue is not None and isinstance(manager, PubSubManager)
        self._emit_plain(manager, [(Outgoing(event, data, to), self._catalog.shape(event, data))], queued)

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
            self._retrying(lambda: self._publish(manager.channel, bodies), len(bodies), logged=True)
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

    def _retrying(self, action: Any, count: int, logged: bool = False) -> Any:
        """Run ``action``, once more after a Redis error; a second failure to connect raises :class:`PublishError`
        (``logged``: whether the recovery log already holds the events)."""
        for attempt in (1, 2):
            try:
                return action()
            except redis.RedisError as exc:
                if refused_write(exc):
                    # A retry would be refused again at once; it takes an operator (memory, failover) to end.
                    self.failed_publishes += count
                    logger.warning(
                        "could not publish %d event(s): redis refused the write (%s); %d failed so far",
                        count,
                        type(exc).__name__,
                        self.failed_publishes,
                    )
                    raise
                if attempt == 2:
                    self.failed_publishes += count
                    logger.exception(
                        "could not publish %d event(s) after a retry (%d failed so far)", count, self.failed_publishes
                    )
                    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
                        raise PublishError(count, logged) from exc
                    raise
                logger.warning("publish failed; retrying once", exc_info=True)
        return None
