"""Counts and observations of the message path, kept in this process and applied to prometheus_client's
values at most a second later (issue 9).

In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) each ``inc`` or ``observe`` takes a lock and writes the
worker's memory-mapped file, and a histogram observation writes two values: the four recorded per chat
message cost it about 40 us on a 2-core machine. Here a count is a dictionary add and an observation a
bisect and two adds; :func:`flush` writes the sums, one write per value that moved, when the hub next
runs a second later and before every scrape (:func:`realtime.metrics.exposition.render`). A scrape of
another worker sees this one's figures up to a second late.

Histograms are updated through prometheus_client's ``_sum``, ``_buckets`` and ``_upper_bounds`` (what its
own ``observe`` uses; ``tests/test_library_pins.py`` holds the pinned version to that).
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Any

import gevent

#: Seconds between an observation and the flush that writes it.
FLUSH_SECONDS = 1.0

_counts: dict[Any, float] = {}
#: Histogram (or child) -> [sum, count per bucket...].
_observed: dict[Any, list[float]] = {}
_flush: Any = None


def count(child: Any, amount: float = 1) -> None:
    """Add ``amount`` to a counter (or a counter's child) at the next flush."""
    _counts[child] = _counts.get(child, 0) + amount
    if _flush is None:
        _schedule()


def observe(child: Any, value: float) -> None:
    """Observe ``value`` in a histogram (or a histogram's child) at the next flush, in the bucket its own
    ``observe`` would choose (the first upper bound not below it)."""
    pending = _observed.get(child)
    if pending is None:
        pending = _observed[child] = [0.0] * (len(child._upper_bounds) + 1)
    pending[0] += value
    pending[1 + bisect_left(child._upper_bounds, value)] += 1
    if _flush is None:
        _schedule()


def _schedule() -> None:
    global _flush
    _flush = gevent.spawn_later(FLUSH_SECONDS, flush)


def flush() -> None:
    """Write every pending count and observation to prometheus_client's values now."""
    global _counts, _observed, _flush
    if _flush is not None and _flush is not gevent.getcurrent():
        _flush.kill(block=False)
    _flush = None
    counts, observed, _counts, _observed = _counts, _observed, {}, {}
    for child, amount in counts.items():
        child.inc(amount)
    for child, pending in observed.items():
        child._sum.inc(pending[0])
        for bucket, hits in zip(child._buckets, pending[1:], strict=True):
            if hits:
                bucket.inc(hits)
