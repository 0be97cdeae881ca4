"""Commands every worker must act on (log out a session's sockets), over Redis pub/sub or in-process."""
from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import gevent
import redis
from gevent.event import Event

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
MAX_BACKOFF = 10.0
#: Seconds after a forced resubscribe during which a missed probe does not force another one.
RESUBSCRIBE_GRACE = 10.0
#: Why a session's sockets are logged out: the ``reason`` of ``force_logout``.
LOGOUT_REASONS = ("duplicate_login", "revoked")


def logout_command(session_ids: Sequence[str], reason: str) -> dict[str, Any]:
    """The command that logs out every socket of ``session_ids`` on every worker (``lua/connect.lua``
    publishes the same shape for a duplicate login).

    :raises ValueError: when ``reason`` is not one of :data:`LOGOUT_REASONS`.
    """
    if reason not in LOGOUT_REASONS:
        raise ValueError(f"logout reason {reason!r} is not one of {', '.join(LOGOUT_REASONS)}.")
    return {"op": "logout", "sessions": list(session_ids), "reason": reason}


class ControlBus(Protocol):
    """Publish a command to every worker; run handlers for commands received."""

    def publish(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every worker (this one included)."""

    def subscribe(self, handler: Handler) -> None:
        """Call ``handler`` for every message received."""

    def start(self) -> None:
        """Begin receiving (idempotent)."""

    def stop(self) -> None:
        """Stop receiving."""

    def probe(self, timeout: float) -> bool | None:
        """Check this worker's listener still receives (None: nothing to probe)."""


class LocalControlBus:
    """One process: a publish is handled at once."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def publish(self, message: dict[str, Any]) -> None:
        for handler in self._handlers:
            handler(message)

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def probe(self, timeout: float) -> bool | None:
        return None


class RedisControlBus:
    """Redis pub/sub on ``{KEY_PREFIX}control``; the listener reconnects with backoff and never dies."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._redis = client
        self._channel = channel
        self._handlers: list[Handler] = []
        self._listener: gevent.Greenlet | None = None
        self._pubsub: Any = None
        self._probes: dict[str, Event] = {}
        self._grace_until = 0.0
        self.ready = Event()

    def publish(self, message: dict[str, Any]) -> None:
        self._redis.publish(self._channel, json.dumps(message, separators=(",", ":")))

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def start(self) -> None:
        if self._listener is None:
            self._listener = gevent.spawn(self._listen_forever)

    def probe(self, timeout: float) -> bool | None:
        if self._listener is None:
            return None
        nonce = secrets.token_hex(8)
        seen = Event()
        self._probes[nonce] = seen
        try:
            self.publish({"op": "probe", "nonce": nonce})
            ok = seen.wait(timeout)
        finally:
            self._probes.pop(nonce, None)
        if not ok and time.monotonic() >= self._grace_until:
            logger.warning("control listener missed its probe; forcing it to resubscribe")
            connection = getattr(self._pubsub, "connection", None)
            if connection is not None:
                connection.disconnect()
            self._grace_until = time.monotonic() + RESUBSCRIBE_GRACE
        return ok

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.kill(block=False)
            self._listener = None
            self.ready.clear()

    def _listen_forever(self) -> None:
        backoff = 0.5
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            self._pubsub = pubsub
            try:
                pubsub.subscribe(self._channel)
                self.ready.set()
                backoff = 0.5
                while True:
                    message = pubsub.get_message(timeout=30.0)
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message.get("data"))
            except redis.RedisError:
                self.ready.clear()
                logger.warning("control channel lost; resubscribing in %.1fs", backoff, exc_info=True)
                gevent.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:
                # A connection dropped under the reader (forced resubscribe) surfaces as ValueError/OSError.
                self.ready.clear()
                logger.exception("control listener failed; resubscribing in %.1fs", backoff)
                gevent.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                pubsub.close()

    def _dispatch(self, raw: Any) -> None:
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            logger.warning("ignored a malformed control message")
            return
        if not isinstance(message, dict):
            return
        if message.get("op") == "probe":
            waiting = self._probes.pop(str(message.get("nonce")), None)
            if waiting is not None:
                waiting.set()
            return
        for handler in self._handlers:
            try:
                handler(message)
            except Exception:
                logger.exception("control handler failed for op %r", message.get("op"))
