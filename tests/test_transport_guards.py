"""The request-head deadline, on a real ``gevent.pywsgi.WSGIServer`` in-process: pins the gevent behaviour it
relies on (each request is read through ``read_requestline`` then ``read_request`` before the application
runs). tests/e2e/security/test_idle_connections.py pins the gunicorn side (the worker serves with the handler
``post_worker_init`` installs).
"""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from geventwebsocket.gunicorn.workers import GeventWebSocketWorker

from realtime.sockets.transport_guards import HeadDeadlineHandler, install_head_deadline

HEAD_TIMEOUT = 0.3
#: Longer than the head deadline: the application's own time must not count against it.
APP_SECONDS = 0.6


def slow_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    gevent.sleep(APP_SECONDS)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture
def server() -> Iterator[WSGIServer]:
    handler = type("ShortHeadDeadline", (HeadDeadlineHandler,), {"head_timeout": HEAD_TIMEOUT})
    served = WSGIServer(("127.0.0.1", 0), slow_app, handler_class=handler, log=None, error_log=None)
    served.start()
    yield served
    served.stop(timeout=1)


def connect(server: WSGIServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server_port), timeout=5)


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def read_response(sock: socket.socket) -> bytes:
    received = b""
    while not received.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {received!r}"
        received += chunk
    return received


def test_a_silent_connection_is_closed_without_an_answer(server: WSGIServer) -> None:
    with connect(server) as sock:
        assert read_until_closed(sock) == b""


def test_a_trickled_head_is_answered_400_and_closed(server: WSGIServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for line in range(20):
            time.sleep(HEAD_TIMEOUT / 3)
            try:
                sock.sendall(f"X-Line-{line}: 1\r\n".encode())
            except OSError:
                break
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer


def test_keep_alive_requests_are_served_and_the_idle_connection_is_then_closed(server: WSGIServer) -> None:
    with connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        assert read_until_closed(sock) == b""


class _Worker:
    """Stands for a gunicorn worker: only ``wsgi_handler`` matters."""

    def __init__(self, handler: type) -> None:
        self.wsgi_handler = handler


def test_install_replaces_gevent_websockets_handler() -> None:
    worker = _Worker(GeventWebSocketWorker.wsgi_handler)
    previous = HeadDeadlineHandler.head_timeout
    try:
        install_head_deadline(worker, 7.0)
        assert worker.wsgi_handler is HeadDeadlineHandler
        assert HeadDeadlineHandler.head_timeout == 7.0
    finally:
        HeadDeadlineHandler.head_timeout = previous


def test_install_refuses_a_worker_that_serves_with_another_handler() -> None:
    from gevent.pywsgi import WSGIHandler

    class OtherHandler(WSGIHandler):
        pass

    with pytest.raises(TypeError, match="Keep worker_class = 'geventwebsocket.gunicorn.workers"):
        install_head_deadline(_Worker(OtherHandler), 7.0)

