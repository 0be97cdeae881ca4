"""The metric objects every process records into, and the bounded label values they accept.

Label values come from closed sets only: an ``event`` label is a documented event name (anything else is
:data:`UNKNOWN_EVENT`), a ``code`` label an :class:`realtime.errors.ErrorCode`, a ``result`` or ``reason``
label one of the values listed here. Never a user id, a socket id or a room name, so the number of series
stays the same whatever the traffic.

prometheus_client picks its value storage when it is imported: with ``PROMETHEUS_MULTIPROC_DIR`` set (the
gunicorn config sets it in the master) each worker writes its values to files there and a scrape sums
them (:mod:`realtime.metrics.exposition`); without it the values live in this process.
"""
from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

#: The ``event`` label of an event name that is not documented (a client may send any name).
UNKNOWN_EVENT = "unknown"
#: Results of a connection-state recovery attempt (``realtime_recovery_attempts_total{result}``): recovered;
#: expired (no record: window passed or never parked); foreign (another session's record); revoked (session
#: no longer valid); gap / overflow (missed packets trimmed / too many); invalid_token; unavailable (Redis).
RECOVERY_RESULTS = ("recovered", "expired", "foreign", "revoked", "gap", "overflow", "invalid_token", "unavailable")
#: Why the server ended a socket (``realtime_disconnects_total{reason}``).
DISCONNECT_REASONS = ("slow_consumer", "rate_limited")

# The multiprocess scrape has no ``*_created`` samples: the one-process scrape leaves them out too, so both
# export the same names (the dashboard test reads the one-process scrape).
disable_created_metrics()

_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_RECIPIENTS = (0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000)
_ROUND_TRIPS = (0, 1, 2, 3, 4, 6, 10)

CONNECTED_SOCKETS = Gauge(
    "realtime_connected_sockets",
    "Sockets connected to this process (summed over live workers).",
    multiprocess_mode="livesum",
)
EVENTS_RECEIVED = Counter(
    "realtime_events_received", "Client-to-server events received, by documented event.", ["event"]
)
EVENTS_EMITTED = Counter(
    "realtime_events_emitted", "Server-to-client events emitted (one per emit or broadcast), by event.", ["event"]
)
EVENT_ERRORS = Counter(
    "realtime_event_errors", "Client-to-server events answered with an error, by event and error code.",
    ["event", "code"],
)
HANDLER_SECONDS = Histogram(
    "realtime_handler_seconds", "Seconds from receiving an event to its ack envelope, by event.", ["event"],
    buckets=_SECONDS,
)
REDIS_ROUND_TRIPS = Histogram(
    "realtime_redis_round_trips", "Redis round trips (commands or pipelines) made while handling one event.",
    ["event"], buckets=_ROUND_TRIPS,
)
FANOUT_RECIPIENTS = Histogram(
    "realtime_fanout_recipients", "Sockets of this process one broadcast was written to.", buckets=_RECIPIENTS
)
DELIVERY_SECONDS = Histogram(
    "realtime_delivery_seconds", "Seconds from publishing a broadcast to writing it to the local sockets.",
    buckets=_SECONDS,
)
PUBLISH_FAILURES = Counter(
    "realtime_publish_failures", "Broadcasts the message queue refused (publish failed after the retries)."
)
RESUBSCRIPTIONS = Counter(
    "realtime_listener_resubscriptions", "Times a pub/sub listener was made to subscribe again."
)
PROBE_SECONDS = Histogram(
    "realtime_probe_seconds", "Round trip of a message-queue self-probe that came back.", buckets=_SECONDS
)
PROBE_MISSES = Counter("realtime_probe_misses", "Message-queue self-probes that did not come back in time.")
RECOVERY_ATTEMPTS = Counter(
    "realtime_recovery_attempts", "Connection-state recovery attempts on reconnect, by result.", ["result"]
)
DISCONNECTS = Counter("realtime_disconnects", "Sockets the server disconnected, by reason.", ["reason"])

_documented: frozenset[str] = frozenset()


def set_documented_events(names: Iterable[str]) -> None:
    """Declare the event names an ``event`` label may carry (the catalog's, both directions)."""
    global _documented
    _documented = frozenset(names)


def event_label(name: str) -> str:
    """The ``event`` label for ``name``: itself when documented, else :data:`UNKNOWN_EVENT`."""
    return name if name in _documented else UNKNOWN_EVENT
