"""python-socketio client managers that own this server's broadcasts: encoding, offsets, the log, publishing.

python-socketio's manager chain adds one concern per layer: ``Manager`` keeps this process's rooms and
writes to its sockets, ``PubSubManager`` carries emits between processes, ``RedisManager`` does that over
Redis pub/sub. :class:`FanoutLayer` adds one more on top of either end of the chain: several broadcasts of
one socket event leave in one Redis round trip, and with connection-state recovery each is first appended to
the recovery log, which gives it the offset that travels as its last argument (what socket.io-client keeps).

- :class:`LocalFanout` (a ``Manager``): one process, no queue; broadcasts are delivered here.
- :class:`RedisFanout` (a ``RedisManager``): broadcasts go through the channel. A logged broadcast carries a
  ``host_id`` of its own, so this worker's listener delivers it too, in channel (that is, offset) order.

Both are passed to Flask-SocketIO as ``client_manager``. Broadcasts are published through the app's Redis
client in one pipeline rather than through ``RedisManager._publish``: that hook sends one message per round
trip and logs a failure instead of raising it, and a sender must learn that its events did not go out (its
ack says ``UNAVAILABLE``). python-socketio's own messages (remote disconnects, rooms) keep ``_publish``.

A publish that fails twice raises :class:`PublishError`, which says whether the recovery log holds the
packets; :meth:`FanoutLayer.broadcast_unlogged` sends such packets again without logging them twice.
"""
from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import redis
import socketio
from gevent.event import Event
from socketio.packet import Packet

from realtime.fanout import wire
from realtime.fanout.delivery import LocalDelivery, parse_emit, socketio_text
from realtime.fanout.room_index import IndexedRooms
from realtime.metrics import recorders as metrics
from realtime.stores.recovery import LoggedPacket, RecoveryStore
from realtime.stores.redis.checks import refused_write

logger = logging.getLogger(__name__)

#: Rooms of the listener self-probes (:mod:`realtime.cluster.probes`); no socket is ever in one.
PROBE_ROOM = "__realtime_probe__"

T = TypeVar("T")


class PublishError(redis.ConnectionError):
    """Events could not be fanned out, even after a retry; the sender's ack says ``UNAVAILABLE``.

    :param count: how many events were lost.
    :param logged: whether the recovery log holds them (with offsets no live socket has received).
    """

    def __init__(self, count: int, logged: bool) -> None:
        super().__init__(f"could not publish {count} event(s) to the message queue after a retry")
        self.logged = logged


class Emit(NamedTuple):
    """One shaped broadcast: event, payload as sent, target room (or sid) and a sid to leave out."""

    event: str
    payload: Any
    room: str
    skip_sid: str | None = None


