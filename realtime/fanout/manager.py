"""python-socketio client managers that own this server's broadcasts: encoding, offsets, the log, publishing.

python-socketio's manager chain adds one concern per layer: ``Manager`` keeps this process's rooms and
writes to its sockets, ``PubSubManager`` carries emits between processes, ``RedisManager`` does that over
Redis pub/sub. :class:`FanoutLayer` adds one more on top of either end of the chain: several broadcasts of
one socket event leave in one Redis round trip, and with connection-state recovery each is first appended to
the recovery log, which gives it the offset that travels as its last argument (what socket.io-client keeps).

- :class:`LocalFanout` (a ``Manager``): one process, no queue; broadcasts are delivered here.
- :class:`~realtime.fanout.redis_fanout.RedisFanout` (a ``RedisManager``): broadcasts go through the channel.

Both are passed to Flask-SocketIO as ``client_manager``. A broadcast whose id its store assigns (a chat
message) is logged, and published, by that store's script: :meth:`FanoutLayer.prepare_stored` before the
write, :meth:`FanoutLayer.complete_stored` after it.

A publish that fails twice raises :class:`PublishError`, which says whether the recovery log holds the
packets; :meth:`FanoutLayer.broadcast_unlogged` sends such packets again without logging them twice.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
import socketio

from realtime.fanout import wire
from realtime.fanout.delivery import LocalDelivery, socketio_text
from realtime.fanout.emits import Emit, StoredBroadcast, id_packet
from realtime.fanout.room_index import IndexedRooms
from realtime.metrics import recorders as metrics
from realtime.stores.recovery import RecoveryStore
from realtime.stores.recovery_packets import LoggedPacket
from realtime.stores.redis.checks import refused_write

logger = logging.getLogger(__name__)

T = TypeVar("T")


class PublishError(redis.ConnectionError):
    """Events could not be fanned out, even after a retry; the sender's ack says ``UNAVAILABLE``.

    :param count: how many events were lost.
    :param logged: whether the recovery log holds them (with offsets no live socket has received).
    """

    def __init__(self, count: int, logged: bool) -> None:
        super().__init__(f"could not publish {count} event(s) to the message queue after a retry")
        self.logged = logged


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

    def prepare_stored(self, emit: Emit, id_field: str) -> StoredBroadcast | None:
        """Prepare ``emit``, whose payload gets its ``id_field`` from the store that writes it, to be logged
        (and published, when the log lives in the queue's Redis) by that store's script in its own round
        trip; None when the log cannot be written so: then :meth:`broadcast` the payload with its id."""
        recovery = self.recovery
        packet = id_packet(emit, id_field, self._logged_host_id()) if recovery is not None else None
        if recovery is None or packet is None:
            return None
        log = recovery.log_in_script(packet, self._log_channel())
        return None if log is None else StoredBroadcast(emit, id_field, packet, log)

    def complete_stored(self, stored: StoredBroadcast, value: str, offset: str, after: str | None = None) -> None:
        """Deliver a prepared broadcast that its store logged with id ``value`` at ``offset``, right after
        ``after`` in the log (None: unknown).

        :raises PublishError: when it must still be published and Redis could not be reached (it is logged).
        """
        metrics.record_emitted(stored.emit.event)
        self._send_stored(stored, value, offset, after)

    def broadcast_unlogged(self, emits: Sequence[Emit]) -> None:
        """Deliver ``emits`` on every worker with no log entry and no offset (packets the log already holds
        from an attempt whose publish failed: recovering sockets replay them from there)."""
        if emits:
            self._send(emits)

    def emit_here(self, sid: str, event: str, payload: Any) -> None:
        """Send ``event`` to a socket of this worker, without Redis (no offset: not a broadcast)."""
        metrics.record_emitted(event)
        self._deliver(event, payload, sid, None, fanout=False)

    def _deliver(
        self, event: str, data: Any, room: str, skip_sid: str | None, fanout: bool = True, now: bool = False
    ) -> None:
        """Write to this worker's sockets in ``room``, bypassing any queue (through :attr:`delivery`, else
        python-socketio's ``emit``); ``fanout``: a broadcast, observed by the fan-out metrics; ``now``: each
        socket's frames are written as it is reached (:meth:`LocalDelivery.deliver`)."""
        delivery = self.delivery
        text = socketio_text(event, data) if delivery is not None else None
        if delivery is None or text is None:
            self.emit(event, data, namespace=wire.NAMESPACE, room=room, skip_sid=skip_sid, ignore_queue=True)
            return
        delivery.deliver(self.rooms.get(wire.NAMESPACE, {}), text, room, skip_sid, observe=fanout, now=now)

    def _logged_host_id(self) -> str:
        return ""

    def _send(self, emits: Sequence[Emit]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must deliver unlogged broadcasts")

    def _send_logged(self, emits: Sequence[Emit], packets: list[LoggedPacket], recovery: RecoveryStore) -> None:
        raise NotImplementedError(f"{type(self).__name__} must deliver logged broadcasts")

    def _log_channel(self) -> str | None:
        """Where a store's script publishes what it logs (None: not there)."""
        return None

    def _send_stored(self, stored: StoredBroadcast, value: str, offset: str, after: str | None) -> None:
        raise NotImplementedError(f"{type(self).__name__} must deliver stored broadcasts")

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

    def _send_stored(self, stored: StoredBroadcast, value: str, offset: str, after: str | None) -> None:
        emit = stored.emit
        self._deliver(emit.event, (stored.payload_with(value), offset), emit.room, emit.skip_sid)
