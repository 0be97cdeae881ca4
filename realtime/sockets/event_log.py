"""The log context of each handled event, connect and disconnect, and the lines that describe them.

Every line logged while a socket's event runs carries its ``sid``, ``userId`` and ``event``
(:mod:`realtime.log_context`). Beyond that, an event costs a log line only when it is worth one: a failed
event (logger ``realtime.events``, INFO; DEBUG for ``RATE_LIMITED``, whose floods would flood the log), and
every step of a user listed in ``DEBUG_USERS`` (logger ``realtime.debug``). Neither ever holds a payload.
"""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask_socketio import ConnectionRefusedError

from realtime.errors import ErrorCode, RealtimeError
from realtime.log_context import log_context
from realtime.log_setup import DEBUG_LOGGER, EVENTS_LOGGER
from realtime.services.container import Services

events_log = logging.getLogger(EVENTS_LOGGER)
debug_log = logging.getLogger(DEBUG_LOGGER)

#: A flood of refused events would flood the log; the disconnect after RATE_LIMIT_DISCONNECT is logged.
QUIET_CODES = frozenset({ErrorCode.RATE_LIMITED.value})


def _debugged(services: Services, user_id: str | None) -> bool:
    return user_id is not None and user_id in services.settings.debug_users


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


class EventScope:
    """One handled event: who sent it, when it started; :meth:`done` writes its line if it deserves one."""

    def __init__(self, event: str, debugged: bool) -> None:
        self.event = event
        self.debugged = debugged
        self.start = time.perf_counter()

    def done(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Log the event's outcome (a failure, or any outcome of a debug user); return ``envelope``."""
        if envelope["ok"] and not self.debugged:
            return envelope
        code = "ok" if envelope["ok"] else str(envelope["error"]["code"])
        if self.debugged:
            extra: dict[str, Any] = {"ack": code, "duration": _elapsed_ms(self.start)}
            if code != "ok":
                extra["code"] = code
            debug_log.info("event %s answered %s", self.event, code, extra=extra)
        else:
            # INFO even for INTERNAL and UNAVAILABLE: the handler's own WARNING/ERROR line says what broke.
            events_log.log(logging.DEBUG if code in QUIET_CODES else logging.INFO, "event %s failed: %s",
                           self.event, code, extra={"code": code, "duration": _elapsed_ms(self.start)})
        return envelope


@contextmanager
def handling(event: str, sid: str, services: Services) -> Iterator[EventScope]:
    """Bind socket ``sid``, its user and ``event`` to every line logged inside the block."""
    with log_context(sid=sid, event=event) as bound:
        try:
            user_id = bound["userId"] = services.connections.get(sid).user_id
        except RealtimeError:
            # Not authenticated: the handler answers AUTH_REQUIRED, and the line says so without a user.
            user_id = None
        yield EventScope(event, user_id is not None and user_id in services.settings.debug_users)


def logged_connect(func: Callable[[Services, str, Any, Any], Any]) -> Callable[[Services, str, Any, Any], Any]:
    """Run the ``connect`` handler ``func(services, sid, environ, auth)`` in a log context; for a debug user,
    log the outcome and its duration.

    The handler binds ``userId`` (:func:`realtime.log_context.bind`) once the token names the user.
    """

    @functools.wraps(func)
    def connect(services: Services, sid: str, environ: Any, auth: Any = None) -> Any:
        with log_context(sid=sid, event="connect") as bound:
            start = time.perf_counter()
            try:
                result = func(services, sid, environ, auth)
            except ConnectionRefusedError as refusal:
                if _debugged(services, bound.get("userId")):
                    details = refusal.args[1] if len(refusal.args) > 1 and isinstance(refusal.args[1], dict) else {}
                    code = str(details.get("code", "refused"))
                    debug_log.info("connect refused: %s", code,
                                   extra={"ack": code, "code": code, "duration": _elapsed_ms(start)})
                raise
            if _debugged(services, bound.get("userId")):
                debug_log.info("connect ok", extra={"ack": "ok", "duration": _elapsed_ms(start)})
            return result

    return connect


def logged_disconnect(func: Callable[[Services, str, Any], Any]) -> Callable[[Services, str, Any], Any]:
    """Run the ``disconnect`` handler ``func(services, sid, reason)`` in a log context; for a debug user, log
    the reason."""

    @functools.wraps(func)
    def disconnect(services: Services, sid: str, reason: Any = None) -> Any:
        with log_context(sid=sid, event="disconnect") as bound:
            start = time.perf_counter()
            result = func(services, sid, reason)
            if _debugged(services, bound.get("userId")):
                debug_log.info("disconnect: %s", reason, extra={"reason": str(reason), "duration": _elapsed_ms(start)})
            return result

    return disconnect
