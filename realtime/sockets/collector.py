"""Full garbage collections paced so that none stops a busy worker for long (issue 9: p99 at 10K sockets).

A worker holding 10,000 sockets has about a million objects the cyclic collector tracks (~100 per socket).
CPython collects the oldest generation whenever it has grown by a quarter since the last full collection,
and a full collection scans every tracked object with the hub stopped: measured in ``bench/side_by_side.py
--scenario c``, pauses of 0.3-0.6 s, each delaying every delivery of the worker by as much (p99 0.4-0.7 s
when one fell inside the measured window).

:class:`FullCollectionPacing` freezes (``gc.freeze``) what survives each full collection: the next full
collection scans only objects younger than that, so its pause follows what the worker allocated since, not
how many sockets it holds. Frozen objects are still freed the ordinary way (reference counts) when a socket
goes; what the collector alone could free (reference cycles among frozen objects) waits for the rescan:
every ``GC_RESCAN_INTERVAL`` seconds everything is unfrozen once, so one full collection scans the whole heap
again: one long pause per interval instead of one per quarter of growth.
"""
from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

#: Generation the collector calls its oldest (a full collection).
OLDEST = 2
#: Generation-1 collections between full ones: CPython's default. With what survives frozen, a full
#: collection is short, and a frequent one keeps it short (tune_collector's 100 let 700,000 allocations
#: build up between them: pauses of 0.2 s in a connect storm).
FULL_EVERY = 10

class FullCollectionPacing:
    """After each full collection, freeze its survivors (see the module); every ``rescan_interval`` seconds,
    unfreeze everything instead, so that the next full collection scans the whole heap.

    Both happen in the collector's own callback, once the collection is over: ``gc.freeze`` and
    ``gc.unfreeze`` only move the collector's lists (nothing is allocated, freed or switched), whichever
    thread the collection ran in.

    :param rescan_interval: seconds between full-heap scans (``GC_RESCAN_INTERVAL``).
    :param clock: monotonic seconds.
    """

    def __init__(self, rescan_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rescan_interval = rescan_interval
        self._clock = clock
        self._last_rescan = clock()
        #: Full collections seen, and the full-heap scans among them (observability and tests).
        self.full_collections = 0
        self.rescans = 0

    def install(self) -> None:
        """Watch the collector and collect the oldest generation every ``FULL_EVERY`` generation-1
        collections (idempotent)."""
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_EVERY)
        if self._observe not in gc.callbacks:
            gc.callbacks.append(self._observe)

    def uninstall(self) -> None:
        """Stop watching; what is frozen stays frozen."""
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info.get("generation") != OLDEST:
            return
        self.full_collections += 1
        now = self._clock()
        if now - self._last_rescan >= self.rescan_interval:
            self._last_rescan = now
            self.rescans += 1
            gc.unfreeze()
        else:
            gc.freeze()
