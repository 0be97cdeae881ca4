"""What an idle socket costs a worker (issue 9, item 3): behaviour kept, per-socket greenlets and scans gone.

Figures (RSS per socket, connect time) live in ``bench/side_by_side.py --scenario d``; these tests pin the
behaviour the cuts must keep and the structure that makes them pay: no greenlet per socket between pings
(and pings still sent, answered or ending a silent socket, by a real gunicorn worker), a small read buffer
per connection, no greenlet-tree recording, the collector tuning, and no scan of every room of the namespace
per socket in the heartbeat (the cause of the WORKER TIMEOUT with 10,000 sockets on one worker).
"""
from __future__ import annotations

import gc
import inspect
import socket
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import engineio
import engineio.socket
import gevent
import greenlet
import pytest
import requests
import websocket
from engineio import packet as eio_packet
from flask import Flask
from flask_socketio import SocketIOTestClient
from gevent.pywsgi import WSGIServer

from realtime.extensions import socketio
from realtime.sockets import idle_sockets, library_hooks
from realtime.sockets.transport_guards import HeadDeadlineHandler
from tests.helpers.e2e_cluster import GunicornProcess, create_tokens
from tests.helpers.e2e_kit import embedded_env, free_port_except
from tests.helpers.greenlets import wait_until
from tests.helpers.raw_socketio import RawSocketIO

#: Sockets per test: enough that one greenlet per socket cannot hide among the process's own.
SOCKETS = 50
#: The bound on waiting for a ping (far above the interval the tests configure).
BUDGET = 10.0


@pytest.fixture
def ping_timers() -> Iterator[None]:
    """python-engineio's ``schedule_ping`` replaced by the timer version for one test, then restored."""
    original = engineio.socket.Socket.schedule_ping
    library_hooks.install_ping_timers()
    yield
    engineio.socket.Socket.schedule_ping = original  # type: ignore[method-assign]


def eio_sockets(count: int, ping_interval: float) -> list[engineio.socket.Socket]:
    """``count`` Engine.IO sockets of one gevent server that has just answered a pong on each (``last_ping``)."""
    server = engineio.Server(async_mode="gevent", ping_interval=ping_interval, ping_timeout=BUDGET)
    return [engineio.socket.Socket(server, f"sid-{i}") for i in range(count)]


def live_greenlets() -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet) and obj and not obj.dead)


def queued(sock: engineio.socket.Socket) -> list[Any]:
    """Drain a socket's outbound queue without blocking."""
    packets = []
    while not sock.queue.empty():
        packets.append(sock.queue.get_nowait())
    return packets


def test_the_pinned_library_schedules_pings_as_the_timers_reproduce() -> None:
    """python-engineio schedules a ping only after the previous one was answered, ``ping_interval`` later,
    and sends it only to an open socket: the contract :func:`install_ping_timers` keeps."""
    schedule = inspect.getsource(engineio.socket.Socket.schedule_ping)
    send = inspect.getsource(engineio.socket.Socket._send_ping)
    assert "if self.last_ping:" in schedule and "self.last_ping = None" in schedule
    assert "self.server.start_background_task(self._send_ping)" in schedule
    assert "self.server.sleep(self.server.ping_interval)" in send
    assert "if not self.closing and not self.closed:" in send
    assert "self.last_ping = time.time()" in send and "packet.Packet(packet.PING)" in send


@pytest.mark.usefixtures("ping_timers")
def test_a_socket_waiting_for_its_next_ping_holds_no_greenlet() -> None:
    socks = eio_sockets(SOCKETS, ping_interval=0.2)
    before = live_greenlets()
    for sock in socks:
        sock.schedule_ping()
    assert live_greenlets() - before < SOCKETS / 2
    assert wait_until(lambda: all(sock.last_ping for sock in socks), timeout=BUDGET)
    for sock in socks:
        assert [pkt.packet_type for pkt in queued(sock)] == [eio_packet.PING]


