"""The heartbeat: keep this worker's sockets alive in the cluster-wide state, reap dead workers' sockets and
publish this worker's status for the admin view (:mod:`.worker_status`).

A beat only extends the expiry of the sockets whose entries Redis holds (three commands per socket). Rooms
are written again only for sockets whose entries are missing, or for every socket once Redis restarted: on a
worker with 10,000 sockets, writing every room at each beat held Redis for 0.3 s and the hub for 60 ms,
which a message arriving then waited out (issue 9). Work over every socket goes in slices, with the hub let
go between them.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import TypeVar

import gevent

from realtime.cluster import worker_status
from realtime.cluster.worker_status import Totals, WorkerStatus
from realtime.metrics.recorders import local_totals
from realtime.services.container import Services
from realtime.stores.socket_records import LocalSocket
from realtime.stores.workers import (
    MemoryWorkerRegistry,
    RedisWorkerRegistry,
    WorkerRegistry,
)

logger = logging.getLogger(__name__)

#: Sockets reaped per heartbeat at most.
REAP_BATCH = 500

T = TypeVar("T")


def in_slices(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in slices of :data:`worker_status.SLICE`, letting other greenlets run before each slice but
    the first."""
    size = worker_status.SLICE
    for start in range(0, len(items), size):
        if start:
            gevent.sleep(0)
        yield items[start : start + size]


class Heartbeat:
    """One beat extends every local socket's expiry (restoring lost entries) and reaps expired ones of workers
    that stopped beating."""

    def __init__(self, services: Services, totals: Totals = local_totals) -> None:
        self._services = services
        self.status = WorkerStatus(services, totals)
        #: Where this worker's status goes; the admin view reads every worker's from it.
        self.registry: WorkerRegistry = (
            RedisWorkerRegistry(services.redis, services.keys.prefix, services.settings.presence_ttl, time.time)
            if services.redis is not None
            else MemoryWorkerRegistry(self.status.record)
        )

    def beat(self) -> int:
        """One heartbeat: refresh this worker's sockets, reap expired ones, publish this worker's status;
        return how many sockets were reaped."""
        services = self._services
        stale = services.state.touch([sid for sid, _ in services.connections.items()])
        if stale:
            self._restore(stale)
        reaped = services.state.reap(REAP_BATCH, services.catalog.counted_rooms)
        if reaped:
            logger.info("reaped %d socket(s) of a worker that stopped heartbeating", len(reaped))
            services.broadcaster.emit_many(services.release_events(reaped))
        if services.settings.admin_enabled:  # nobody reads the records otherwise: no write, no round trip
            self.registry.publish(self.status.record())
        return len(reaped)

    def _restore(self, stale: list[str]) -> None:
        """Write the live ones among ``stale`` again with their rooms, as they are now."""
        services = self._services
        snapshot: list[LocalSocket] = []
        for part in in_slices(stale):
            snapshot += self.status.local_sockets(part)
        parked = services.state.refresh(snapshot)
        self._undo_changes_during_refresh(snapshot, set(parked))

    def _undo_changes_during_refresh(self, snapshot: list[LocalSocket], parked: set[str]) -> None:
        """The refresh wrote a snapshot; a socket released or a room left while it ran was re-added. Remove
        those entries again, quietly: their own disconnect or leave already announced it. A socket parked
        meanwhile (``parked``: the refresh left it alone) keeps its recovery window, and the reaper announces
        it if nobody claims it."""
        services = self._services
        live = dict(services.connections.items())
        gone = [sock.sid for sock in snapshot if sock.sid not in live and sock.sid not in parked]
        if gone:
            services.state.release(gone)
        for part in in_slices(snapshot):
            for sock in part:
                if sock.sid in live:
                    left = sorted(set(sock.rooms) - services.rooms.rooms_of(sock.sid))
                    if left:
                        services.rooms.unindex(sock.sid, sock.user_id, left)