class FanoutLayer(IndexedRooms):
    """Broadcast logic shared by both managers; each fills in :meth:`_send` and :meth:`_send_logged`.

    :param recovery: the recovery log; None when connection-state recovery is off.
    """

    #: python-socketio's ``emit`` and rooms of the manager class this layer is mixed into.
    emit: Callable[..., None]
    rooms: dict[str, dict[str, Any]]

    def __init__(self, recovery: RecoveryStore | None) -> None:
        IndexedRooms.__init__(self)
        self.recovery = recovery
        #: Publishes that still failed after a retry (also logged); /readyz reports them.
        self.failed_publishes = 0
        #: Writes broadcasts to this worker's sockets once the socket core attaches it (:meth:`attach`).
        self.delivery: LocalDelivery | None = None

    def attach(self, delivery: LocalDelivery) -> None:
        """Deliver to this worker's sockets through ``delivery`` (encoded once, direct writes)."""
        self.delivery = delivery

    def broadcast(self, emits: Sequence[Emit]) -> None:
        """Deliver ``emits`` on every worker, logged with offsets when recovery is on: one round trip
        (two with a separate queue Redis).

        :raises PublishError: when Redis could not be reached, even after a retry.
        """
        if not emits:
            return
        for emit in emits:
            metrics.record_emitted(emit.event)
        recovery = self.recovery
        if recovery is None:
            self._send(emits)
            return
        packets = []
        for emit in emits:
            payload_json = json.dumps(emit.payload, separators=(",", ":"), allow_nan=False)
            head, tail = wire.emit_halves(emit.event, payload_json, emit.room, emit.skip_sid, self._logged_host_id())
            packets.append(LoggedPacket(emit.event, emit.room, emit.skip_sid, payload_json, head, tail))
        self._send_logged(emits, packets, recovery)

    def broadcast_unlogged(self, emits: Sequence[Emit]) -> None:
        """Deliver ``emits`` on every worker with no log entry and no offset (packets the log already holds
        from an attempt whose publish failed: recovering sockets replay them from there)."""
        if emits:
            self._send(emits)

    def emit_here(self, sid: str, event: str, payload: Any) -> None:
        """Send ``event`` to a socket of this worker, without Redis (no offset: not a broadcast)."""
        metrics.record_emitted(event)
        self._deliver(event, payload, sid, None, fanout=False)

    def _deliver(self, event: str, data: Any, room: str, skip_sid: str | None, fanout: bool = True) -> None:
        """Write to this worker's sockets in ``room``, bypassing any queue (through :attr:`delivery`, else
        python-socketio's ``emit``); ``fanout``: a broadcast, observed by the fan-out metrics."""
        delivery = self.delivery
        text = socketio_text(event, data) if delivery is not None else None
        if delivery is None or text is None:
            self.emit(event, data, namespace=wire.NAMESPACE, room=room, skip_sid=skip_sid, ignore_queue=True)
            return
        delivery.deliver(self.rooms.get(wire.NAMESPACE, {}), text, room, skip_sid, observe=fanout)

    def _logged_host_id(self) -> str:
        return ""

    def _send(self, emits: Sequence[Emit]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must deliver unlogged broadcasts")

    def _send_logged(self, emits: Sequence[Emit], packets: list[LoggedPacket], recovery: RecoveryStore) -> None:
        raise NotImplementedError(f"{type(self).__name__} must deliver logged broadcasts")

    def _append(self, recovery: RecoveryStore, packets: list[LoggedPacket], channel: str | None) -> list[str]:
        return self._retrying(lambda: recovery.append(packets, channel), len(packets))

    def _retrying(self, action: Callable[[], T], count: int, logged: bool = False) -> T:
        """Run ``action``, once more after a Redis error; a second failure to connect raises
        :class:`PublishError` (``logged``: whether the recovery log already holds the events)."""
        try:
            return action()
        except redis.RedisError as exc:
            self._give_up_if_refused(exc, count)
            logger.warning("publish failed; retrying once", exc_info=True)
        try:
            return action()
        except redis.RedisError as exc:
            self._give_up_if_refused(exc, count)
            self.failed_publishes += count
            metrics.record_publish_failure(count)
            logger.exception("could not publish %d event(s) after a retry (%d failed so far)", count, self.failed_publishes)
            if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
                raise PublishError(count, logged) from exc
            raise

    def _give_up_if_refused(self, exc: redis.RedisError, count: int) -> None:
        if refused_write(exc):
            # A retry would be refused again at once; it takes an operator (memory, failover) to end.
            self.failed_publishes += count
            metrics.record_publish_failure(count)
            logger.warning(
                "could not publish %d event(s): redis refused the write (%s); %d failed so far",
                count,
                type(exc).__name__,
                self.failed_publishes,
            )
            raise exc


class LocalFanout(FanoutLayer, socketio.Manager):
    """One process: broadcasts are delivered to this process's sockets (logged first when recovery is on)."""

    def __init__(self, recovery: RecoveryStore | None) -> None:
        socketio.Manager.__init__(self)
        FanoutLayer.__init__(self, recovery)

    def _send(self, emits: Sequence[Emit]) -> None:
        for emit in emits:
            self._deliver(emit.event, emit.payload, emit.room, emit.skip_sid)

    def _send_logged(self, emits: Sequence[Emit], packets: list[LoggedPacket], recovery: RecoveryStore) -> None:
        offsets = self._append(recovery, packets, None)
        for emit, offset in zip(emits, offsets, strict=True):
            self._deliver(emit.event, (emit.payload, offset), emit.room, emit.skip_sid)


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