@pytest.mark.usefixtures("ping_timers")
def test_a_ping_is_scheduled_once_per_answered_ping_and_never_sent_to_a_closed_socket() -> None:
    open_sock, closing_sock, closed_sock = eio_sockets(3, ping_interval=0.2)
    for sock in (open_sock, closing_sock, closed_sock):
        sock.schedule_ping()
    # A second pong before the ping went out (last_ping is None meanwhile) schedules nothing more.
    open_sock.schedule_ping()
    closing_sock.closing = True
    closed_sock.closed = True
    assert wait_until(lambda: open_sock.last_ping is not None, timeout=BUDGET)
    gevent.sleep(0.5)
    assert [pkt.packet_type for pkt in queued(open_sock)] == [eio_packet.PING]
    assert queued(closing_sock) == [] and closing_sock.last_ping is None
    assert queued(closed_sock) == [] and closed_sock.last_ping is None


def test_first_pings_are_spread_over_the_interval_then_come_every_interval() -> None:
    """Sockets that connected together are not pinged together: each first ping goes after a random share of
    the interval (half to all of it, never later than the client waits for), the next ones every interval."""
    socks = eio_sockets(200, ping_interval=25)
    first = [library_hooks.ping_delay(sock) for sock in socks]
    assert all(12.5 <= delay <= 25 for delay in first)
    assert max(first) - min(first) > 10, "spread over the interval"
    for sock in socks:
        library_hooks._send_ping(sock)
    assert {library_hooks.ping_delay(sock) for sock in socks} == {25.0}


@pytest.mark.usefixtures("ping_timers")
def test_sockets_scheduled_together_get_their_first_pings_at_different_times() -> None:
    socks = eio_sockets(SOCKETS, ping_interval=1.0)
    for sock in socks:
        sock.schedule_ping()
    gevent.sleep(0.75)
    pinged = sum(1 for sock in socks if sock.last_ping)
    assert 0 < pinged < SOCKETS, f"{pinged} of {SOCKETS} pinged three quarters into the interval"
    assert wait_until(lambda: all(sock.last_ping for sock in socks), timeout=BUDGET)


@pytest.mark.usefixtures("ping_timers")
def test_installing_twice_keeps_one_timer_version() -> None:
    library_hooks.install_ping_timers()
    assert engineio.socket.Socket.schedule_ping is library_hooks._schedule_ping


def test_greenlets_stop_recording_their_spawning_stack() -> None:
    previous = gevent.config.track_greenlet_tree
    try:
        idle_sockets.stop_tracking_greenlet_tree()
        spawned = gevent.spawn(lambda: None)
        assert spawned.spawning_stack is None and spawned.spawning_greenlet is None
        spawned.join()
    finally:
        gevent.config.track_greenlet_tree = previous


def test_the_collector_freezes_the_start_up_heap_and_keeps_its_thresholds() -> None:
    previous = gc.get_threshold()
    try:
        idle_sockets.tune_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == previous
    finally:
        gc.unfreeze()


def test_connections_read_through_a_small_buffer_and_still_read_requests_larger_than_it() -> None:
    """A request head and body several times the buffer arrive whole; the buffer each connection keeps for
    its life is the small one (``sys.getsizeof`` of a ``BufferedReader`` counts its buffer)."""
    buffers: list[int] = []
    handler_class = idle_sockets.with_small_read_buffer(HeadDeadlineHandler)

    class Recording(handler_class):  # type: ignore[misc, valid-type]
        def handle(self) -> None:
            buffers.append(sys.getsizeof(self.rfile))
            super().handle()

    def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["HTTP_X_LONG"].encode()[:8], str(len(body)).encode()]

    served = WSGIServer(("127.0.0.1", 0), echo, handler_class=Recording, log=None, error_log=None)
    served.start()
    try:
        long_header, body = "x" * (4 * idle_sockets.READ_BUFFER_BYTES), b"b" * (6 * idle_sockets.READ_BUFFER_BYTES)
        answer = requests.post(f"http://127.0.0.1:{served.server_port}/", headers={"X-Long": long_header},
                               data=body, timeout=5)
    finally:
        served.stop(timeout=1)
    assert answer.status_code == 200 and answer.text == f"xxxxxxxx{len(body)}"
    default = socket.socket()
    try:
        assert buffers and buffers[0] < sys.getsizeof(default.makefile("rb", -1)) - idle_sockets.READ_BUFFER_BYTES
    finally:
        default.close()


