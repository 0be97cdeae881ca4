"""What a Redis failure means for clients and operators: the one mapping to ``UNAVAILABLE``, the start-up
check of the eviction policy, and the write the readiness probe makes.

Redis can fail in two ways that clients must see alike: it does not answer (connection refused, timeout),
or it answers but refuses writes — ``OOM`` when it reached ``maxmemory`` under ``noeviction``, ``READONLY``
when the server we talk to became a replica after a failover. Both clear up without a restart of ours, so
the client gets ``UNAVAILABLE`` and may retry.
"""
from __future__ import annotations

import logging

import redis
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from realtime.errors import ErrorCode, RealtimeError

logger = logging.getLogger(__name__)

#: Redis answered, but refused to write: out of memory under ``noeviction``, or a read-only replica.
REFUSED_WRITE_ERRORS: tuple[type[redis.RedisError], ...] = (OutOfMemoryError, ReadOnlyError)
#: Redis failures a client sees as ``UNAVAILABLE`` (anything else is a bug: ``INTERNAL``).
UNAVAILABLE_ERRORS: tuple[type[redis.RedisError], ...] = (redis.ConnectionError, redis.TimeoutError, *REFUSED_WRITE_ERRORS)
#: The only eviction policy under which Redis never drops our keys (it refuses writes instead).
SAFE_POLICY = "noeviction"
#: Seconds the start-up check waits for Redis: a worker must not hang at boot on a Redis that drops packets.
CHECK_TIMEOUT = 2.0


def refused_write(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a write (``OOM`` or ``READONLY``) rather than not answering."""
    return isinstance(exc, REFUSED_WRITE_ERRORS)


def unavailable(exc: redis.RedisError) -> RealtimeError:
    """The ``UNAVAILABLE`` refusal a client sees for ``exc``, saying whether Redis refused or did not answer."""
    if isinstance(exc, OutOfMemoryError):
        return RealtimeError(
            ErrorCode.UNAVAILABLE, "Redis refused the write: it is out of memory (maxmemory reached); retry later."
        )
    if isinstance(exc, ReadOnlyError):
        return RealtimeError(
            ErrorCode.UNAVAILABLE, "Redis refused the write: it is a read-only replica (failover); retry shortly."
        )
    return RealtimeError(ErrorCode.UNAVAILABLE, "A backing service is unavailable; retry shortly.")


def log_unavailable(log: logging.Logger, what: str, exc: redis.RedisError) -> None:
    """Log a Redis failure while doing ``what``.

    A refused write repeats for every event until an operator frees memory or fixes the failover, so it is
    one line naming the Redis error class (the error text can quote a command's arguments, hence a payload);
    a Redis that does not answer keeps its traceback, which says where the connection broke.
    """
    if refused_write(exc):
        log.warning("redis refused a write while %s (%s): see 'Redis in production' in the README",
                    what, type(exc).__name__)
    else:
        log.warning("redis unavailable while %s", what, exc_info=exc)


def eviction_policy(url: str) -> str | None:
    """Read Redis's ``maxmemory-policy``: ``CONFIG GET``, else ``INFO memory`` (managed Redis often forbids
    ``CONFIG``); None when neither answers. Its own short-lived client, so a silent Redis costs at most
    :data:`CHECK_TIMEOUT` seconds and no retries."""
    client = redis.Redis.from_url(
        url, socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT, retry=None, decode_responses=True
    )
    try:
        try:
            policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        except redis.ResponseError:
            policy = client.info("memory").get("maxmemory_policy")
    except redis.RedisError as exc:
        logger.info("could not read Redis's maxmemory-policy (%s); make sure it is %s", type(exc).__name__, SAFE_POLICY)
        return None
    finally:
        client.close()
    return str(policy) if policy is not None else None


def warn_if_keys_can_be_evicted(url: str | None) -> None:
    """At start-up: log a WARNING when Redis may evict keys, naming the setting and the fix."""
    if not url:
        return
    policy = eviction_policy(url)
    if policy is None or policy == SAFE_POLICY:
        return
    logger.warning(
        "Redis maxmemory-policy is %r: when Redis fills up it may evict sessions (users are logged out), "
        "presence and room entries (wrong counts), recovery records and chat history. Set "
        "maxmemory-policy to %s (redis.conf, CONFIG SET, or your provider's setting, e.g. "
        "`heroku redis:maxmemory --policy noeviction`) and give Redis enough memory.",
        policy,
        SAFE_POLICY,
    )


def probe_write(client: redis.Redis, key: str) -> None:
    """The readiness probe: one small write, which fails when Redis is unreachable *or* refuses writes.

    A ``PING`` answers even while every write is refused (out of memory, read-only replica). The key
    expires by itself.

    :raises redis.RedisError: what the write raised.
    """
    client.set(key, "1", ex=60)
