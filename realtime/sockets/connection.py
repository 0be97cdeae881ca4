"""Connection lifecycle: authenticate, register cluster-wide, run feature hooks; clean up on disconnect."""
from __future__ import annotations

import logging
from typing import Any

import redis
from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO

from realtime.auth.handshake import extract_token
from realtime.errors import ErrorCode, RealtimeError
from realtime.schemas.session import ErrorEventOutSchema, ForceLogoutOutSchema
from realtime.services import current_services
from realtime.sockets.blueprint import EventContext, SocketBlueprint

logger = logging.getLogger(__name__)

session = SocketBlueprint("session")
session.emits(
    "force_logout",
    ForceLogoutOutSchema,
    "Sent to every socket of a session that a newer login of the same user replaced (SESSION_POLICY=single); "
    "the server disconnects the socket right after (reason io server disconnect), so the client does not "
    "reconnect by itself. The old token is refused from then on (SESSION_REVOKED).",
    to="every socket of the replaced session, on any worker",
    examples=[{"reason": "duplicate_login"}],
)
session.emits(
    "error",
    ErrorEventOutSchema,
    "A client→server event failed and the client gave no ack callback: the error member of the envelope "
    "plus the event name.",
    to="the socket that sent the failing event",
    examples=[{"code": "VALIDATION_ERROR", "message": "The payload failed validation.",
               "fields": {"content": ["Send content, mediaUrl or both."]}, "event": "chat:message"}],
)


def register_connection_handlers(socketio: SocketIO) -> None:
    """Attach ``connect`` and ``disconnect`` handlers to ``socketio``."""
    socketio.on("connect")(on_connect)
    socketio.on("disconnect")(on_disconnect)


def on_connect(auth: Any = None) -> None:
    """Authenticate and register the socket; refusals reach the client as ``connect_error`` ``{code, message}``.

    Round trips: session check (1), registration with rooms, presence and eviction (1), hooks' broadcasts (≤1).
    """
    services = current_services()
    services.lifecycle.ensure_started()
    sid = request.sid
    token = extract_token(auth, request.headers, request.args)
    try:
        identity = services.authenticator.authenticate(token)
        rooms = services.rooms.default_rooms_for(identity.user_id)
        info = services.state.connect(
            sid, identity.user_id, identity.session_id, rooms, services.settings.session_policy == "single"
        )
    except RealtimeError as err:
        logger.info("handshake refused: %s", err.code.value)
        raise ConnectionRefusedError(err.message, err.to_dict()) from None
    except redis.RedisError:
        logger.warning("redis unavailable during connect", exc_info=True)
        error = RealtimeError(ErrorCode.UNAVAILABLE, "A backing service is unavailable; retry shortly.")
        raise ConnectionRefusedError(error.message, error.to_dict()) from None
    services.rooms.enter_local(sid, rooms)
    services.connections.add(sid, identity)
    ctx = EventContext(
        sid=sid, user_id=identity.user_id, session_id=identity.session_id, profile=identity.profile, services=services
    )
    outgoing = [message for hook in services.catalog.connect_hooks for message in hook(ctx, info)]
    try:
        services.broadcaster.emit_many(outgoing)
    except redis.RedisError:
        logger.warning("connect broadcasts failed", exc_info=True)
    if info.evicted_sessions:
        logger.info("duplicate login: %d older session(s) logged out", len(info.evicted_sessions))
    logger.info("socket connected", extra={"sid": sid, "user_id": identity.user_id})


def on_disconnect(reason: Any = None) -> None:
    """Release the socket cluster-wide and broadcast what its absence changes (2 round trips)."""
    services = current_services()
    sid = request.sid
    services.limiter.forget(sid)
    services.typing.forget(sid)
    if services.connections.remove(sid) is None:
        return
    try:
        infos = services.state.release([sid])
        services.broadcaster.emit_many(services.lifecycle.outgoing_for(infos))
    except redis.RedisError:
        logger.warning("could not release a closed socket; the reaper will", exc_info=True)
    logger.info("socket disconnected", extra={"sid": sid, "reason": str(reason)})
