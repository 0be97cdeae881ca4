"""Frames written straight to this worker's websockets, by Engine.IO sid, batched per socket and per turn of
the hub.

Every websocket that :mod:`realtime.sockets.hub_websocket` serves is registered here. A broadcast's frame is
built once (:mod:`realtime.fanout.delivery`) and each recipient gets those bytes; a socket's frames given
before the hub next runs (several broadcasts read from the channel in one go, an ack, a ping) go out in one
non-blocking ``send``, written by the hub itself (:meth:`DirectWrites.flush`, one callback per turn for every
socket that has frames). Sockets not registered (polling, TLS) take python-engineio's queue and writer.
"""
from __future__ import annotations

import logging
from typing import Protocol

import gevent

from realtime.fanout.websocket_frames import text_frame

__all__ = ["DirectWrites", "Transport", "text_frame"]

logger = logging.getLogger(__name__)


class Transport(Protocol):
    """A websocket that takes frames (:class:`realtime.sockets.hub_websocket.HubWebSocket`)."""

    def send_frame(self, data: bytes) -> bool: ...

    def send_now(self, data: bytes) -> bool: ...

    def flush(self) -> None: ...

    def abort(self) -> None: ...


class DirectWrites:
    """The websockets of this worker that take frames directly, by Engine.IO sid."""

    def __init__(self) -> None:
        self._transports: dict[str, Transport] = {}
        self._batched: list[Transport] = []
        self._flush_scheduled = False

    def __len__(self) -> int:
        return len(self._transports)

    @property
    def transports(self) -> dict[str, Transport]:
        """The registered transports by Engine.IO sid (read-only: a broadcast's loop looks each one up)."""
        return self._transports

    def register(self, eio_sid: str, transport: Transport) -> None:
        """``transport`` now carries ``eio_sid``'s frames."""
        self._transports[eio_sid] = transport

    def unregister(self, eio_sid: str, transport: Transport | None = None) -> None:
        """The websocket of ``eio_sid`` ended (only if it is still ``transport``, when given)."""
        if transport is None or self._transports.get(eio_sid) is transport:
            self._transports.pop(eio_sid, None)

    def get(self, eio_sid: str) -> Transport | None:
        """The transport of ``eio_sid``, if it takes direct writes."""
        return self._transports.get(eio_sid)

    def write(self, eio_sid: str, frame: bytes, now: bool = False) -> bool:
        """Give ``frame`` to ``eio_sid``'s websocket; it goes out with the socket's other frames of this turn,
        or at once (``now``, with the frames the socket was given before it).

        :returns: False when the socket takes no direct writes: the caller sends through the library's queue.
        """
        transport = self._transports.get(eio_sid)
        if transport is None:
            return False
        return transport.send_now(frame) if now else transport.send_frame(frame)

    def abort(self, eio_sid: str) -> bool:
        """Cut ``eio_sid``'s websocket now (False: it takes no direct writes)."""
        transport = self._transports.get(eio_sid)
        if transport is None:
            return False
        transport.abort()
        return True

    def schedule(self, transport: Transport) -> None:
        """Flush ``transport`` when the hub next runs its callbacks."""
        self._batched.append(transport)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            gevent.get_hub().loop.run_callback(self.flush)

    def flush(self) -> None:
        """Write every socket's pending frames (on the hub: non-blocking sends only)."""
        batched, self._batched = self._batched, []
        self._flush_scheduled = False
        for transport in batched:
            try:
                transport.flush()
            except Exception:
                logger.exception("flushing a websocket failed")
