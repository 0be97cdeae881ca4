"""One place that turns ``REDIS_URL`` into a client with sane timeouts and a pool that waits."""
from __future__ import annotations

import inspect
import socket
from types import MethodType
from typing import Any

import redis

from realtime.metrics.round_trips import bump

#: Seconds a greenlet waits for a pooled connection before the call fails.
POOL_TIMEOUT = 10


class _CountsRoundTrips:
    """Connection mixin: each request written to Redis (a command or a pipeline's batch) is one round trip.

    redis-py writes either through one ``send_packed_command``. Health-check PINGs (``check_health=False``)
    and the commands that set up a new pooled connection are per connection, not per event: not counted,
    the same as the round-trip rule's test counts them.
    """

    _realtime_setting_up = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if check_health and not self._realtime_setting_up:
            bump()
        super().send_packed_command(command, check_health)  # type: ignore[misc]

    def can_read(self, timeout: float = 0) -> bool:
        """Whether a reply waits, as redis-py asks on every checkout from the pool: with no timeout, one
        non-blocking ``MSG_PEEK`` on the OS socket under gevent's, instead of redis-py's ``select.poll()``,
        which gevent emulates with watchers on the hub (about a tenth of a chat message's CPU)."""
        raw = getattr(getattr(self, "_sock", None), "_sock", None)
        reader = getattr(getattr(self, "_parser", None), "_reader", None)
        if timeout or raw is None or reader is None or not hasattr(reader, "has_data"):
            return super().can_read(timeout)  # type: ignore[misc]
        if reader.has_data():
            return True
        try:
            raw.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            # A reset connection reads as ready: the pool then reconnects it, as after redis-py's own check.
            return True
        return True

    def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        self._realtime_setting_up = True
        try:
            super().on_connect_check_health(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._realtime_setting_up = False


_counting_classes: dict[type, type] = {}


def _counting(connection_class: type) -> type:
    """``connection_class`` (plain, TLS or unix socket, as the URL chose) with round trips counted."""
    if connection_class not in _counting_classes:
        _counting_classes[connection_class] = type(
            f"Counting{connection_class.__name__}", (_CountsRoundTrips, connection_class), {}
        )
    return _counting_classes[connection_class]


def connect_redis(url: str, max_connections: int = 200) -> redis.Redis:
    """Create a client that decodes replies to ``str``, over a *blocking* pool.

    A reconnect storm makes hundreds of greenlets talk to Redis at once; a plain pool raises
    ``MaxConnectionsError`` past its size, a blocking one makes them queue for a connection.
    Timeouts keep a dead Redis from hanging a greenlet forever; gevent's patched sockets make every
    call cooperative. Its connections count round trips for ``realtime_redis_round_trips``
    (:mod:`realtime.metrics.round_trips`).
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_TIMEOUT,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
    )
    pool.connection_class = _counting(pool.connection_class)
    # redis-py wraps get_connection in a check for a deprecated argument this code never passes; the check
    # inspects every call's arguments (a twentieth of a chat message's CPU): call the method itself.
    pool.get_connection = MethodType(inspect.unwrap(type(pool).get_connection), pool)  # type: ignore[method-assign]
    return redis.Redis(connection_pool=pool)
