"""Pins of the library behaviour this server relies on (``setup.cfg`` pins the versions these cover).

The fan-out layer (:mod:`realtime.fanout`) relies on python-socketio's queue-message format; the overrides in
:mod:`realtime.sockets.library_hooks` rely on which private method python-socketio, python-engineio and
gevent-websocket call, when, and with what. Each test names what it pins; a release that changes it fails
here, not in delivery.
"""
from __future__ import annotations

import inspect
import json
import logging
from types import SimpleNamespace
from typing import Any

import engineio
import engineio.socket
import flask_socketio
import gevent.pywsgi
import geventwebsocket.handler
import prometheus_client
import pytest
import socketio
from engineio import packet as eio_packet
from flask import Flask
from geventwebsocket.websocket import WebSocket
from socketio import packet as sio_packet

from realtime import json_text
from realtime.fanout import wire
from realtime.fanout.manager import FanoutLayer, LocalFanout
from realtime.fanout.redis_fanout import RedisFanout
from realtime.sockets.library_hooks import RealtimeServer, install
from realtime.sockets.transport_guards import BoundedWebSocket, HeadDeadlineHandler

ROWS = [
    pytest.param("chat:new_message", {"id": "1-0", "content": "hé \"quoted\" \u2028"}, "group:lobby", None, id="plain"),
    pytest.param("party:viewer_joined", {"n": [1, 2.5, None, True]}, "party:p-1", "sid-1", id="skip-sid"),
    pytest.param("system:announcement", "just a string", "broadcast:all", None, id="string-payload"),
]


class RecordingManager(socketio.PubSubManager):
    """A pub/sub manager whose transport hooks record (``_publish``) and replay (``_listen``) messages."""

    def __init__(self, inbound: list[str] | None = None) -> None:
        super().__init__(channel="pins")
        self.published: list[dict[str, Any]] = []
        self.inbound = inbound or []

    def _publish(self, data: dict[str, Any]) -> None:
        self.published.append(data)

    def _listen(self) -> Any:
        yield from self.inbound


@pytest.mark.parametrize(("event", "payload", "room", "skip_sid"), ROWS)
def test_emit_message_is_what_pubsub_manager_publishes(event: str, payload: Any, room: str, skip_sid: str | None) -> None:
    manager = RecordingManager()

    manager.emit(event, payload, namespace="/", room=room, skip_sid=skip_sid)

    assert manager.published == [wire.emit_message(event, [payload], room, skip_sid, manager.host_id)]


@pytest.mark.parametrize(("event", "payload", "room", "skip_sid"), ROWS)
def test_emit_halves_around_an_offset_are_the_encoded_message(
    event: str, payload: Any, room: str, skip_sid: str | None
) -> None:
    head, tail = wire.emit_halves(event, json_text.dumps(payload), room, skip_sid, "log:h")

    assert head + "1700000000000-7" + tail == wire.encode(
        wire.emit_message(event, [payload, "1700000000000-7"], room, skip_sid, "log:h")
    )


@pytest.mark.parametrize(("event", "payload", "room", "skip_sid"), ROWS)
def test_handle_emit_delivers_a_logged_message_with_its_offset_as_last_argument(
    monkeypatch: pytest.MonkeyPatch, event: str, payload: Any, room: str, skip_sid: str | None
) -> None:
    delivered: list[tuple[Any, ...]] = []
    monkeypatch.setattr(socketio.Manager, "emit", lambda self, *args, **kwargs: delivered.append((args, kwargs)))
    head, tail = wire.emit_halves(event, json.dumps(payload), room, skip_sid, "log:h")

    RecordingManager()._handle_emit(json.loads(head + "5-0" + tail))

    assert delivered == [
        ((event, (payload, "5-0")), {"namespace": "/", "room": room, "skip_sid": skip_sid, "callback": None})
    ]


def test_listener_skips_its_own_host_id_and_delivers_every_other() -> None:
    """RedisFanout gives logged broadcasts a host_id of their own, so its listener delivers them too."""
    handled: list[str] = []
    messages = [wire.encode(wire.emit_message("e", [host], "r", None, host)) for host in ("own", "log:own", "other")]
    manager = RecordingManager(inbound=messages)
    manager.host_id = "own"
    manager.server = SimpleNamespace(logger=logging.getLogger(__name__))
    manager._handle_emit = lambda message: handled.append(message["host_id"])  # type: ignore[method-assign]

    manager._thread()

    assert handled == ["log:own", "other"]


