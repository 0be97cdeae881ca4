"""An in-process gevent WSGI server with WebSocket support, for real-protocol handshake tests."""
from __future__ import annotations

from typing import Any

import socketio
from flask import Flask
from gevent import pywsgi
from geventwebsocket.handler import WebSocketHandler


class LiveServer:
    """Serves ``app`` on a free loopback port in this process."""

    def __init__(self, app: Flask) -> None:
        self._server = pywsgi.WSGIServer(("127.0.0.1", 0), app, handler_class=WebSocketHandler, log=None)

    def start(self) -> LiveServer:
        """Start accepting (non-blocking under gevent)."""
        self._server.start()
        return self

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        """Stop accepting and close connections."""
        self._server.stop(timeout=1)


def try_connect(url: str, **kwargs: Any) -> tuple[socketio.Client, list[Any]]:
    """Connect a python-socketio client; return it and the ``connect_error`` payloads it received."""
    client = socketio.Client(reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", errors.append)
    kwargs.setdefault("transports", ["websocket"])
    try:
        client.connect(url, wait_timeout=5, **kwargs)
    except socketio.exceptions.ConnectionError:
        pass
    return client, errors
