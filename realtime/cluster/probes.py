"""Self-probe of the Socket.IO queue listener: a subscriber can stay connected yet receive nothing.

Each probe publishes a marker through the channel and waits for this worker's own listener to hear it
(:meth:`realtime.fanout.redis_fanout.RedisFanout.probe_listener`). A silent listener gets its connection dropped,
which makes python-socketio's listener resubscribe. The control bus probes its own listener the same way.
"""
from __future__ import annotations

import logging
import time

from realtime.fanout.manager import FanoutLayer
from realtime.fanout.redis_fanout import RedisFanout
from realtime.metrics.recorders import record_probe, record_resubscription

logger = logging.getLogger(__name__)

#: Seconds after a forced resubscribe during which a missed probe does not force another one.
RESUBSCRIBE_GRACE = 10.0


class QueueProbe:
    """Probes the Socket.IO message-queue listener of this worker (nothing to probe without a queue)."""

    def __init__(self, manager: FanoutLayer) -> None:
        self._manager = manager if isinstance(manager, RedisFanout) else None
        self._grace_until = 0.0

    def run(self, timeout: float) -> bool | None:
        """Publish a probe and wait for it; None when there is no queue to probe."""
        if self._manager is None:
            return None
        started = time.perf_counter()
        ok = self._manager.probe_listener(timeout)
        record_probe(time.perf_counter() - started if ok else None)
        if not ok and time.monotonic() >= self._grace_until:
            logger.warning("message-queue listener missed its probe; forcing it to resubscribe")
            self._manager.resubscribe()
            record_resubscription()
            # python-socketio waits before resubscribing; do not cut the new subscription meanwhile.
            self._grace_until = time.monotonic() + RESUBSCRIBE_GRACE
        return ok