# -- realtime.sockets.library_hooks ---------------------------------------------------------------------------


class RecordingServer(socketio.Server):
    """python-socketio's server, recording what it sends and which private methods it calls."""

    def __init__(self) -> None:
        super().__init__(async_mode="threading", async_handlers=False)
        self.calls: list[tuple[Any, ...]] = []

    def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        self.calls.append(("_send_packet", eio_sid, pkt.packet_type, pkt.data))

    def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        self.calls.append(("_send_eio_packet", eio_sid, eio_pkt.data))

    def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        self.calls.append(("_handle_event", eio_sid, namespace, id, data))
        super()._handle_event(eio_sid, namespace, id, data)

    def _handle_event_internal(self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any) -> Any:
        self.calls.append(("_handle_event_internal", server is self, eio_sid, data, namespace, id))
        return super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


def connected(server: RecordingServer, eio_sid: str = "e1") -> str:
    server.environ[eio_sid] = {}
    return str(server.manager.connect(eio_sid, "/"))


def test_flask_socketio_builds_a_plain_server_with_its_engineio_handlers_bound_at_construction() -> None:
    """Why :func:`install` changes the class, then registers the Engine.IO handlers again."""
    extension = flask_socketio.SocketIO()
    extension.init_app(Flask(__name__), async_mode="threading")
    server = extension.server
    assert type(server) is socketio.Server
    assert server.eio.handlers == {
        "connect": server._handle_eio_connect,
        "message": server._handle_eio_message,
        "disconnect": server._handle_eio_disconnect,
    }

    install(server, Flask(__name__), max_outbound_queue=10, max_concurrent_handshakes=2, connect_timeout=5)

    assert type(server) is RealtimeServer
    assert {name: handler.__func__ for name, handler in server.eio.handlers.items()} == {
        "connect": RealtimeServer._handle_eio_connect,
        "message": RealtimeServer._handle_eio_message,
        "disconnect": RealtimeServer._handle_eio_disconnect,
    }


def test_emits_without_a_callback_go_pre_encoded_through_send_eio_packet_and_with_one_through_send_packet() -> None:
    """Where ``_send_eio_packet`` and ``_send_packet`` hold and bound outbound packets."""
    server = RecordingServer()
    sid = connected(server)

    server.emit("chat:new_message", ({"id": "1-0"}, "1-0"), to=sid)
    server.emit("room", {"n": 1}, room=sid)
    server.emit("asked", 1, to=sid, callback=lambda *args: None)

    assert server.calls == [
        ("_send_eio_packet", "e1", '2["chat:new_message",{"id":"1-0"},"1-0"]'),
        ("_send_eio_packet", "e1", '2["room",{"n":1}]'),
        ("_send_packet", "e1", sio_packet.EVENT, ["asked", 1]),
    ]


def test_a_broadcast_to_a_socket_whose_engineio_socket_is_gone_is_dropped_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """python-engineio warns "Cannot send to sid" for each packet to a socket it no longer has; between its
    close and python-socketio's disconnect handler a broadcast can still name that socket."""
    extension = flask_socketio.SocketIO()
    extension.init_app(Flask(__name__), async_mode="threading")
    server = extension.server
    install(server, Flask(__name__), max_outbound_queue=10, max_concurrent_handshakes=2, connect_timeout=5)
    sent: list[tuple[str, Any]] = []
    empty = SimpleNamespace(qsize=lambda: 0)
    live = SimpleNamespace(closed=False, closing=False, queue=empty, send=lambda pkt: sent.append(("live", pkt.data)))
    closed = SimpleNamespace(closed=True, closing=False, queue=empty, send=lambda pkt: sent.append(("closed", pkt.data)))
    server.eio.sockets.update({"e-live": live, "e-closed": closed})
    for eio_sid in ("e-live", "e-closed", "e-gone"):
        server.environ[eio_sid] = {}
        server.manager.enter_room(str(server.manager.connect(eio_sid, "/")), "/", "group:lobby")

    with caplog.at_level(logging.DEBUG, logger=server.eio.logger.name):
        server.emit("chat:new_message", {"id": "1-0"}, room="group:lobby")
        engineio.Server.send_packet(server.eio, "e-gone", eio_packet.Packet(eio_packet.MESSAGE, "2[]"))

    assert sent == [("live", '2["chat:new_message",{"id":"1-0"}]')]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["Cannot send to sid e-gone"], "only python-engineio's own call, made here on purpose, warns"


