"""The Flask application class: Flask, less URL matching for the request context of each socket event."""
from __future__ import annotations

from flask import Flask, Request
from werkzeug.routing import MapAdapter

#: Where python-engineio serves (Flask-SocketIO's default ``path``): no Flask route lives under it.
SOCKETIO_PATH = "/socket.io"


class RealtimeFlask(Flask):
    """Flask, with no URL adapter for requests under :data:`SOCKETIO_PATH`.

    Flask-SocketIO runs every socket event inside a request context built from its connection's WSGI environ.
    Flask binds a URL adapter for it and matches the Socket.IO path against the URL map on each event, only to
    store a 404 that nothing reads: python-engineio answers that path before Flask's routing ever could.
    """

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        if request is not None and request.environ.get("PATH_INFO", "").startswith(SOCKETIO_PATH):
            return None
        return super().create_url_adapter(request)
