"""Websockets read and written by the hub after their handshake (realtime.sockets.hub_websocket,
realtime.fanout.websocket_frames): the frame reader, the transport against a real socket pair, and
python-engineio's queue as the transport presents it."""
from __future__ import annotations

import functools
import gc
import os
import struct
import time
from types import SimpleNamespace
from typing import Any

import engineio.socket
import gevent
import greenlet
import pytest
import socketio
from engineio import packet as eio_packet
from gevent import socket as gsocket
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from realtime.fanout.direct_writes import DirectWrites
from realtime.fanout.websocket_frames import (
    CLOSE_INVALID_DATA,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameError,
    FrameReader,
    frame,
    text_frame,
)
from realtime.sockets import library_hooks
from realtime.sockets.hub_websocket import HubWebSocket
from realtime.sockets.websocket_handover import (
    FrameQueue,
    HandOffHandler,
    hand_over,
    own_socket,
)
from tests.helpers.greenlets import wait_until
from tests.helpers.raw_socketio import RawSocketIO


def masked(opcode: int, payload: bytes, final: bool = True, rsv: int = 0) -> bytes:
    """A client frame: masked, as RFC 6455 requires of clients."""
    mask = os.urandom(4)
    first, size = (0x80 if final else 0) | rsv | opcode, len(payload)
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def live_greenlets() -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet) and obj and not obj.dead)


# The frame reader ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 100_000])
def test_a_masked_text_message_of_any_length_comes_out_whole(size: int) -> None:
    text = ("é" * size)[:size]
    assert FrameReader(1 << 20).feed(masked(OPCODE_TEXT, text.encode())) == [(OPCODE_TEXT, text)]


def test_messages_come_out_the_same_whatever_the_chunks() -> None:
    stream = (masked(OPCODE_TEXT, b"42[\"a\"]") + masked(OPCODE_BINARY, b"\x00\x01", final=False)
              + masked(OPCODE_PING, b"p") + masked(OPCODE_CONTINUATION, b"\x02") + masked(OPCODE_TEXT, b"x" * 300))
    expected = [(OPCODE_TEXT, '42["a"]'), (OPCODE_PING, b"p"), (OPCODE_BINARY, b"\x00\x01\x02"), (OPCODE_TEXT, "x" * 300)]
    assert FrameReader(1000).feed(stream) == expected
    reader, out = FrameReader(1000), []
    for i in range(len(stream)):
        out += reader.feed(stream[i : i + 1])
    assert out == expected


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (masked(OPCODE_TEXT, b"x" * 1001)[:8], CLOSE_TOO_BIG),
        (masked(OPCODE_TEXT, b"x" * 600, final=False) + masked(OPCODE_CONTINUATION, b"x" * 500)[:8], CLOSE_TOO_BIG),
        (masked(OPCODE_TEXT, b"\xff\xfe"), CLOSE_INVALID_DATA),
        (masked(OPCODE_TEXT, b"x", rsv=0x40), CLOSE_PROTOCOL_ERROR),
        (masked(OPCODE_CONTINUATION, b"x"), CLOSE_PROTOCOL_ERROR),
        (masked(OPCODE_TEXT, b"x", final=False) + masked(OPCODE_TEXT, b"y"), CLOSE_PROTOCOL_ERROR),
        (masked(0x3, b"x"), CLOSE_PROTOCOL_ERROR),
        (masked(0xB, b"x"), CLOSE_PROTOCOL_ERROR),
        (masked(OPCODE_PING, b"x" * 126), CLOSE_PROTOCOL_ERROR),
        (masked(OPCODE_PING, b"x", final=False), CLOSE_PROTOCOL_ERROR),
    ],
    ids=["too-big-by-its-header", "fragments-too-big", "bad-utf8", "reserved-bits", "stray-continuation",
         "new-message-inside-fragments", "unknown-data-opcode", "unknown-control-opcode", "long-control",
         "fragmented-control"],
)
def test_a_protocol_violation_names_its_close_code(data: bytes, code: int) -> None:
    with pytest.raises(FrameError) as raised:
        FrameReader(1000).feed(data)
    assert raised.value.code == code


# The transport on a socket pair ----------------------------------------------------------------------


class FakeEio:
    """What the transport uses of python-engineio's Socket."""

    def __init__(self) -> None:
        self.sid = "e1"
        self.server = SimpleNamespace(
            max_http_buffer_size=1000,
            reason=SimpleNamespace(TRANSPORT_CLOSE="transport close", TRANSPORT_ERROR="transport error"),
        )
        self.received: list[Any] = []
        self.closes: list[Any] = []
        self.closing = self.closed = False
        self.queue: Any = None

    def receive(self, pkt: Any) -> None:
        self.received.append((pkt.packet_type, pkt.data))

    def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if not (self.closing or self.closed):
            self.closing = True
            self.closes.append(reason)
            self.queue.put(None)
            self.closed = True