def test_the_connect_answer_goes_through_send_packet_with_the_sid_engineio_generates() -> None:
    """Where a recovered socket gets its old sid (``eio.generate_id``) and its pid (``_send_packet``)."""
    server = RecordingServer()
    server.on("connect", lambda sid, environ, auth: True)
    server.environ["e1"] = {}
    server.eio.generate_id = lambda: "recovered-sid"

    server._handle_connect("e1", None, {"pid": "p"})

    assert server.calls == [("_send_packet", "e1", sio_packet.CONNECT, {"sid": "recovered-sid"})]
    assert server.manager.is_connected("recovered-sid", "/")


def test_an_event_reaches_handle_event_internal_with_its_ack_id_and_the_ack_goes_through_send_packet() -> None:
    """Where the handler learns whether the client asked for an ack."""
    server = RecordingServer()
    server.on("ping", lambda sid, data: {"ok": True})
    connected(server)

    server._handle_eio_message("e1", '27["ping",{}]')
    server._handle_eio_message("e1", '2["ping",{}]')

    assert [call for call in server.calls if call[0] != "_handle_event"] == [
        ("_handle_event_internal", True, "e1", ["ping", {}], "/", 7),
        ("_send_packet", "e1", sio_packet.ACK, [{"ok": True}]),
        ("_handle_event_internal", True, "e1", ["ping", {}], "/", None),
    ]
    assert list(inspect.signature(socketio.Server._handle_event_internal).parameters) == [
        "self", "server", "sid", "eio_sid", "data", "namespace", "id",
    ]


def test_an_event_without_a_name_reaches_handle_event_as_it_came() -> None:
    """Where an event whose first element is not a name gets ``UNKNOWN_EVENT``."""
    server = RecordingServer()
    connected(server)

    server._handle_eio_message("e1", "23[1,2]")

    assert server.calls[0] == ("_handle_event", "e1", None, 3, [1, 2])


@pytest.mark.parametrize(
    ("packet", "error"),
    [("2[", ValueError), ('2["a"', ValueError), ("9", ValueError), ("", TypeError), ('2{"a":1}', KeyError)],
)
def test_an_undecodable_packet_raises_from_handle_eio_message(packet: str, error: type[Exception]) -> None:
    """What ``RealtimeServer._handle_eio_message`` catches to close the transport in one line."""
    server = RecordingServer()
    connected(server)

    with pytest.raises(error):
        server._handle_eio_message("e1", packet)


def test_engineio_socket_methods_the_guards_wrap_and_call() -> None:
    """``install_transport_guards`` wraps ``Socket._websocket_handler(self, ws)``; the guards close with
    ``Socket.close(wait=, abort=, reason=)``."""
    assert list(inspect.signature(engineio.socket.Socket._websocket_handler).parameters) == ["self", "ws"]
    assert list(inspect.signature(engineio.socket.Socket.close).parameters) == ["self", "wait", "abort", "reason"]
    assert hasattr(engineio.Server.reason, "TRANSPORT_ERROR") and hasattr(engineio.Server.reason, "SERVER_DISCONNECT")


def test_gevent_websocket_builds_its_websocket_from_the_module_global_and_has_no_names_of_ours() -> None:
    """Why replacing ``geventwebsocket.handler.WebSocket`` bounds every connection's frames, and that
    :class:`BoundedWebSocket` adds methods and attributes without overriding any but ``read_frame`` (bounds),
    ``validate_utf8`` (left to ``_decode_bytes``) and ``current_app`` (one shared no-op application)."""
    assert "WebSocket" in geventwebsocket.handler.WebSocketHandler.upgrade_connection.__code__.co_names
    assert {name for name in own_names(BoundedWebSocket) if hasattr(WebSocket, name)} == {
        "read_frame", "validate_utf8", "current_app"
    }


def test_the_websocket_tells_of_a_close_to_one_shared_no_op_application() -> None:
    """gevent-websocket's ``current_app`` builds a class per call when the WSGI app has no ``current_app`` (ours
    has none), and ``close`` of a closed websocket (each handed-over one, when collected) calls it; ours hands
    out one object whose ``on_close`` takes what gevent-websocket passes and does nothing, as the library's."""
    assert "class MockApp" in inspect.getsource(WebSocket.current_app.fget)  # type: ignore[attr-defined]
    assert "self.current_app.on_close(MSG_ALREADY_CLOSED)" in inspect.getsource(WebSocket.close)
    websocket = BoundedWebSocket.__new__(BoundedWebSocket)
    websocket.handler = SimpleNamespace(server=SimpleNamespace(application=object()))
    assert websocket.current_app is websocket.current_app
    assert websocket.current_app.on_close("Connection is already closed") is None


