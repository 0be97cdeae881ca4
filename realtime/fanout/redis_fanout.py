"""The manager of many workers: broadcasts go through the Redis channel to every worker, this one included.

:class:`RedisFanout` is python-socketio's ``RedisManager`` with :class:`~realtime.fanout.manager.FanoutLayer`
on top. Broadcasts are published through the app's Redis client in one pipeline rather than through
``RedisManager._publish``: that hook sends one message per round trip and logs a failure instead of raising
it, and a sender must learn that its events did not go out (its ack says ``UNAVAILABLE``). python-socketio's
own messages (remote disconnects, rooms) keep ``_publish``. A logged broadcast carries a ``host_id`` of its
own, so this worker's listener delivers it too, in channel (that is, offset) order.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

import redis
import socketio
from gevent.event import Event
from socketio.packet import Packet

from realtime.fanout import wire
from realtime.fanout.delivery import parse_emit
from realtime.fanout.emits import Emit, StoredBroadcast
from realtime.fanout.manager import FanoutLayer
from realtime.stores.recovery import RecoveryStore
from realtime.stores.recovery_packets import LoggedPacket

logger = logging.getLogger(__name__)

#: Rooms of the listener self-probes (:mod:`realtime.cluster.probes`); no socket is ever in one.
PROBE_ROOM = "__realtime_probe__"


class RedisFanout(FanoutLayer, socketio.RedisManager):
    """Many workers: broadcasts go through the Redis channel ``channel`` to every worker, this one included.

    :param url: the queue's Redis URL (python-socketio's listener connects with it).
    :param channel: the pub/sub channel (``SOCKETIO_CHANNEL``).
    :param client: the app's client for that Redis, which publishes broadcasts.
    :param recovery: the recovery log, or None.
    :param publish_with_log: whether the log lives in the queue's Redis, so that appending publishes too
        (``lua/recovery_append.lua``) in the same round trip.
    """

    def __init__(
        self,
        url: str,
        channel: str,
        client: redis.Redis,
        recovery: RecoveryStore | None,
        publish_with_log: bool,
    ) -> None:
        socketio.RedisManager.__init__(self, url, channel=channel)
        FanoutLayer.__init__(self, recovery)
        self._client = client
        self._publish_with_log = publish_with_log
        self._probes: dict[str, Event] = {}

    def _logged_host_id(self) -> str:
        # Not this manager's host_id: its own listener must deliver logged broadcasts too (in offset order).
        return f"log:{self.host_id}"

    def _send(self, emits: Sequence[Emit]) -> None:
        bodies: list[str] = []
        for emit in emits:
            if Packet.data_is_binary([emit.payload]):
                self.emit(emit.event, emit.payload, namespace=wire.NAMESPACE, room=emit.room, skip_sid=emit.skip_sid)
                continue
            # Delivered here now: the listener skips this manager's own host_id.
            self._deliver(emit.event, emit.payload, emit.room, emit.skip_sid)
            bodies.append(wire.encode(wire.emit_message(emit.event, [emit.payload], emit.room, emit.skip_sid, self.host_id)))
        self._retrying(lambda: self._publish_bodies(bodies), len(bodies))

    def _send_logged(self, emits: Sequence[Emit], packets: list[LoggedPacket], recovery: RecoveryStore) -> None:
        if self._publish_with_log:
            self._append(recovery, packets, self.channel)
            return
        offsets = self._append(recovery, packets, None)
        bodies = [p.envelope_head + offset + p.envelope_tail for p, offset in zip(packets, offsets, strict=True)]
        self._retrying(lambda: self._publish_bodies(bodies), len(bodies), logged=True)

    def _log_channel(self) -> str | None:
        return self.channel if self._publish_with_log else None

    def _send_stored(self, stored: StoredBroadcast, value: str, offset: str) -> None:
        if self._publish_with_log:
            return
        body = stored.channel_message(value, offset)
        self._retrying(lambda: self._publish_bodies([body]), 1, logged=True)

    def _publish_bodies(self, bodies: list[str]) -> None:
        if not bodies:
            return
        pipe = self._client.pipeline(transaction=False)
        for body in bodies:
            pipe.publish(self.channel, body)
        pipe.execute()

    def _listen(self) -> Any:
        """python-socketio's listener, less the emits delivered here as they arrive (:meth:`_delivered`)."""
        for body in super()._listen():
            if not self._delivered(body):
                yield body

    def _delivered(self, body: Any) -> bool:
        """Deliver an emit of :mod:`~realtime.fanout.wire` without decoding its payload (to nobody when no
        socket here is in its room); False for what python-socketio's listener must read (other methods,
        self-probes, the library's own messages)."""
        delivery = self.delivery
        if delivery is None or not isinstance(body, (bytes, str)):
            return False
        emit = parse_emit(body)
        if emit is None or emit.room.startswith(PROBE_ROOM):
            return False
        if emit.host_id != self.host_id:
            try:
                delivery.deliver(self.rooms.get(wire.NAMESPACE, {}), emit.text, emit.room, emit.skip_sid)
            except Exception:
                logger.exception("delivering a broadcast from the channel failed")
        return True

    def _handle_emit(self, message: dict[str, Any]) -> None:
        """Deliver an emit from the channel; a self-probe is only marked as heard."""
        room = message.get("room")
        if isinstance(room, str) and room.startswith(PROBE_ROOM):
            heard = self._probes.pop(room, None)
            if heard is not None:
                heard.set()
            return
        super()._handle_emit(message)

    def probe_listener(self, timeout: float) -> bool:
        """Publish a marker through the channel and wait up to ``timeout`` s for this worker's listener."""
        room = f"{PROBE_ROOM}:{secrets.token_hex(8)}"
        heard = self._probes[room] = Event()
        try:
            self._client.publish(self.channel, wire.encode(wire.emit_message("__probe__", [None], room, None, f"probe:{self.host_id}")))
            return heard.wait(timeout)
        finally:
            self._probes.pop(room, None)

    def resubscribe(self) -> None:
        """Drop the listener's connection: python-socketio's listener reconnects and subscribes again."""
        connection = getattr(self.pubsub, "connection", None)
        if connection is not None:
            connection.disconnect()