@pytest.fixture
def served() -> Any:
    """A transport on one end of a socket pair, the client end, the Engine.IO socket and what overflowed."""
    ours, client = gsocket.socketpair()
    raw = own_socket(ours)
    ours.close()
    eio, overflowed = FakeEio(), []
    writes = DirectWrites()
    transport = HubWebSocket(eio, raw, writes, 1000, 3, overflowed.append)
    eio.queue = FrameQueue(transport)
    writes.register(eio.sid, transport)
    transport.start(b"")
    yield SimpleNamespace(transport=transport, client=client, eio=eio, writes=writes, overflowed=overflowed)
    transport.abort()
    client.close()


def read_all(client: Any, size: int, timeout: float = 5.0) -> bytes:
    data = b""
    with gevent.Timeout(timeout):
        while len(data) < size:
            chunk = client.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return data


def test_packets_reach_engineio_in_order(served: Any) -> None:
    served.client.sendall(masked(OPCODE_TEXT, b"4first") + masked(OPCODE_TEXT, b"4second") + masked(OPCODE_TEXT, b"3"))
    wait_until(lambda: len(served.eio.received) == 3)
    assert served.eio.received == [(eio_packet.MESSAGE, "first"), (eio_packet.MESSAGE, "second"), (eio_packet.PONG, "")]


def test_a_ping_frame_is_answered_with_its_payload(served: Any) -> None:
    served.client.sendall(masked(OPCODE_PING, b"hi"))
    assert read_all(served.client, 4) == frame(OPCODE_PONG, b"hi")


@pytest.mark.parametrize("how", ["close-frame", "eof", "protocol-error", "undecodable"])
def test_the_client_ending_the_connection_ends_the_session(served: Any, how: str) -> None:
    if how == "close-frame":
        served.client.sendall(masked(OPCODE_CLOSE, struct.pack("!H", 1000)))
    elif how == "eof":
        served.client.shutdown(gsocket.SHUT_WR)
    elif how == "protocol-error":
        served.client.sendall(masked(OPCODE_TEXT, b"x", rsv=0x20))
    else:
        served.client.sendall(masked(OPCODE_TEXT, b""))
    wait_until(lambda: served.transport.closed)
    expected = "transport error" if how == "undecodable" else "transport close"
    assert served.eio.closes == [expected]
    assert served.writes.get("e1") is None
    tail = read_all(served.client, 1 << 20)
    assert how == "eof" or tail[:1] == b"\x88", tail[:8]


def test_frames_of_one_turn_go_out_in_one_write_in_order(served: Any) -> None:
    frames = [text_frame(f"42[\"m{n}\"]".encode()) for n in range(3)]
    for data in frames:
        assert served.writes.write("e1", data)
    assert served.transport.backlog == 3
    assert read_all(served.client, len(b"".join(frames))) == b"".join(frames)
    assert served.transport.backlog == 0


def test_what_the_kernel_does_not_take_waits_for_the_write_watcher_and_keeps_its_order(served: Any) -> None:
    big, small = text_frame(b"a" * 3_000_000), text_frame(b"4next")
    served.writes.write("e1", big)
    gevent.sleep(0)
    served.writes.write("e1", small)
    received = read_all(served.client, len(big) + len(small), timeout=10)
    assert received == big + small
    wait_until(lambda: served.transport.backlog == 0)


def test_a_frame_written_now_goes_out_before_the_hub_runs_and_after_what_was_given_before(served: Any) -> None:
    first, second, third = (text_frame(f"42[\"m{n}\"]".encode()) for n in range(3))
    assert served.writes.write("e1", first, now=True)
    assert served.transport.backlog == 0, "taken by the kernel in the call"
    assert served.client.recv(1 << 16) == first
    served.writes.write("e1", second)
    served.writes.write("e1", third, now=True)
    assert served.transport.backlog == 0
    assert served.client.recv(1 << 16) == second + third, "written in one go, in order"
    big = text_frame(b"c" * 3_000_000)
    served.writes.write("e1", big, now=True)
    served.writes.write("e1", first, now=True)
    assert read_all(served.client, len(big) + len(first), timeout=10) == big + first, "what waits keeps its order"


def test_a_socket_that_does_not_read_is_reported_as_a_slow_consumer(served: Any) -> None:
    for _ in range(6):
        served.writes.write("e1", text_frame(b"b" * 2_000_000))
        gevent.sleep(0)
    assert served.overflowed and set(served.overflowed) == {"e1"}


