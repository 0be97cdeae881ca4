"""Emit server→client events: shaped by their schemas, then handed to the fan-out manager.

The manager (:mod:`realtime.fanout.manager`) logs broadcasts for recovery, encodes and publishes them; this
is the API the features, the HTTP publish API and the lifecycle call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from realtime.fanout.emits import Emit, Shaped, StoredBroadcast
from realtime.fanout.manager import FanoutLayer


@dataclass(frozen=True)
class Outgoing:
    """One emit: event, payload (before shaping) and target room or sid."""

    event: str
    data: Any
    to: str
    skip_sid: str | None = None


class Shaper(Protocol):
    """What the broadcaster needs of the event catalog (:class:`realtime.sockets.catalog.EventCatalog`)."""

    def shape(self, event: str, data: Any) -> Any:
        """``data`` shaped by ``event``'s declared schema."""


class Broadcaster:
    """Shapes payloads with the catalog and sends them to rooms, cluster-wide, through ``manager``."""

    def __init__(self, manager: FanoutLayer, catalog: Shaper) -> None:
        self.manager = manager
        self._catalog = catalog

    @property
    def failed_publishes(self) -> int:
        """Publishes that still failed after a retry; /readyz reports them."""
        return self.manager.failed_publishes

    def emit(self, event: str, data: Any, to: str, skip_sid: str | None = None) -> None:
        """Send ``event`` to room (or sid) ``to`` on every worker: at most one Redis round trip.

        :raises realtime.fanout.manager.PublishError: when the events could not be fanned out.
        """
        self.emit_many([Outgoing(event, data, to, skip_sid)])

    def emit_unlogged(self, event: str, data: Any, to: str) -> None:
        """Send ``event`` to room ``to`` on every worker with no recovery-log entry and no offset.

        For a packet the log already holds from an attempt whose publish failed: recovering sockets replay
        it from there, live sockets get it now, and their offsets stay where they are. At most one round trip.
        """
        self.manager.broadcast_unlogged([Emit(event, self._catalog.shape(event, data), to)])

    def prepare_stored(self, event: str, data: dict[str, Any], to: str, id_field: str = "id") -> StoredBroadcast | None:
        """Shape ``event`` to room ``to`` for the store that writes ``data`` and assigns its ``id_field``: that
        store's script logs and publishes it in its round trip, then :meth:`complete_stored` delivers it. None
        when the log cannot be written so (then :meth:`emit` the payload with its id)."""
        return self.manager.prepare_stored(Emit(event, self._catalog.shape(event, data), to), id_field)

    def complete_stored(self, stored: StoredBroadcast, value: str, offset: str, after: str | None = None) -> None:
        """Deliver a prepared broadcast that its store logged with id ``value`` at ``offset``, right after
        ``after`` in the log (None: unknown).

        :raises realtime.fanout.manager.PublishError: when it is logged but could not be published.
        """
        self.manager.complete_stored(stored, value, offset, after)

    def shaped(self, event: str, data: Any) -> Shaped:
        """``data`` dumped through ``event``'s schema once, for several uses (:meth:`emit_local`, an ack)."""
        return Shaped(event, self._catalog.shape(event, data))

    def emit_local(self, sid: str, event: str, data: Any) -> None:
        """Send ``event`` to a socket of this worker without touching Redis (no offset: not a broadcast)."""
        payload = data.data if isinstance(data, Shaped) and data.event == event else self._catalog.shape(event, data)
        self.manager.emit_here(sid, event, payload)

    def emit_many(self, messages: list[Outgoing]) -> None:
        """Send several events with at most one Redis round trip (two with a separate queue Redis)."""
        self.manager.broadcast(
            [Emit(m.event, self._catalog.shape(m.event, m.data), m.to, m.skip_sid) for m in messages]
        )
