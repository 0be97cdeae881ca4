"""One place that turns ``REDIS_URL`` into a client with sane timeouts and a pool that waits."""
from __future__ import annotations

import redis

#: Seconds a greenlet waits for a pooled connection before the call fails.
POOL_TIMEOUT = 10


def connect_redis(url: str, max_connections: int = 200) -> redis.Redis:
    """Create a client that decodes replies to ``str``, over a *blocking* pool.

    A reconnect storm makes hundreds of greenlets talk to Redis at once; a plain pool raises
    ``MaxConnectionsError`` past its size, a blocking one makes them queue for a connection.
    Timeouts keep a dead Redis from hanging a greenlet forever; gevent's patched sockets make every
    call cooperative.
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
    return redis.Redis(connection_pool=pool)
