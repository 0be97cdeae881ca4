"""One place that turns ``REDIS_URL`` into a client with sane timeouts."""
from __future__ import annotations

import redis


def connect_redis(url: str) -> redis.Redis:
    """Create a pooled client that decodes replies to ``str``.

    Timeouts keep a dead Redis from hanging a greenlet forever; gevent's patched sockets
    make every call cooperative.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
    )
