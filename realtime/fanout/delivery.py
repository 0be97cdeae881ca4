"""Delivering a broadcast to this worker's sockets: encoded once, written once per recipient.

python-socketio's ``Manager.emit`` encodes a broadcast once, then hands the same Engine.IO packet to each
recipient's queue. :class:`LocalDelivery` goes further: the Socket.IO text becomes one WebSocket frame whose
bytes go to every recipient (:mod:`realtime.fanout.direct_writes`); a recipient that cannot take it now, or
whose packets the socket core must see (a recovering socket's held or replayed packets), gets the packet
through python-socketio's ``_send_eio_packet`` as before.

A queue message of the channel is read the same way without decoding its payload: :func:`parse_emit` slices
the Socket.IO text out of the message's JSON (:mod:`realtime.fanout.wire` writes ``data`` before the fields
the listener needs), and a message for a room with no socket here is dropped before anything is built.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from engineio import packet as eio_packet

from realtime import json_text
from realtime.fanout import wire
from realtime.fanout.direct_writes import DirectWrites, text_frame
from realtime.metrics import recorders as metrics

_EMIT_HEAD = '{"method":"emit","event":'
_DATA_KEY = ',"data":'
_BINARY_KEY = ',"binary":'
_decode_string = json.JSONDecoder().raw_decode


class QueuedEmit(NamedTuple):
    """An emit read from the channel: its room, the sid to leave out, the sender's host id, the packet text."""

    room: str
    skip_sid: str | None
    host_id: str | None
    text: str


def socketio_text(event: str, data: Any) -> str | None:
    """The Socket.IO EVENT packet (default namespace) python-socketio sends for ``emit(event, data)``: a tuple
    is several arguments, None none. None when the data is not plain JSON (the library's path handles it)."""
    if isinstance(data, tuple):
        args = [event, *data]
    elif data is None:
        args = [event]
    else:
        args = [event, data]
    try:
        return "2" + json_text.dumps(args)
    except (TypeError, ValueError):
        return None


def parse_emit(body: bytes | str) -> QueuedEmit | None:
    """Read an emit written by :mod:`realtime.fanout.wire` without decoding its payload; None for any other
    message (python-socketio's own, binary, with a callback, another namespace), which the library reads."""
    text = body.decode() if isinstance(body, (bytes, bytearray)) else body
    if not text.startswith(_EMIT_HEAD):
        return None
    cut = text.rfind(_BINARY_KEY)
    if cut < 0:
        return None
    try:
        event, after_event = _decode_string(text, len(_EMIT_HEAD))
        fields = json.loads("{" + text[cut + 1 :])
    except ValueError:
        return None
    if (
        not isinstance(event, str)
        or not text.startswith(_DATA_KEY, after_event)
        or fields.get("binary") is not False
        or fields.get("callback") is not None
        or fields.get("namespace") != wire.NAMESPACE
        or not isinstance(fields.get("room"), str)
    ):
        return None
    skip_sid = fields.get("skip_sid")
    if skip_sid is not None and not isinstance(skip_sid, str):
        return None
    data = text[after_event + len(_DATA_KEY) : cut]
    if not (data.startswith("[") and data.endswith("]")):
        return None
    event_json = text[len(_EMIT_HEAD) : after_event]
    packet = "2[" + event_json + ("]" if data == "[]" else "," + data[1:])
    return QueuedEmit(fields["room"], skip_sid, fields.get("host_id"), packet)


def packet_offset(packet_text: str) -> str | None:
    """The last argument of a Socket.IO EVENT packet's text when it is a string: a logged broadcast's offset
    (a Redis stream id or the memory log's ``ms-seq``). None when the last argument is not a string."""
    if not packet_text.endswith('"]'):
        return None
    start = packet_text.rfind('"', 0, len(packet_text) - 2)
    if start < 0:
        return None
    return packet_text[start + 1 : -2]


def offset_age(packet_text: str, now: float) -> float | None:
    """Seconds since a logged broadcast was appended: its offset starts with the append time in milliseconds.
    None for a packet without one."""
    offset = packet_offset(packet_text)
    millis, dash, _ = (offset or "").partition("-")
    if not dash or not millis.isdigit() or len(millis) != 13:
        return None
    return max(0.0, now - int(millis) / 1000)


class LocalDelivery:
    """Writes a Socket.IO packet to this worker's sockets in a room (module docstring).

    :param direct: the websockets that take direct writes.
    :param intercepts: whether the socket core must see the packets of an Engine.IO sid (recovering sockets).
    :param send_packet: python-socketio's ``_send_eio_packet`` (queue and writer greenlet, the core's hooks).
    """

    def __init__(
        self,
        direct: DirectWrites,
        intercepts: Callable[[str], bool],
        send_packet: Callable[[str, Any], None],
        intercepting: Callable[[], bool] | None = None,
    ) -> None:
        self.direct = direct
        self._intercepts = intercepts
        self._send_packet = send_packet
        self._intercepting = intercepting
        #: Broadcasts delivered, sockets they went to, and packets among those that took the library's queue.
        self.frames = 0
        self.recipients = 0
        self.queued = 0

    def deliver(
        self,
        rooms: Mapping[str, Any],
        text: str,
        room: str,
        skip_sid: str | None,
        observe: bool = True,
        now: bool = False,
    ) -> int:
        """Send ``text`` to the sockets in ``room`` of the namespace's ``rooms``, except ``skip_sid``;
        ``observe``: a broadcast, whose recipients and (logged) delivery latency the metrics observe;
        ``now``: write to each socket as it is reached, rather than when the hub next runs its callbacks
        (the first sockets of a big room do not wait for the last ones to be reached).

        :returns: how many sockets it went to.
        """
        members = rooms.get(room)
        if not members:
            return 0
        # A copy: a write that fails can take a socket out of the room while the loop runs.
        recipients = list(members.values())
        if skip_sid is not None:
            skipped = members.get(skip_sid)
            if skipped is not None:
                recipients.remove(skipped)
        if not recipients:
            return 0
        message = "4" + text
        frame = text_frame(message.encode())
        transports, queued = self.direct.transports, None
        # Which sockets a recovery intercepts is asked per socket only while some recovery runs.
        intercepts = self._intercepts if self._intercepting is None or self._intercepting() else None
        for eio_sid in recipients:
            transport = transports.get(eio_sid)
            if (
                transport is None
                or (intercepts is not None and intercepts(eio_sid))
                or not (transport.send_now(frame) if now else transport.send_frame(frame))
            ):
                if queued is None:
                    queued = eio_packet.Packet(eio_packet.MESSAGE, text)
                self._send_packet(eio_sid, queued)
                self.queued += 1
        count = len(recipients)
        self.frames += 1
        self.recipients += count
        if observe:
            metrics.record_fanout(count)
            age = offset_age(text, time.time())
            if age is not None:
                metrics.record_delivery_latency(age)
        return count
