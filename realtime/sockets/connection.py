"""Connection lifecycle: authenticate the handshake, join default rooms, clean up on disconnect."""
from __future__ import annotations

import logging
from typing import Any

import redis
from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO

from realtime.auth.handshake import extract_token
from realtime.errors import ErrorCode, RealtimeError
from realtime.services import current_services

logger = logging.getLogger(__name__)


def register_connection_handlers(socketio: SocketIO) -> None:
    """Attach ``connect`` and ``disconnect`` handlers to ``socketio``."""
    socketio.on("connect")(on_connect)
    socketio.on("disconnect")(on_disconnect)


def on_connect(auth: Any = None) -> None:
    """Authenticate and set up the socket; refusals reach the client as ``connect_error`` with ``{code, message}``."""
    services = current_services()
    sid = request.sid
    token = extract_token(auth, request.headers, request.args)
    try:
        identity = services.authenticator.authenticate(token)
        rooms = services.rooms.join_defaults(sid, identity.user_id)
        services.connections.add(sid, identity)
    except RealtimeError as err:
        logger.info("handshake refused: %s", err.code.value)
        raise ConnectionRefusedError(err.message, err.to_dict()) from None
    except redis.RedisError:
        logger.warning("redis unavailable during connect", exc_info=True)
        error = RealtimeError(ErrorCode.UNAVAILABLE, "A backing service is unavailable; retry shortly.")
        raise ConnectionRefusedError(error.message, error.to_dict()) from None
    logger.info("socket connected", extra={"sid": sid, "user_id": identity.user_id, "rooms": len(rooms)})


def on_disconnect(reason: Any = None) -> None:
    """Forget the socket's room memberships and rate bucket."""
    services = current_services()
    sid = request.sid
    services.limiter.forget(sid)
    services.connections.remove(sid)
    try:
        services.rooms.forget(sid)
    except redis.RedisError:
        logger.warning("could not clear room index for a closed socket", exc_info=True)
    logger.info("socket disconnected", extra={"sid": sid, "reason": str(reason)})
