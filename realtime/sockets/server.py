"""python-socketio's server, extended where its protocol handling has no hook.

- ack tracking: a handler learns whether the client asked for an ack (else failures go out as ``error``);
- connection-state recovery: the CONNECT answer carries a ``pid``; a reconnect with ``{pid, offset}`` in its
  auth gets its old sid back, and live packets are held while missed ones are replayed, so each arrives once
  and in order (:mod:`realtime.sockets.recovery_flow` does the work);
- bounded outbound queues: a socket whose queue passes MAX_OUTBOUND_QUEUE is a slow consumer and is closed.

Flask-SocketIO builds a plain ``socketio.Server``; :func:`install` turns it into this class.
"""
from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

import socketio
from socketio import packet as sio_packet

logger = logging.getLogger(__name__)

_ack_requested: ContextVar[bool] = ContextVar("ack_requested", default=False)
_forced_sid: ContextVar[str | None] = ContextVar("forced_sid", default=None)


def ack_requested() -> bool:
    """Whether the event being handled carries an ack id."""
    return _ack_requested.get()


class RealtimeServer(socketio.Server):
    """See the module docstring; state lives in the attributes :func:`install` sets."""

    realtime_app: Any
    connect_plans: dict[str, Any]
    pids: dict[str, str]
    held: dict[str, list[Any]]
    max_outbound_queue: int

    def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, ack_id: int | None
    ) -> Any:
        token = _ack_requested.set(ack_id is not None)
        try:
            return super()._handle_event_internal(server, sid, eio_sid, data, namespace, ack_id)
        finally:
            _ack_requested.reset(token)

    def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        from realtime.sockets.recovery_flow import prepare

        plan = None
        if (namespace or "/") == "/" and isinstance(data, dict) and isinstance(data.get("pid"), str):
            plan = prepare(self, eio_sid, data)
            if plan is not None:
                self.connect_plans[eio_sid] = plan
        token = _forced_sid.set(plan.sid if plan is not None and plan.recovered else None)
        try:
            super()._handle_connect(eio_sid, namespace, data)
        finally:
            _forced_sid.reset(token)
            self.connect_plans.pop(eio_sid, None)

    def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        if pkt.packet_type == sio_packet.CONNECT and isinstance(pkt.data, dict) and "sid" in pkt.data:
            pid = self.pids.get(pkt.data["sid"])
            if pid is not None:
                pkt.data = {**pkt.data, "pid": pid}
        held = self.held.get(eio_sid)
        if held is not None and pkt.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            held.append(pkt)
            return
        super()._send_packet(eio_sid, pkt)
        self._check_outbound(eio_sid)

    def send_now(self, eio_sid: str, pkt: Any) -> None:
        """Send bypassing the hold (replayed packets)."""
        super()._send_packet(eio_sid, pkt)

    def _check_outbound(self, eio_sid: str) -> None:
        sock = self.eio.sockets.get(eio_sid)
        if sock is None or sock.closing or sock.closed:
            return
        if sock.queue.qsize() > self.max_outbound_queue:
            logger.warning(
                "slow consumer: %d packets queued (limit %d); closing its transport",
                sock.queue.qsize(),
                self.max_outbound_queue,
            )
            self.start_background_task(self.eio.disconnect, eio_sid)


def _generate_id(original: Any) -> Any:
    def generate_id() -> str:
        forced = _forced_sid.get()
        if forced is not None:
            _forced_sid.set(None)
            return forced
        return str(original())

    return generate_id


def install(server: socketio.Server, app: Any, max_outbound_queue: int) -> RealtimeServer:
    """Turn Flask-SocketIO's server into a :class:`RealtimeServer` bound to ``app``."""
    server.__class__ = RealtimeServer
    realtime: RealtimeServer = server  # type: ignore[assignment]
    realtime.realtime_app = app
    realtime.connect_plans = {}
    realtime.pids = {}
    realtime.held = {}
    realtime.max_outbound_queue = max_outbound_queue
    if not getattr(server.eio, "_realtime_ids", False):
        server.eio.generate_id = _generate_id(server.eio.generate_id)
        server.eio._realtime_ids = True
    return realtime