def test_what_the_websocket_hand_over_relies_on() -> None:
    """realtime.sockets.websocket_handover: gevent-websocket closes the websocket after the application only
    when it is not ``closed`` yet; gevent.pywsgi's ``handle`` reads out and closes ``self.socket`` only when it
    is not None, and stops at a ``handle_one_request`` that returns None; python-engineio's socket keeps its
    outbound packets in ``queue`` and its transport state in ``connected`` and ``upgraded``."""
    run_websocket = inspect.getsource(geventwebsocket.handler.WebSocketHandler.run_websocket)
    assert "if not self.websocket.closed:" in run_websocket
    handle = inspect.getsource(gevent.pywsgi.WSGIHandler.handle)
    assert "while self.socket is not None:" in handle and "if self.socket is not None:" in handle
    assert "if result is None:" in handle
    sock = engineio.socket.Socket(engineio.Server(async_mode="gevent"), "e1")
    assert {"queue", "connected", "upgraded"} <= set(vars(sock))
    assert inspect.getsource(engineio.socket.Socket.close).count("self.queue.put(None)") == 1


def own_names(cls: type) -> set[str]:
    return set(vars(cls)) - {"__module__", "__doc__", "__annotations__", "__dict__", "__weakref__", "__init__",
                             "__firstlineno__", "__static_attributes__", "__orig_bases__", "__parameters__"}


@pytest.mark.parametrize(
    ("cls", "library", "overrides"),
    [
        pytest.param(RealtimeServer, socketio.Server, {
            "_handle_eio_connect", "_handle_eio_disconnect", "_handle_eio_message", "_handle_connect",
            "_handle_event", "_handle_event_internal", "_send_packet", "_send_eio_packet",
        }, id="server"),
        pytest.param(LocalFanout, socketio.Manager, set(), id="local-manager"),
        pytest.param(RedisFanout, socketio.RedisManager, {"_handle_emit", "_listen"}, id="redis-manager"),
        pytest.param(FanoutLayer, socketio.RedisManager, set(), id="fanout-layer"),
        pytest.param(HeadDeadlineHandler, geventwebsocket.handler.WebSocketHandler,
                     {"handle_one_request", "read_requestline", "read_request"}, id="head-deadline"),
    ],
)
def test_our_subclasses_override_exactly_the_library_methods_they_mean_to(
    cls: type, library: type, overrides: set[str]
) -> None:
    """A library release that adds a method named like one of our own helpers would silently be overridden."""
    assert {name for name in own_names(cls) if hasattr(library, name)} == overrides


def test_engineio_reports_a_clients_bad_request_once_at_error_with_the_suffix_our_filter_reads() -> None:
    """``realtime.log_setup.ClientFaultFilter`` recognises python-engineio's first report by its suffix."""
    from realtime.log_setup import ENGINEIO_ONCE_SUFFIX

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("pin.engineio")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Keep())
    server = engineio.Server(logger=logger)
    server._log_error_once("Invalid session abc", "bad-sid")
    server._log_error_once("Invalid session abc", "bad-sid")
    reports = [r for r in records if r.getMessage().startswith("Invalid session abc")]
    assert [(r.levelno, r.getMessage().endswith(ENGINEIO_ONCE_SUFFIX)) for r in reports] == [
        (logging.ERROR, True),
        (logging.INFO, False),
    ]


def test_what_the_metrics_tally_writes_histograms_through() -> None:
    """realtime.metrics.tally adds to a histogram's ``_sum`` and ``_buckets`` (chosen by ``_upper_bounds``),
    as ``Histogram.observe`` itself does."""
    observe = prometheus_client.Histogram.observe.__code__.co_names
    assert {"_sum", "_upper_bounds", "_buckets"} <= set(observe)
    histogram = prometheus_client.Histogram("pinned", "pinned", buckets=(1, 2), registry=None)
    assert list(histogram._upper_bounds) == [1, 2, float("inf")] and len(histogram._buckets) == 3
