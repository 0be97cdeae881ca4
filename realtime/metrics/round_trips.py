"""Count the Redis round trips one socket event makes, for ``realtime_redis_round_trips``.

:func:`counting` opens a counter in the current context (each greenlet has its own, so concurrent events
do not mix); the Redis connection class of :mod:`realtime.stores.redis.client` calls :func:`bump` once per
request it writes (a single command or a whole pipeline), which is what the "≤ 3 round trips per event"
rule counts. Outside an open counter :func:`bump` does nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class RoundTripCounter:
    """Round trips written to Redis while it is open."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


_current: ContextVar[RoundTripCounter | None] = ContextVar("realtime_round_trips", default=None)


def bump() -> None:
    """Count one round trip in the counter open in this context, if any."""
    counter = _current.get()
    if counter is not None:
        counter.count += 1


@contextmanager
def counting() -> Iterator[RoundTripCounter]:
    """Open a counter for the duration of the block (nested blocks count in the innermost one)."""
    counter = RoundTripCounter()
    token = _current.set(counter)
    try:
        yield counter
    finally:
        _current.reset(token)
