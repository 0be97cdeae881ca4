"""Run a handler behind validation, rate limiting and the one ack envelope."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Flask, request
from flask_socketio import SocketIO
from marshmallow import ValidationError

from realtime.errors import ErrorCode, RealtimeError, failure, ok
from realtime.extensions import socketio
from realtime.fanout.emits import Shaped
from realtime.metrics.recorders import (
    record_error,
    record_handled,
    record_rate_limit_disconnect,
    record_received,
)
from realtime.metrics.round_trips import counting
from realtime.schemas.dumpers import dumper
from realtime.schemas.loaders import loader
from realtime.services.container import Services, current_services
from realtime.sockets.blueprint import EventContext, EventHandler
from realtime.sockets.catalog import EventCatalog
from realtime.sockets.event_log import handling
from realtime.sockets.server import ack_requested
from realtime.stores.redis.checks import UNAVAILABLE_ERRORS, log_unavailable, unavailable

logger = logging.getLogger(__name__)


def register_handlers(app: Flask, socketio: SocketIO, catalog: EventCatalog) -> None:
    """Register every client→server handler of the catalog, and a catch-all for unknown events.

    A catalogue handler is registered with python-socketio itself and runs in the app context only: Flask-
    SocketIO's wrapper would build a Flask request, its URL adapter and a session for every event, which
    costs a chat message more than its validation (issue 9). Handlers take the socket from their
    :class:`~realtime.sockets.blueprint.EventContext`, never from ``flask.request``. The catch-all keeps
    Flask-SocketIO's wrapper (it maps python-socketio's catch-all arguments).
    """
    services: Services = app.extensions["realtime"]
    for handler in catalog.handlers.values():
        socketio.server.on(handler.event, _endpoint(app, services, handler))
    socketio.on("*")(_unknown_event)


def _endpoint(app: Flask, services: Services, handler: EventHandler) -> Any:
    def endpoint(sid: str, *args: Any) -> dict[str, Any]:
        with app.app_context(), handling(handler.event, sid, services) as scope:
            return scope.done(answer(services, sid, handler.event, _measured(services, sid, handler, args)))

    endpoint.__name__ = f"on_{handler.event.replace(':', '_')}"
    return endpoint


def _measured(services: Services, sid: str, handler: EventHandler, args: tuple[Any, ...]) -> dict[str, Any]:
    """Run the handler, recording the event, the seconds to its envelope and its Redis round trips."""
    record_received(handler.event)
    started = time.perf_counter()
    with counting() as trips:
        envelope = run_handler(services, sid, handler, args)
    record_handled(handler.event, time.perf_counter() - started, trips.count)
    return envelope


def _unknown_event(event: Any, *args: Any) -> dict[str, Any]:
    name = (event if isinstance(event, str) else repr(event))[:80]
    services, sid = current_services(), request.sid
    with handling(name, sid, services) as scope:
        return scope.done(_refuse_unknown(services, sid, name))


def _refuse_unknown(services: Services, sid: str, name: str) -> dict[str, Any]:
    record_received(name)
    try:
        _take_token(services, sid)
    except RealtimeError as err:
        return answer(services, sid, name, failure(err))
    return answer(services, sid, name, failure(RealtimeError(ErrorCode.UNKNOWN_EVENT, f"No handler for event {name!r}.")))


def _take_token(services: Services, sid: str) -> None:
    """Rate-limit one event of ``sid``; past RATE_LIMIT_DISCONNECT refusals in a row, disconnect it once.

    :raises RealtimeError: ``RATE_LIMITED``.
    """
    if services.limiter.allow(sid):
        return
    if services.limiter.strikes(sid) >= services.settings.rate_limit_disconnect and services.limiter.flag_once(sid):
        _disconnect_abuser(services, sid)
    raise RealtimeError(ErrorCode.RATE_LIMITED, "Too many events; slow down.")


def answer(services: Services, sid: str, event: str, envelope: dict[str, Any]) -> dict[str, Any]:
    """Return the envelope as the ack; without an ack callback, send failures as an ``error`` event."""
    if not envelope["ok"]:
        record_error(event, envelope["error"]["code"])
    if not envelope["ok"] and not ack_requested():
        services.broadcaster.emit_local(sid, "error", {**envelope["error"], "event": event})
    return envelope


def run_handler(services: Services, sid: str, handler: EventHandler, args: tuple[Any, ...]) -> dict[str, Any]:
    """Validate, rate-limit and call ``handler`` for socket ``sid``; turn every outcome into an envelope."""
    try:
        identity = services.connections.get(sid)
        _take_token(services, sid)
        _check_size(args, services.settings.max_payload_bytes)
        data = _validate(handler, args)
        ctx = EventContext(
            sid=sid,
            user_id=identity.user_id,
            session_id=identity.session_id,
            profile=identity.profile,
            services=services,
        )
        result = handler.func(ctx, data)
        return ok(_ack(services, handler, result))
    except RealtimeError as err:
        return failure(err)
    except UNAVAILABLE_ERRORS as exc:
        log_unavailable(logger, f"handling {handler.event}", exc)
        return failure(unavailable(exc))
    except Exception:
        logger.exception("handler for %s failed", handler.event)
        return failure(RealtimeError(ErrorCode.INTERNAL, "Internal error; it has been logged."))


def _ack(services: Services, handler: EventHandler, result: Any) -> Any:
    """The ack's data: ``result`` dumped through the ack schema, unless the handler returned it already dumped
    through that same schema (:class:`~realtime.fanout.emits.Shaped`)."""
    if handler.ack is None:
        return result.data if isinstance(result, Shaped) else result
    if isinstance(result, Shaped):
        if type(services.catalog.schema_of(result.event)) is type(handler.ack):
            return result.data
        return dumper(handler.ack)(result.data)
    return dumper(handler.ack)(result)


def _check_size(args: tuple[Any, ...], limit: int) -> None:
    try:
        size = len(json.dumps(args, separators=(",", ":"), default=repr))
    except (RecursionError, ValueError):
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, "The payload is nested too deeply.") from None
    if size > limit:
        raise RealtimeError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"The payload is {size} bytes; the limit is {limit} (MAX_PAYLOAD_BYTES)."
        )


def _disconnect_abuser(services: Services, sid: str) -> None:
    """Sustained flooding: say why, then end the session (the client does not reconnect by itself)."""
    logger.warning("disconnecting a socket after sustained rate limiting", extra={"sid": sid})
    record_rate_limit_disconnect()
    services.broadcaster.emit_local(
        sid,
        "error",
        {"code": ErrorCode.RATE_LIMITED.value, "message": "Disconnected after sustained flooding.", "event": "*"},
    )
    socketio.server.start_background_task(socketio.server.disconnect, sid, namespace="/", ignore_queue=True)


def _validate(handler: EventHandler, args: tuple[Any, ...]) -> Any:
    if handler.schema is None:
        return args[0] if args else None
    if len(args) != 1:
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, f"Expected one payload argument, got {len(args)}.")
    payload = args[0]
    if handler.wrap is not None and not isinstance(payload, dict):
        payload = {handler.wrap: payload}
    if not isinstance(payload, dict):
        raise RealtimeError(
            ErrorCode.VALIDATION_ERROR, f"The payload must be a JSON object, not {type(payload).__name__}."
        )
    fast = loader(handler.schema)
    loaded = fast(payload) if fast is not None else None
    if loaded is not None:
        return loaded
    try:
        return handler.schema.load(payload)
    except ValidationError as err:
        raise RealtimeError(ErrorCode.VALIDATION_ERROR, "The payload failed validation.", fields=err.messages) from None
