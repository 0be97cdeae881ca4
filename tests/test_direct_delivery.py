"""Broadcasts encoded once and written straight to websockets (realtime.fanout.delivery, .direct_writes)."""
from __future__ import annotations

import json
import os
from typing import Any

import gevent
import pytest
from geventwebsocket.websocket import Header
from socketio import packet as sio_packet

from realtime.fanout import wire
from realtime.fanout.delivery import (
    LocalDelivery,
    offset_age,
    parse_emit,
    socketio_text,
)
from realtime.fanout.direct_writes import DirectWrites, text_frame
from realtime.fanout.websocket_frames import unmask
from realtime.sockets import packet_json

PAYLOADS = [
    {"roomId": "lobby", "content": "hé \"quoted\" ,\"binary\": [1]", "n": 3},
    ["a", 1, None, True],
    "text",
    None,
    ({"roomId": "r"}, "1700000000000-0"),
]


@pytest.mark.parametrize("data", PAYLOADS)
def test_socketio_text_is_what_python_socketio_encodes(data: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sio_packet.Packet, "json", packet_json)  # as the server sets it (create_app)
    args = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
    expected = sio_packet.Packet(sio_packet.EVENT, namespace="/", data=["chat:new_message", *args]).encode()

    assert socketio_text("chat:new_message", data) == expected


def test_socketio_text_refuses_what_json_cannot_carry() -> None:
    assert socketio_text("e", {"when": object()}) is None


@pytest.mark.parametrize("data", PAYLOADS)
@pytest.mark.parametrize("skip_sid", [None, "sid-1"])
def test_parse_emit_slices_the_packet_out_of_a_queue_message(data: Any, skip_sid: str | None) -> None:
    args = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
    body = wire.encode(wire.emit_message("chat:new_message", args, "group:lobby", skip_sid, "host"))

    parsed = parse_emit(body.encode())

    assert parsed is not None
    assert (parsed.room, parsed.skip_sid, parsed.host_id) == ("group:lobby", skip_sid, "host")
    assert parsed.text == socketio_text("chat:new_message", data)


def test_parse_emit_reads_a_logged_message_with_its_offset() -> None:
    payload = {"content": ',"binary":false,"room":"x"'}
    head, tail = wire.emit_halves("chat:new_message", json.dumps(payload, separators=(",", ":")), "group:a", None, "log:h")

    parsed = parse_emit(head + "1700000000123-4" + tail)

    assert parsed is not None and parsed.room == "group:a" and parsed.host_id == "log:h"
    assert json.loads(parsed.text[1:]) == ["chat:new_message", payload, "1700000000123-4"]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"method": "emit", "event": "e", "data": [1], "binary": False, "namespace": "/", "room": "r"}),
        json.dumps({"method": "disconnect", "sid": "s", "namespace": "/"}, separators=(",", ":")),
        wire.encode({**wire.emit_message("e", [1], "r", None, "h"), "binary": True}),
        wire.encode({**wire.emit_message("e", [1], "r", None, "h"), "callback": ["s", "/", 1]}),
        wire.encode({**wire.emit_message("e", [1], "r", None, "h"), "namespace": "/chat"}),
        wire.encode({**wire.emit_message("e", [1], "r", None, "h"), "skip_sid": ["a", "b"]}),
        '{"method":"emit","event":"e","data":[1],"binary":fals',
        b"\xff\xfe",
    ],
    ids=["library-separators", "disconnect", "binary", "callback", "namespace", "skip-list", "truncated", "bytes"],
)
def test_parse_emit_leaves_everything_else_to_the_library(body: Any) -> None:
    try:
        parsed = parse_emit(body)
    except UnicodeDecodeError:
        parsed = None
    assert parsed is None


def test_offset_age_reads_the_append_time_of_a_logged_packet() -> None:
    text = socketio_text("e", ({"a": 1}, "1700000000000-3"))
    assert text is not None
    assert offset_age(text, 1700000000.250) == pytest.approx(0.25)
    assert offset_age(socketio_text("e", {"a": "1700000000000-3"}) or "", 1700000000.5) is None


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_matches_gevent_websockets_header(size: int) -> None:
    payload = b"x" * size
    assert text_frame(payload) == Header.encode_header(True, 0x1, b"", size, 0) + payload


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1000, 65537])
def test_unmask_matches_gevent_websockets_byte_loop(size: int) -> None:
    payload, mask = os.urandom(size), os.urandom(4)
    header = Header(length=size)
    header.mask = mask
    assert unmask(payload, mask) == bytes(header.unmask_payload(payload))


