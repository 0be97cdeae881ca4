"""The Flask application class: Flask, less URL matching for request contexts under the Socket.IO path."""
from __future__ import annotations

from flask import Flask, Request
from werkzeug.routing import MapAdapter

#: Where python-engineio serves (Flask-SocketIO's default ``path``): no Flask route lives under it.
SOCKETIO_PATH = "/socket.io"


class RealtimeFlask(Flask):
    """Flask, with no URL adapter for requests under :data:`SOCKETIO_PATH`.

    Flask-SocketIO runs the handlers it registers (here the catch-all for unknown events; catalogue events and
    the handshake run in the app context only) inside a request context built from the connection's WSGI
    environ. Flask binds a URL adapter for it and matches the Socket.IO path against the URL map each time, only
    to store a 404 that nothing reads: python-engineio answers that path before Flask's routing ever could.
    """

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        if request is not None and request.environ.get("PATH_INFO", "").startswith(SOCKETIO_PATH):
            return None
        return super().create_url_adapter(request)
