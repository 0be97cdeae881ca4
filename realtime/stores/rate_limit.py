"""Per-socket token buckets: a socket lives on one worker, so the bucket needs no Redis."""
from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """Allows ``rate`` events per second per key with bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._strikes: dict[str, int] = {}
        self._flagged: set[str] = set()

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False when its bucket is empty (a strike)."""
        now = self._clock()
        tokens, stamp = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            self._strikes[key] = self._strikes.get(key, 0) + 1
            return False
        self._buckets[key] = (tokens - 1.0, now)
        self._strikes.pop(key, None)
        return True

    def flag_once(self, key: str) -> bool:
        """True the first time ``key`` is flagged (a socket being disconnected for abuse)."""
        if key in self._flagged:
            return False
        self._flagged.add(key)
        return True

    def strikes(self, key: str) -> int:
        """Refusals in a row for ``key`` (sustained abuse)."""
        return self._strikes.get(key, 0)

    def forget(self, key: str) -> None:
        """Drop the bucket of a closed socket."""
        self._buckets.pop(key, None)
        self._strikes.pop(key, None)
        self._flagged.discard(key)


class Throttle:
    """At most one pass per ``interval`` per key (typing indicators); bounded by forgetting closed sockets."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def allow(self, sid: str, key: str) -> bool:
        """True when ``(sid, key)`` has not passed within the interval; records the pass."""
        now = self._clock()
        last = self._last.get((sid, key))
        if last is not None and now - last < self._interval:
            return False
        self._last[(sid, key)] = now
        return True

    def reset(self, sid: str, key: str) -> None:
        """Let the next pass of ``(sid, key)`` through."""
        self._last.pop((sid, key), None)

    def forget(self, sid: str) -> None:
        """Drop every entry of a closed socket."""
        for entry in [k for k in self._last if k[0] == sid]:
            del self._last[entry]