class FakeTransport:
    """A websocket as direct writes see it (realtime.sockets.hub_websocket.HubWebSocket)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.flushes = 0
        self.aborted = False

    def send_frame(self, data: bytes) -> bool:
        self.frames.append(data)
        return True

    def send_now(self, data: bytes) -> bool:
        self.frames.append(data)
        self.flushes += 1
        return True

    def flush(self) -> None:
        self.flushes += 1

    def abort(self) -> None:
        self.aborted = True


def test_a_frame_goes_to_the_registered_transport_and_nowhere_else() -> None:
    writes, transport = DirectWrites(), FakeTransport()
    writes.register("e1", transport)

    assert writes.write("e1", text_frame(b'42["x"]'))
    assert writes.write("e2", text_frame(b'42["x"]')) is False
    assert transport.frames == [text_frame(b'42["x"]')]
    assert len(writes) == 1 and writes.get("e1") is transport and writes.get("e2") is None


def test_the_sockets_scheduled_in_one_turn_are_flushed_together_when_the_hub_runs() -> None:
    writes, first, second = DirectWrites(), FakeTransport(), FakeTransport()
    writes.schedule(first)
    writes.schedule(second)
    assert (first.flushes, second.flushes) == (0, 0), "nothing is written before the hub's next turn"
    gevent.sleep(0)
    assert (first.flushes, second.flushes) == (1, 1)
    writes.schedule(first)
    gevent.sleep(0)
    assert (first.flushes, second.flushes) == (2, 1)


def test_a_frame_written_now_is_flushed_as_its_socket_is_reached() -> None:
    writes, first, second = DirectWrites(), FakeTransport(), FakeTransport()
    writes.register("e1", first)
    writes.register("e2", second)
    delivery = LocalDelivery(writes, lambda sid: False, lambda sid, pkt: None)
    rooms = {"group:a": {"s1": "e1", "s2": "e2"}}

    delivery.deliver(rooms, '2["e",1]', "group:a", None, now=True)
    assert (first.flushes, second.flushes) == (1, 1), "each socket written as it is reached"
    delivery.deliver(rooms, '2["e",2]', "group:a", None)
    assert (first.flushes, second.flushes) == (1, 1), "otherwise at the hub's next turn"
    assert first.frames == second.frames == [text_frame(b'42["e",1]'), text_frame(b'42["e",2]')]


def test_a_transport_unregisters_only_itself_and_can_be_aborted() -> None:
    writes, old, new = DirectWrites(), FakeTransport(), FakeTransport()
    writes.register("e1", old)
    writes.register("e1", new)
    writes.unregister("e1", old)
    assert writes.get("e1") is new
    assert writes.abort("e1") and new.aborted
    assert writes.abort("e2") is False
    writes.unregister("e1")
    assert len(writes) == 0


def test_delivery_writes_once_per_member_and_hands_the_rest_to_the_library() -> None:
    writes, transport = DirectWrites(), FakeTransport()
    writes.register("e-direct", transport)
    intercepted, queued = {"e-held"}, []
    delivery = LocalDelivery(writes, intercepted.__contains__, lambda sid, pkt: queued.append((sid, pkt.data)))
    rooms = {"group:a": {"s1": "e-direct", "s2": "e-held", "s3": "e-polling", "s4": "e-skipped"}}

    count = delivery.deliver(rooms, '2["e",1]', "group:a", "s4")

    assert count == 3
    assert transport.frames == [text_frame(b'42["e",1]')]
    assert queued == [("e-held", '2["e",1]'), ("e-polling", '2["e",1]')]
    assert delivery.deliver(rooms, '2["e",1]', "group:empty", None) == 0


def test_sockets_are_asked_about_recoveries_only_while_one_runs() -> None:
    writes, transport = DirectWrites(), FakeTransport()
    writes.register("e1", transport)
    asked: list[str] = []
    running = [False]
    delivery = LocalDelivery(writes, lambda sid: asked.append(sid) or True, lambda sid, pkt: None, lambda: running[0])
    rooms = {"group:a": {"s1": "e1"}}

    delivery.deliver(rooms, '2["e",1]', "group:a", None)
    assert (asked, transport.frames) == ([], [text_frame(b'42["e",1]')]), "no recovery: straight to the socket"
    running[0] = True
    delivery.deliver(rooms, '2["e",2]', "group:a", None)
    assert asked == ["e1"] and delivery.queued == 1, "a recovering socket's packets go through the core"