def test_the_heartbeat_never_scans_every_room_of_the_namespace(
    app: Flask, connect: Callable[..., SocketIOTestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """python-socketio answers "which rooms is this sid in" by scanning every room of the namespace, one
    ``user:`` room per user: done for each socket in every heartbeat, 10,000 sockets kept one worker busy
    past gunicorn's timeout. The heartbeat reads each socket's own rooms instead."""
    clients = [connect(f"user-{i}") for i in range(SOCKETS)]
    assert all(client.is_connected() for client in clients)
    manager = socketio.server.manager

    class Unscannable(dict):  # type: ignore[type-arg]
        def scan(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the heartbeat scanned every room of the namespace")

        items = keys = values = __iter__ = copy = scan

    monkeypatch.setitem(manager.rooms, "/", Unscannable(manager.rooms["/"]))
    services = app.extensions["realtime"]
    refreshed: list[Any] = []
    # As after a Redis restart: every socket is written again with its rooms.
    monkeypatch.setattr(services.state, "touch", lambda sids: list(sids))
    monkeypatch.setattr(services.state, "refresh", lambda sockets: refreshed.extend(sockets) or [])
    services.lifecycle.heartbeat.beat()
    assert len(refreshed) == SOCKETS
    assert all(list(sock.rooms) == ["broadcast:all", f"user:{sock.user_id}"] for sock in refreshed)


@pytest.fixture(scope="module")
def pinging_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornProcess]:
    """The Procfile command (gunicorn.conf.py installs the ping timers) pinging every second."""
    env = {**embedded_env(), "PING_INTERVAL": "1", "PING_TIMEOUT": "1"}
    with GunicornProcess(free_port_except(), env, tmp_path_factory.mktemp("pings"), name="pings") as server:
        yield server


def connected_raw(server: GunicornProcess, user_id: str) -> RawSocketIO:
    (token,) = create_tokens(server.env, user_id, ttl=600)
    client = RawSocketIO.open(server.url)
    assert client.connect({"token": token}).is_connect
    return client


def pings_until_closed(client: RawSocketIO) -> int:
    """Read without answering pings until the server closes the connection (bounded); the pings seen."""
    pings = 0
    deadline = time.monotonic() + BUDGET
    while time.monotonic() < deadline:
        client.ws.settimeout(0.5)
        try:
            _, frame = client.ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketException, OSError):
            return pings
        if frame.data == b"2":
            pings += 1
    raise AssertionError(f"the server kept a socket that answered none of {pings} pings open")


@pytest.mark.e2e
def test_a_worker_pings_an_idle_socket_every_interval_and_drops_one_that_stops_answering(
    pinging_server: GunicornProcess,
) -> None:
    answering, silent = connected_raw(pinging_server, "answers"), connected_raw(pinging_server, "silent")
    try:
        deadline = time.monotonic() + BUDGET
        while answering.pings_answered < 3 and time.monotonic() < deadline:
            answering.recv(timeout=0.5)
        assert answering.pings_answered >= 3
        assert answering.alive()
        assert pings_until_closed(silent) >= 1
    finally:
        answering.close()
        silent.close()
    assert "Traceback" not in pinging_server.log_text()


@pytest.mark.usefixtures("ping_timers")
def test_a_disconnected_socket_is_freed_without_waiting_for_its_next_ping() -> None:
    """The pending timer holds its socket: cancelled on disconnect, or every socket a worker sheds would live
    on for up to ``ping_interval``."""
    socks = eio_sockets(SOCKETS, ping_interval=60)
    for sock in socks:
        sock.schedule_ping()
    refs = [weakref.ref(sock) for sock in socks]
    for sock in socks[: SOCKETS // 2]:
        library_hooks.cancel_ping_timer(sock)
    del socks, sock
    gc.collect()
    alive = [ref() is not None for ref in refs]
    assert alive == [False] * (SOCKETS // 2) + [True] * (SOCKETS - SOCKETS // 2)