def test_the_queue_writes_packets_as_frames_and_closes_after_them(served: Any) -> None:
    served.eio.queue.put(eio_packet.Packet(eio_packet.MESSAGE, "2[\"x\"]"))
    served.eio.queue.put(eio_packet.Packet(eio_packet.MESSAGE, b"\x01\x02"))
    served.eio.queue.put(None)
    served.eio.queue.join()
    assert served.transport.closed
    expected = text_frame(b'42["x"]') + frame(OPCODE_BINARY, b"\x01\x02") + frame(OPCODE_CLOSE, struct.pack("!H", 1000))
    assert read_all(served.client, len(expected) + 1) == expected
    assert served.writes.write("e1", text_frame(b"4late")) is False


# Handed over by a real gevent.pywsgi server ----------------------------------------------------------

#: Websockets per test: enough that one greenlet per socket cannot hide among the process's own.
SOCKETS = 40


@pytest.fixture
def handing_over() -> Any:
    """python-socketio over gevent.pywsgi with :class:`HandOffHandler`, websockets handed to the hub, pings on
    hub timers (as in a gunicorn worker)."""
    library_hooks.install_transport_guards(1_000_000)
    schedule_ping = engineio.socket.Socket.schedule_ping
    library_hooks.install_ping_timers()
    sio = socketio.Server(async_mode="gevent", transports=["websocket"], ping_interval=60)
    writes, overflowed = DirectWrites(), []
    sio.eio.realtime_hand_over = functools.partial(hand_over, writes=writes, max_backlog=100,
                                                   overflow=overflowed.append)
    sio.on("echo", lambda sid, data: data)
    server = WSGIServer(("127.0.0.1", 0), socketio.WSGIApp(sio), handler_class=HandOffHandler, log=None,
                        error_log=None, spawn=Pool(100))
    server.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", sio=sio, writes=writes, server=server)
    server.stop(timeout=1)
    engineio.socket.Socket.schedule_ping = schedule_ping  # type: ignore[method-assign]


def test_handed_over_websockets_hold_no_greenlet_and_still_talk(handing_over: Any) -> None:
    before = live_greenlets()
    clients = [RawSocketIO.open(handing_over.url) for _ in range(SOCKETS)]
    try:
        for client in clients:
            assert client.connect().is_connect
        wait_until(lambda: len(handing_over.writes) == SOCKETS)
        gevent.sleep(0.2)
        assert live_greenlets() - before < SOCKETS / 4
        assert handing_over.server.pool.free_count() == handing_over.server.pool.size - 1, "one pool holder"
        for n, client in enumerate(clients):
            client.emit("echo", {"n": n, "pad": "é" * 70_000}, ack_id=n + 1)
        for n, client in enumerate(clients):
            assert client.ack(n + 1) == [{"n": n, "pad": "é" * 70_000}]
        handing_over.sio.emit("news", {"all": True})
        for client in clients:
            assert client.expect(lambda p: p.is_event("news")).data == ["news", {"all": True}]
    finally:
        for client in clients:
            client.close()
    wait_until(lambda: len(handing_over.writes) == 0 and not handing_over.sio.eio.sockets)
    wait_until(lambda: handing_over.server.pool.free_count() == handing_over.server.pool.size)


def test_a_handed_over_websocket_is_pinged_from_the_hub_without_a_greenlet(
    handing_over: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its PING frame is queued by the timer itself: no greenlet per ping (10,000 sockets ping 400 times a
    second at the default interval), and the client answers as before."""
    eio = handing_over.sio.eio
    eio.ping_interval = 0.2
    spawned: list[Any] = []
    real_start = eio.start_background_task
    monkeypatch.setattr(eio, "start_background_task",
                        lambda target, *args: spawned.append(target) or real_start(target, *args))
    clients = [RawSocketIO.open(handing_over.url) for _ in range(5)]
    try:
        for client in clients:
            assert client.connect().is_connect
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(client.pings_answered >= 2 for client in clients):
            for client in clients:
                client.recv(timeout=0.05)
        assert all(client.pings_answered >= 2 for client in clients), "pinged, answered, pinged again"
        assert library_hooks._send_ping not in spawned
    finally:
        for client in clients:
            client.close()


def test_a_server_disconnect_closes_a_handed_over_websocket(handing_over: Any) -> None:
    client = RawSocketIO.open(handing_over.url)
    try:
        assert client.connect().is_connect
        wait_until(lambda: len(handing_over.writes) == 1)
        (eio_sid,) = handing_over.sio.eio.sockets
        handing_over.sio.eio.disconnect(eio_sid)
        assert client.closed_within(5.0)
    finally:
        client.close()
    assert len(handing_over.writes) == 0
