"""The registry of live workers: each worker's heartbeat publishes a small status record, the admin view
reads them all. One interface, two transports.

With Redis every record is a JSON string with an expiry (``PRESENCE_TTL``), listed in a sorted set scored by
that expiry: a worker that stops beating drops out on its own, and a read costs two round trips whatever the
number of sockets. In memory (one process) the only worker is this one, and its record is built when read.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import redis

#: Records read at most: a cluster with more workers than this shows the first ones by id.
MAX_WORKERS = 256

WorkerRecord = dict[str, Any]


def workers_key(prefix: str) -> str:
    """ZSET of worker id -> expiry (unix seconds)."""
    return f"{prefix}admin-workers"


def worker_key(prefix: str, worker_id: str) -> str:
    """STRING: the worker's latest JSON record, expiring with it."""
    return f"{prefix}admin-worker:{worker_id}"


class WorkerRegistry(Protocol):
    """Where workers publish their status and the admin view reads it."""

    def publish(self, record: WorkerRecord) -> None:
        """Store this worker's ``record`` (it has an ``id``) until the next beat or its expiry."""

    def live(self) -> list[WorkerRecord]:
        """The records of the workers that beat within their expiry, sorted by id."""


class RedisWorkerRegistry:
    """The cluster transport: one pipelined round trip per beat, two per read."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: float, clock: Callable[[], float]) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl
        self._clock = clock

    def publish(self, record: WorkerRecord) -> None:
        now = self._clock()
        worker_id = str(record["id"])
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(worker_key(self._prefix, worker_id), json.dumps(record, separators=(",", ":")), px=int(self._ttl * 1000))
        pipe.zadd(workers_key(self._prefix), {worker_id: now + self._ttl})
        # Prune the workers that stopped beating here: no reader ever has to.
        pipe.zremrangebyscore(workers_key(self._prefix), "-inf", now)
        pipe.execute()

    def live(self) -> list[WorkerRecord]:
        ids = self._redis.zrangebyscore(workers_key(self._prefix), f"({self._clock()}", "+inf", start=0, num=MAX_WORKERS)
        if not ids:
            return []
        raw = self._redis.mget([worker_key(self._prefix, worker_id) for worker_id in ids])
        records = [json.loads(item) for item in raw if item]
        return sorted(records, key=lambda record: str(record.get("id")))


class MemoryWorkerRegistry:
    """The embedded default: this process is the only worker; its record is built fresh by ``source``."""

    def __init__(self, source: Callable[[], WorkerRecord]) -> None:
        self._source = source

    def publish(self, record: WorkerRecord) -> None:
        return None

    def live(self) -> list[WorkerRecord]:
        return [self._source()]
