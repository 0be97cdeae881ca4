"""Recent errors for the admin view: this process's last WARNING+ lines and failed events, shared by the cluster.

A logging handler keeps the newest :data:`KEEP` entries of this process in memory and, with Redis, hands them
to a background greenlet that pushes them to one capped Redis list every worker writes. The caller of the
log line never waits on Redis: the handler only appends to a bounded queue (full: the entry is dropped and
counted), and the greenlet drains it in batches of one round trip each, :data:`FLUSH_DELAY` after the first
new entry (a burst of errors costs one round trip), backing off while Redis is away.
"""
from __future__ import annotations

import json
import logging
import socket
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import gevent
import gevent.event
import redis
from gevent import monkey

from realtime.log_context import ContextFilter
from realtime.log_setup import RedactingFilter, scrub

logger = logging.getLogger(__name__)

#: Entries kept: in this process's buffer and in the cluster's list.
KEEP = 100
#: Entries waiting for Redis at most; past it new entries are dropped (and counted).
QUEUE_MAX = 1000
#: Entries pushed per round trip at most.
BATCH = 100
#: Seconds between push attempts while Redis fails: doubling from the first to the last.
BACKOFF = (0.5, 30.0)
#: Seconds the pusher waits after the first new entry, so that a burst of errors costs one round trip.
FLUSH_DELAY = 1.0
#: Longest message kept: an entry is a pointer into the full log, not a copy of it.
MESSAGE_CHARS = 500
#: The list's key under KEY_PREFIX.
KEY_SUFFIX = "recent-errors"
_HOST = socket.gethostname()
# Native (unpatched) thread id: the gevent hub belongs to one thread, so only that thread may wake the pusher.
_native_thread_id: Callable[[], int] = monkey.get_original("threading", "get_ident")


def entry_for(record: logging.LogRecord) -> dict[str, Any]:
    """The admin view's entry for ``record``: scrubbed message, never arguments, bodies or tracebacks."""
    entry: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": scrub(record.getMessage())[:MESSAGE_CHARS],
        "worker": record.process,
        "host": _HOST,
    }
    for key in ("event", "code"):
        value = getattr(record, key, None)
        if value is not None:
            entry[key] = str(value)[:80]
    if record.exc_info and record.exc_info[0] is not None:
        entry["exc"] = record.exc_info[0].__name__
    return entry


class RecentErrors(logging.Handler):
    """Keep WARNING+ records and failed events; push them to the cluster's list without blocking anyone."""

    def __init__(self, client: redis.Redis | None = None, key: str = KEY_SUFFIX, keep: int = KEEP,
                 queue_max: int = QUEUE_MAX, backoff: tuple[float, float] = BACKOFF,
                 flush_delay: float = FLUSH_DELAY) -> None:
        super().__init__(logging.INFO)
        self.backoff = backoff
        self.flush_delay = flush_delay
        self.addFilter(RedactingFilter())
        self.addFilter(ContextFilter())
        self.client = client
        self.key = key
        self.keep = keep
        self.local: deque[dict[str, Any]] = deque(maxlen=keep)
        self.queue: deque[str] = deque()
        self.queue_max = queue_max
        #: Entries dropped because the queue was full (Redis away for long).
        self.dropped = 0
        self._wake = gevent.event.Event()
        self._pusher: gevent.Greenlet | None = None
        self._hub_thread = _native_thread_id()

    def emit(self, record: logging.LogRecord) -> None:
        """Remember ``record`` when it is WARNING+ or a failed event; queue it for Redis (never waits)."""
        # A failed event's line is INFO with a ``code``: kept too, so a client's bad event shows up.
        if record.levelno < logging.WARNING and getattr(record, "code", None) is None:
            return
        entry = entry_for(record)
        self.local.append(entry)
        if self.client is None:
            return
        if len(self.queue) >= self.queue_max:
            self.dropped += 1
            return
        self.queue.append(json.dumps(entry, ensure_ascii=False))
        if _native_thread_id() == self._hub_thread:
            if self._pusher is None:
                self._pusher = gevent.spawn(self._push_forever)
            self._wake.set()

    def entries(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` entries, newest first: the cluster's list, or this process's without Redis."""
        limit = max(0, min(limit, self.keep))
        if limit == 0:
            return []
        if self.client is not None:
            try:
                raw = self.client.lrange(self.key, 0, limit - 1)
            except redis.RedisError as exc:
                logger.warning("recent errors: Redis unavailable (%s); showing this process's only", type(exc).__name__)
            else:
                return [json.loads(item) for item in raw]
        return list(reversed(self.local))[:limit]

    def push_once(self) -> int:
        """Push up to :data:`BATCH` queued entries in one round trip; return how many.

        :raises redis.RedisError: the entries go back to the front of the queue (as many as fit).
        """
        batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
        if not batch or self.client is None:
            return 0
        try:
            # LPUSH puts its last argument first: the newest entry heads the list.
            self.client.pipeline(transaction=False).lpush(self.key, *batch).ltrim(self.key, 0, self.keep - 1).execute()
        except redis.RedisError:
            room = max(0, self.queue_max - len(self.queue))
            self.dropped += len(batch) - min(room, len(batch))
            self.queue.extendleft(reversed(batch[len(batch) - min(room, len(batch)):]))
            raise
        return len(batch)

    def stop(self) -> None:
        """Stop the pusher greenlet (entries still queued stay in this process's buffer)."""
        if self._pusher is not None:
            self._pusher.kill(block=False)
            self._pusher = None

    def _push_forever(self) -> None:
        first, longest = self.backoff
        delay = first
        failing = False
        while True:
            self._wake.wait(timeout=longest)
            gevent.sleep(self.flush_delay)
            self._wake.clear()
            while self.queue:
                try:
                    self.push_once()
                except redis.RedisError as exc:
                    if not failing:
                        logger.warning("recent errors: cannot push to Redis (%s); retrying with backoff",
                                       type(exc).__name__)
                    failing = True
                    gevent.sleep(delay)
                    delay = min(delay * 2, longest)
                except Exception:
                    logger.exception("recent errors: pushing to Redis failed unexpectedly")
                    gevent.sleep(delay)
                    delay = min(delay * 2, longest)
                else:
                    if failing:
                        logger.info("recent errors: pushing to Redis again (%d dropped so far)", self.dropped)
                    failing, delay = False, first


_installed: RecentErrors | None = None


def install(client: redis.Redis | None, key_prefix: str, keep: int = KEEP) -> RecentErrors:
    """Attach this process's recent-errors handler to the root logger (replacing the previous one).

    :param client: Redis shared by the cluster, or None to keep this process's entries only.
    :param key_prefix: KEY_PREFIX; the list is ``{prefix}recent-errors``.
    """
    global _installed
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.stop()
    _installed = RecentErrors(client, f"{key_prefix}{KEY_SUFFIX}", keep)
    root.addHandler(_installed)
    return _installed


def recent_errors(limit: int = 50) -> list[dict[str, Any]]:
    """The cluster's newest ``limit`` (≤ :data:`KEEP`) errors, newest first; this process's without Redis.

    Each entry: ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` (scrubbed), ``worker`` (pid),
    ``host``, and when known ``event``, ``code`` (an error code) and ``exc`` (the exception's class).
    """
    if _installed is None:
        return []
    return _installed.entries(limit)


def dropped() -> int:
    """Entries this process dropped because Redis was away longer than its queue lasts."""
    return _installed.dropped if _installed is not None else 0

