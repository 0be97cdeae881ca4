"""The manager of many workers: broadcasts go through the Redis channel to every worker, this one included.

:class:`RedisFanout` is python-socketio's ``RedisManager`` with :class:`~realtime.fanout.manager.FanoutLayer`
on top. Broadcasts are published through the app's Redis client in one pipeline rather than through
``RedisManager._publish``: that hook sends one message per round trip and logs a failure instead of raising
it, and a sender must learn that its events did not go out (its ack says ``UNAVAILABLE``). python-socketio's
own messages (remote disconnects, rooms) keep ``_publish``.

A logged broadcast carries a ``host_id`` of its own, so this worker's listener delivers it too, in channel
order, which is offset order (each is published by the script that logs it): a socket that saw an offset has
seen every earlier one, which is what its recovery relies on. A chat message's script also returns the
offset logged just before the message's (``lua/chat_append.lua``). When that is the last logged broadcast
this worker delivered, nothing can come between the two, so the worker delivers the message at once, from the
sender's handler, and its listener skips the message's echo: a Redis hop less for the sockets here. When the
one before is not delivered here yet (another handler here has its reply but has not run since, or its echo
from another worker is on its way), the handler waits for it, up to ``EARLY_WAIT``, rather than leave its
message to the echo: a message arriving during a 500-socket broadcast used to go the echo's way one time in
five, and waited for the listener too.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis
import socketio
from gevent.event import Event
from socketio.packet import Packet

from realtime.fanout import wire
from realtime.fanout.delivery import QueuedEmit, packet_offset, parse_emit
from realtime.fanout.emits import Emit, StoredBroadcast
from realtime.fanout.manager import FanoutLayer
from realtime.identifiers import stream_id_before
from realtime.stores.recovery import RecoveryStore
from realtime.stores.recovery_packets import LoggedPacket

logger = logging.getLogger(__name__)

#: Rooms of the listener self-probes (:mod:`realtime.cluster.probes`); no socket is ever in one.
PROBE_ROOM = "__realtime_probe__"
#: Offsets delivered ahead of their echo that are remembered (echoes lost to a listener reconnect expire).
EARLY_LIMIT = 4096
#: Seconds a sender's handler waits for the broadcast logged before its message to be delivered here (past
#: that, the listener delivers the message from its echo).
EARLY_WAIT = 0.1


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
        #: The offset of the last logged broadcast delivered here in channel order (None: none yet).
        self.delivered_offset: str | None = None
        #: Offsets delivered at once by their sender's handler whose echo has not come back yet, in order.
        self._early: deque[str] = deque(maxlen=EARLY_LIMIT)
        #: Set (and replaced) each time ``delivered_offset`` moves.
        self._advanced = Event()

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

    def _send_stored(self, stored: StoredBroadcast, value: str, offset: str, after: str | None) -> None:
        if self._publish_with_log:
            if after is not None and self._next_after(after):
                # Every earlier logged broadcast is delivered here: this one may go now (module docstring).
                emit = stored.emit
                self._advance(offset)
                self._early.append(offset)
                # Written as each socket is reached: neither the rest of the room nor the sender's ack and the
                # handler's teardown hold a socket's frame.
                payload = (stored.payload_with(value), offset)
                self._deliver(emit.event, payload, emit.room, emit.skip_sid, now=True)
            return
        body = stored.channel_message(value, offset)
        self._retrying(lambda: self._publish_bodies([body]), 1, logged=True)

    def _next_after(self, after: str) -> bool:
        """Whether the broadcast logged at ``after`` is the last one delivered here, waiting up to
        ``EARLY_WAIT`` s for it to be; False at once when a later one was (the listener delivered it)."""
        deadline: float | None = None
        while True:
            delivered = self.delivered_offset
            if delivered == after:
                return True
            if delivered is not None and not stream_id_before(delivered, after):
                return False
            now = time.monotonic()
            if deadline is None:
                deadline = now + EARLY_WAIT
            elif now >= deadline:
                return False
            self._advanced.wait(deadline - now)

    def _advance(self, offset: str) -> None:
        """Note ``offset`` as the last logged broadcast delivered here; wake the handlers waiting on it."""
        self.delivered_offset = offset
        advanced, self._advanced = self._advanced, Event()
        advanced.set()

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
        offset = self._logged_offset(emit)
        if offset is not None and self._delivered_early(offset):
            return True
        if emit.host_id != self.host_id:
            try:
                delivery.deliver(self.rooms.get(wire.NAMESPACE, {}), emit.text, emit.room, emit.skip_sid)
            except Exception:
                logger.exception("delivering a broadcast from the channel failed")
        if offset is not None:
            self._advance(offset)
        return True

    @staticmethod
    def _logged_offset(emit: QueuedEmit) -> str | None:
        """The offset of a broadcast a worker logged (None for any other message)."""
        return packet_offset(emit.text) if emit.host_id is not None and emit.host_id.startswith("log:") else None

    def _delivered_early(self, offset: str) -> bool:
        """Whether the broadcast at ``offset`` was delivered by its sender's handler (its echo is dropped)."""
        early = self._early
        while early and stream_id_before(early[0], offset):
            early.popleft()  # its echo never came (the listener reconnected meanwhile)
        if early and early[0] == offset:
            early.popleft()
            return True
        return False

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
