"""This worker's status record for the admin view: its sockets, its busiest rooms and its message rates.

The heartbeat publishes it (:mod:`realtime.stores.workers`); everything in it is bounded, so a record stays a
few kilobytes however many sockets the worker holds. Rates are deltas of this process's cumulative counters
(:func:`realtime.metrics.recorders.local_totals`) between two samples.
"""
from __future__ import annotations

import heapq
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import gevent

from realtime.auth.handshake import Identity
from realtime.metrics.recorders import local_totals
from realtime.services.container import Services
from realtime.stores.socket_records import LocalSocket
from realtime.timestamps import iso

#: Sockets handled between two yields of the hub (here and in the heartbeat).
SLICE = 500
#: Sockets listed per worker at most (the count is always exact).
SOCKETS_LISTED = 100
#: Rooms per worker reported with their local socket counts, busiest first.
ROOMS_LISTED = 100
#: Counter names of :func:`local_totals` -> the record's field names.
RATE_FIELDS = {
    "events_received": "eventsReceived",
    "events_emitted": "eventsEmitted",
    "deliveries": "deliveries",
    "event_errors": "eventErrors",
}

Totals = Callable[[], Mapping[str, float]]


class RateMeter:
    """Per-second rates of cumulative counters between the previous sample and this one.

    A sample taken less than ``min_interval`` after the previous one repeats its rates rather than divide a
    tiny delta by a tiny time (page refreshes in memory mode sample too).
    """

    def __init__(self, totals: Totals, clock: Callable[[], float] = time.monotonic, min_interval: float = 1.0) -> None:
        self._totals = totals
        self._clock = clock
        self._min_interval = min_interval
        self._last = (clock(), dict(totals()))
        self._rates = {name: 0.0 for name in RATE_FIELDS.values()}

    def sample(self) -> tuple[dict[str, float], dict[str, float]]:
        """The cumulative totals now and the rates since the previous sample, by record field name."""
        now, current = self._clock(), dict(self._totals())
        then, previous = self._last
        if now - then >= self._min_interval:
            self._rates = {
                field: round(max(0.0, current.get(name, 0.0) - previous.get(name, 0.0)) / (now - then), 3)
                for name, field in RATE_FIELDS.items()
            }
            self._last = (now, current)
        return {field: current.get(name, 0.0) for name, field in RATE_FIELDS.items()}, dict(self._rates)


def _local(services: Services, sid: str, identity: Identity) -> LocalSocket:
    return LocalSocket(sid, identity.user_id, identity.session_id, sorted(services.rooms.rooms_of(sid)))


class WorkerStatus:
    """Builds this worker's record from its connection registry and counters."""

    def __init__(self, services: Services, totals: Totals = local_totals, clock: Callable[[], float] = time.time) -> None:
        self._services = services
        self._clock = clock
        self._started = clock()
        self.meter = RateMeter(totals)

    @property
    def worker_id(self) -> str:
        """``host:pid``: read when asked, since gunicorn may build the app before it forks the worker."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def local_sockets(self, sids: Iterable[str] | None = None) -> list[LocalSocket]:
        """This worker's sockets (of ``sids`` only, those still connected) with their rooms, as the heartbeat
        writes them; over every socket, the hub is let go every ``SLICE`` sockets."""
        services = self._services
        if sids is not None:
            found = ((sid, services.connections.find(sid)) for sid in sids)
            return [_local(services, sid, identity) for sid, identity in found if identity is not None]
        local: list[LocalSocket] = []
        for count, (sid, identity) in enumerate(services.connections.items(), 1):
            local.append(_local(services, sid, identity))
            if count % SLICE == 0:
                gevent.sleep(0)
        return local

    def record(self, local: Sequence[LocalSocket] | None = None) -> dict[str, Any]:
        """The record: ids, counts, a bounded list of sockets and rooms, cumulative totals and rates."""
        sockets = list(self.local_sockets() if local is None else local)
        rooms: Counter[str] = Counter(room for sock in sockets for room in sock.rooms)
        listed = heapq.nsmallest(SOCKETS_LISTED, sockets, key=lambda sock: (sock.user_id, sock.sid))
        totals, rates = self.meter.sample()
        return {
            "id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "startedAt": iso(self._started),
            "beatAt": iso(self._clock()),
            "draining": self._services.draining,
            "sockets": len(sockets),
            "users": len({sock.user_id for sock in sockets}),
            "listed": [{"sid": sock.sid, "userId": sock.user_id, "rooms": len(sock.rooms)} for sock in listed],
            "rooms": heapq.nlargest(ROOMS_LISTED, rooms.items(), key=lambda item: (item[1], item[0])),
            "totals": totals,
            "rates": rates,
        }
