"""Unbound extension objects; the app factory binds them with ``init_app``."""
from __future__ import annotations

from flask_socketio import SocketIO

socketio = SocketIO()
