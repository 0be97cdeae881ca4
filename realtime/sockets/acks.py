"""Know, inside a handler, whether the client asked for an acknowledgement.

python-socketio decides whether to send an ACK packet after the handler returns and does not tell the
handler. A client without an ack callback must get an ``error`` event instead, so we record the packet id
around the one method that runs a handler for an event packet.
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_ack_requested: ContextVar[bool] = ContextVar("ack_requested", default=False)


def ack_requested() -> bool:
    """Whether the event being handled carries an ack id."""
    return _ack_requested.get()


def install_ack_tracking(server: Any) -> None:
    """Wrap ``server._handle_event_internal`` (once per server) to record whether an ack was requested."""
    if getattr(server, "_realtime_ack_tracking", False):
        return
    original = server._handle_event_internal

    def tracked(srv: Any, sid: str, eio_sid: str, data: Any, namespace: str, ack_id: int | None) -> Any:
        token = _ack_requested.set(ack_id is not None)
        try:
            return original(srv, sid, eio_sid, data, namespace, ack_id)
        finally:
            _ack_requested.reset(token)

    server._handle_event_internal = tracked
    server._realtime_ack_tracking = True
