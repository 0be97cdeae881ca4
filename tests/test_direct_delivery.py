"""Broadcasts encoded once and written straight to websockets (realtime.fanout.delivery, .direct_writes)."""
from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any

import gevent
import pytest
from gevent import socket as gsocket
from gevent.lock import Semaphore
from geventwebsocket.websocket import Header
from socketio import packet as sio_packet

from realtime.fanout import wire
from realtime.fanout.delivery import LocalDelivery, offset_age, parse_emit, socketio_text
from realtime.fanout.direct_writes import DirectWrites, text_frame
from realtime.sockets.transport_guards import unmask

PAYLOADS = [
    {"roomId": "lobby", "content": "hé \"quoted\" ,\"binary\": [1]", "n": 3},
    ["a", 1, None, True],
    "text",
    None,
    ({"roomId": "r"}, "1700000000000-0"),
]


@pytest.mark.parametrize("data", PAYLOADS)
def test_socketio_text_is_what_python_socketio_encodes(data: Any) -> None:
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


class FakeEio:
    """An Engine.IO socket as direct writes see it."""

    def __init__(self) -> None:
        self.upgraded, self.upgrading, self.closing, self.closed = True, False, False, False
        self.queue = gevent.queue.Queue()


@pytest.fixture
def pair() -> Any:
    server, client = gsocket.socketpair()
    yield server, client
    server.close()
    client.close()


def websocket_on(sock: Any) -> Any:
    return SimpleNamespace(write_lock=Semaphore(1), handler=SimpleNamespace(socket=sock))


def test_a_frame_goes_straight_to_an_idle_websocket(pair: Any) -> None:
    server, client = pair
    writes, eio = DirectWrites(), FakeEio()
    writes.register("e1", eio, websocket_on(server))

    assert writes.write("e1", text_frame(b"42[\"x\"]"))
    writes.flush()
    assert client.recv(100) == text_frame(b"42[\"x\"]")


def test_the_frames_of_one_round_go_out_together_in_order(pair: Any) -> None:
    server, client = pair
    writes, eio = DirectWrites(), FakeEio()
    websocket = websocket_on(server)
    writes.register("e1", eio, websocket)
    frames = [text_frame(f"42[\"m{n}\"]".encode()) for n in range(5)]

    assert all(writes.write("e1", frame) for frame in frames)
    assert websocket.write_lock.locked(), "the writer greenlet's frames wait for the batch"
    gevent.sleep(0)

    assert client.recv(1000) == b"".join(frames)
    assert not websocket.write_lock.locked()


@pytest.mark.parametrize("state", ["queued", "locked", "upgrading", "closing", "polling", "unknown"])
def test_the_library_path_keeps_order_when_anything_could_get_in_between(pair: Any, state: str) -> None:
    server, _ = pair
    writes, eio = DirectWrites(), FakeEio()
    websocket = websocket_on(server)
    writes.register("e1", eio, websocket)
    if state == "queued":
        eio.queue.put("earlier packet")
    elif state == "locked":
        websocket.write_lock.acquire()
    elif state == "upgrading":
        eio.upgrading = True
    elif state == "closing":
        eio.closing = True
    elif state == "polling":
        eio.upgraded = False

    assert writes.write("e2" if state == "unknown" else "e1", text_frame(b"4x")) is False


def test_a_frame_the_kernel_takes_in_part_is_finished_before_the_next_write(pair: Any) -> None:
    server, client = pair
    writes, eio = DirectWrites(), FakeEio()
    websocket = websocket_on(server)
    writes.register("e1", eio, websocket)
    big = text_frame(b"a" * 3_000_000)

    assert writes.write("e1", big)
    writes.flush()
    assert websocket.write_lock.locked(), "the rest is being written: the writer greenlet must wait"
    assert writes.write("e1", text_frame(b"4next")) is False
    received = bytearray()
    while len(received) < len(big):
        received += client.recv(1 << 20)
    gevent.sleep(0)
    assert bytes(received) == big
    assert not websocket.write_lock.locked()


def test_a_tls_socket_is_never_written_directly() -> None:
    tls = SimpleNamespace(_sock=SimpleNamespace(send=lambda data: len(data)))
    writes = DirectWrites()
    writes.register("e1", FakeEio(), websocket_on(tls))
    assert len(writes) == 0


def test_delivery_writes_once_per_member_and_hands_the_rest_to_the_library(pair: Any) -> None:
    server, client = pair
    writes = DirectWrites()
    writes.register("e-direct", FakeEio(), websocket_on(server))
    intercepted, queued = {"e-held"}, []
    delivery = LocalDelivery(writes, intercepted.__contains__, lambda sid, pkt: queued.append((sid, pkt.data)))
    rooms = {"group:a": {"s1": "e-direct", "s2": "e-held", "s3": "e-polling", "s4": "e-skipped"}}

    count = delivery.deliver(rooms, '2["e",1]', "group:a", "s4")
    writes.flush()

    assert count == 3
    assert client.recv(100) == text_frame(b'42["e",1]')
    assert queued == [("e-held", '2["e",1]'), ("e-polling", '2["e",1]')]
    assert delivery.deliver(rooms, '2["e",1]', "group:empty", None) == 0
