"""Cheap recording calls: what the server's code calls when something worth counting happens.

Each call is one or two dictionary look-ups and an add; none does per-recipient work (a broadcast is one
:func:`record_fanout` call with its recipient count). Label children are cached per label value, which
:mod:`realtime.metrics.definitions` keeps to a closed set. What the message path records goes through
:mod:`realtime.metrics.tally` (written at most a second later, and before every scrape); the rest is
written at once.

:func:`local_totals` reads this process's cumulative counts without going through prometheus_client, so
it works the same with or without the multiprocess directory (the admin view derives message rates from it).
"""
from __future__ import annotations

from typing import Any

from realtime.errors import ErrorCode
from realtime.metrics import definitions as m
from realtime.metrics import tally

_totals: dict[str, float] = {"events_received": 0.0, "events_emitted": 0.0, "deliveries": 0.0, "event_errors": 0.0}
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """The metric's child for ``labels``, created once (``labels()`` takes a lock and builds a key each call)."""
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def local_totals() -> dict[str, float]:
    """This process's cumulative counts since it started.

    :return: ``events_received`` (client→server events), ``events_emitted`` (server→client emits and
        broadcasts), ``deliveries`` (socket writes of broadcasts: the sum of :func:`record_fanout`'s
        recipients) and ``event_errors`` (events answered with an error); a copy the caller may keep.
    """
    return dict(_totals)


def record_received(event: str) -> None:
    """Count one client→server event (unknown names count under one ``unknown`` label)."""
    _totals["events_received"] += 1
    tally.count(_child(m.EVENTS_RECEIVED, m.event_label(event)))


def record_handled(event: str, seconds: float, round_trips: int) -> None:
    """Observe one handled event: seconds to its ack envelope and the Redis round trips it made."""
    label = m.event_label(event)
    tally.observe(_child(m.HANDLER_SECONDS, label), seconds)
    tally.observe(_child(m.REDIS_ROUND_TRIPS, label), round_trips)


def record_error(event: str, code: str) -> None:
    """Count one event answered with error ``code`` (a value outside :class:`ErrorCode` counts as INTERNAL)."""
    _totals["event_errors"] += 1
    if code not in ErrorCode.__members__:
        code = ErrorCode.INTERNAL.value
    _child(m.EVENT_ERRORS, m.event_label(event), code).inc()


def record_emitted(event: str, count: int = 1) -> None:
    """Count ``count`` server→client emits of ``event``, in the process that emits them.

    One per ``emit`` to a socket or broadcast to a room, not per recipient and not again on the processes
    that deliver a broadcast published elsewhere (they record :func:`record_fanout`).
    """
    _totals["events_emitted"] += count
    tally.count(_child(m.EVENTS_EMITTED, m.event_label(event)), count)


def record_fanout(recipients: int) -> None:
    """Observe one broadcast written to ``recipients`` sockets of this process.

    Called once per broadcast on every process that delivers it (the publisher's too), with its own count
    of sockets written; the histogram's ``_sum`` is then the deliveries.
    """
    _totals["deliveries"] += recipients
    tally.observe(m.FANOUT_RECIPIENTS, recipients)


def record_delivery_latency(seconds: float) -> None:
    """Observe the seconds from a broadcast's publish (the publisher's ``time.time()``) to its write on this
    process's sockets; once per broadcast and delivering process, like :func:`record_fanout`."""
    tally.observe(m.DELIVERY_SECONDS, seconds)


def record_publish_failure(count: int) -> None:
    """Count ``count`` broadcasts the message queue refused (not published after the retries)."""
    m.PUBLISH_FAILURES.inc(count)


def record_resubscription() -> None:
    """Count one pub/sub listener forced (or reconnected) to subscribe again."""
    m.RESUBSCRIPTIONS.inc()


def record_slow_consumer_disconnect() -> None:
    """Count one socket closed because its outbound queue passed MAX_OUTBOUND_QUEUE."""
    _child(m.DISCONNECTS, "slow_consumer").inc()


def record_rate_limit_disconnect() -> None:
    """Count one socket disconnected after RATE_LIMIT_DISCONNECT refusals in a row."""
    _child(m.DISCONNECTS, "rate_limited").inc()


def record_probe(seconds: float | None) -> None:
    """Observe a self-probe's round trip, or count a missed probe when ``seconds`` is None."""
    if seconds is None:
        m.PROBE_MISSES.inc()
    else:
        m.PROBE_SECONDS.observe(seconds)


def record_recovery(result: str) -> None:
    """Count one recovery attempt by ``result``, one of :data:`realtime.metrics.definitions.RECOVERY_RESULTS`.

    :raises ValueError: for another result (a label value outside the documented set).
    """
    if result not in m.RECOVERY_RESULTS:
        raise ValueError(f"Recovery result {result!r} is not one of {m.RECOVERY_RESULTS}.")
    _child(m.RECOVERY_ATTEMPTS, result).inc()


def socket_connected() -> None:
    """Count a socket in (call once per accepted connect)."""
    m.CONNECTED_SOCKETS.inc()


def socket_disconnected() -> None:
    """Count a socket out (call once per disconnect of a socket counted in)."""
    m.CONNECTED_SOCKETS.dec()
