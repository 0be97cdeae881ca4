"""Connection lifecycle: authenticate, register cluster-wide, run feature hooks; clean up on disconnect."""
from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask
from flask.wrappers import Request
from flask_socketio import ConnectionRefusedError
from flask_socketio import SocketIO as FlaskSocketIO

from realtime.auth.handshake import Identity, auth_token, extract_token
from realtime.errors import RealtimeError
from realtime.extensions import socketio
from realtime.log_context import bind
from realtime.metrics.recorders import socket_connected, socket_disconnected
from realtime.schemas.session import ErrorEventOutSchema, ForceLogoutOutSchema
from realtime.services.container import Services
from realtime.sockets.blueprint import EventContext, SocketBlueprint
from realtime.sockets.event_log import logged_connect, logged_disconnect
from realtime.sockets.recovery_flow import ConnectPlan, record_for, recoverable, remember, resume
from realtime.sockets.server import ServerCore
from realtime.stores.recovery import new_pid
from realtime.stores.redis.checks import log_unavailable, unavailable
from realtime.stores.socket_records import ConnectInfo, SessionQuery

NAMESPACE = "/"

logger = logging.getLogger(__name__)

session = SocketBlueprint("session")
session.emits(
    "force_logout",
    ForceLogoutOutSchema,
    "Sent to every socket of a session that a newer login of the same user replaced (SESSION_POLICY=single; "
    "reason duplicate_login) or that was revoked (reason revoked: flask token revoke or DELETE "
    "/api/v1/sessions/{sid} at once; the session deleted or expired by the login service, or lost by Redis, "
    "within SESSION_CHECK_INTERVAL); the server disconnects the socket right after (reason io server "
    "disconnect), so the client does not reconnect by itself. The old token is refused from then on "
    "(SESSION_REVOKED).",
    to="every socket of the replaced or revoked session, on any worker",
    examples=[{"reason": "duplicate_login"}, {"reason": "revoked"}],
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


def register_connection_handlers(app: Flask, extension: FlaskSocketIO) -> None:
    """Attach ``connect`` and ``disconnect`` handlers to ``extension``'s python-socketio server, run in the
    app context without a Flask request (as the events are, :func:`realtime.sockets.dispatch.register_handlers`):
    the handshake's headers and query come from the connection's WSGI environ."""
    services: Services = app.extensions["realtime"]
    connect, disconnect = logged_connect(on_connect), logged_disconnect(on_disconnect)

    def connect_handler(sid: str, environ: Any, auth: Any = None) -> None:
        with app.app_context():
            connect(services, sid, environ, auth)

    def disconnect_handler(sid: str, reason: Any = None) -> None:
        with app.app_context():
            disconnect(services, sid, reason)

    extension.server.on("connect", connect_handler)
    extension.server.on("disconnect", disconnect_handler)


def on_connect(services: Services, sid: str, environ: Any, auth: Any = None) -> None:
    """Authenticate and register the socket; refusals reach the client as ``connect_error`` ``{code, message}``.

    Round trips: registration with the session check, rooms, presence and eviction (1; a reconnect with a
    ``pid`` checks its session with its recovery claim, 1 more), hooks' broadcasts (≤1, none when they go
    to rooms nobody is in).
    """
    services.lifecycle.ensure_started()
    core: ServerCore = socketio.server.core
    plan: ConnectPlan | None = core.connect_plans.get(socketio.server.manager.eio_sid_from_sid(sid, NAMESPACE))
    single = services.settings.session_policy == "single"
    try:
        if plan is not None and plan.recovered:
            identity = plan.identity
            bind(userId=identity.user_id)
            pid = plan.restore.record.pid  # type: ignore[union-attr]
            info = resume(services, core, sid, plan, single, counted_rooms(services, identity.user_id))
        else:
            pid = new_pid() if services.recovery is not None else ""
            identity, info = register(services, sid, plan, auth, single, environ)
    except RealtimeError as err:
        logger.info("handshake refused: %s", err.code.value)
        raise ConnectionRefusedError(err.message, err.to_dict()) from None
    except redis.RedisError as exc:
        log_unavailable(logger, "connecting a socket", exc)
        error = unavailable(exc)
        raise ConnectionRefusedError(error.message, error.to_dict()) from None
    if pid:
        core.pids[sid] = pid
    services.connections.add(sid, identity, pid)
    socket_connected()
    ctx = EventContext(
        sid=sid, user_id=identity.user_id, session_id=identity.session_id, profile=identity.profile, services=services
    )
    # A broadcast to a room with no socket anywhere (parked ones included) would reach nobody, now or on
    # recovery: it is not sent.
    outgoing = [
        message
        for hook in services.catalog.connect_hooks
        for message in hook(ctx, info)
        if info.counted.get(message.to, 1) > 0
    ]
    try:
        services.broadcaster.emit_many(outgoing)
    except redis.RedisError as exc:
        log_unavailable(logger, "sending a connecting socket's broadcasts", exc)
    if info.evicted_sessions:
        logger.info("duplicate login: %d older session(s) logged out", len(info.evicted_sessions))
    logger.info("socket connected")


def register(
    services: Services, sid: str, plan: ConnectPlan | None, auth: Any, single: bool, environ: Any
) -> tuple[Identity, ConnectInfo]:
    """Register a socket that is not recovered, checking its session in the same round trip (a reconnect
    whose recovery failed had it checked with its claim); the token comes from ``auth``, or the handshake's
    headers or query string in ``environ``."""
    claims = None
    if plan is not None:
        user_id, session_id = plan.identity.user_id, plan.identity.session_id
    else:
        token = auth_token(auth)
        if token is None:  # the handshake's headers and query are parsed only when the CONNECT has no token
            handshake = Request(environ)
            token = extract_token(None, handshake.headers, handshake.args)
        claims = services.authenticator.verify(token)
        user_id, session_id = claims.user_id, claims.session_id
    bind(userId=user_id)
    cached = services.authenticator.cached_profile(user_id)
    rooms = services.rooms.default_rooms_for(user_id)
    info = services.state.connect(
        sid,
        user_id,
        session_id,
        rooms,
        single,
        session=None if claims is None else SessionQuery(profile=cached is None),
        counted=counted_rooms(services, user_id),
    )
    if plan is not None:
        identity = plan.identity
    else:
        assert claims is not None and info.session is not None
        identity = services.authenticator.identity_for(claims, info.session, cached)
    services.rooms.enter_local(sid, rooms)
    return identity, info


def counted_rooms(services: Services, user_id: str) -> list[str]:
    """The rooms the connect hooks broadcast to for ``user_id``, whose sockets registration counts."""
    return [template.replace("{userId}", user_id) for template in services.catalog.counted_rooms]


def on_disconnect(services: Services, sid: str, reason: Any = None) -> None:
    """Keep a recovery record if the client will be back, release the socket cluster-wide, broadcast what
    its absence changes (3 round trips at most)."""
    # python-socketio calls this only for sockets whose connect was accepted: each was counted in.
    socket_disconnected()
    services.limiter.forget(sid)
    services.typing.forget(sid)
    socketio.server.core.pids.pop(sid, None)
    removed = services.connections.remove(sid)
    if removed is None:
        return
    identity, pid = removed
    bind(userId=identity.user_id)
    if services.lifecycle.drained(sid):
        return
    if pid and recoverable(str(reason)):
        if remember(services, [record_for(sid, identity, pid, services.rooms.rooms_of(sid))]):
            logger.info("socket parked for recovery", extra={"sid": sid, "reason": str(reason)})
            return
    try:
        infos = services.state.release([sid], services.catalog.counted_rooms)
        services.broadcaster.emit_many(services.release_events(infos))
    except redis.RedisError as exc:
        log_unavailable(logger, "releasing a closed socket (the reaper will)", exc)
    logger.info("socket disconnected", extra={"sid": sid, "reason": str(reason)})
