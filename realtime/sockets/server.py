"""python-socketio's server, extended where its protocol handling has no hook.

- ack tracking: a handler learns whether the client asked for an ack (else failures go out as ``error``);
- connection-state recovery: the CONNECT answer carries a ``pid``; a reconnect with ``{pid, offset}`` in its
  auth gets its old sid back, and live packets are held while missed ones are replayed, so each arrives once
  and in order (:mod:`realtime.sockets.recovery_flow` does the work);
- bounded outbound queues: a socket whose queue passes MAX_OUTBOUND_QUEUE is a slow consumer and is closed;
- a connect deadline: an Engine.IO session that has joined no namespace CONNECT_TIMEOUT seconds after it
  opened is closed, as the JS server's ``connectTimeout`` does (python-socketio has no such bound: a
  client could hold a session, answering pings, without ever sending a Socket.IO CONNECT).

Flask-SocketIO builds a plain ``socketio.Server``; :func:`install` turns it into this class.
"""
from __future__ import annotations

import logging
import socket
from contextvars import ContextVar
from typing import Any

import gevent
import socketio
from gevent.lock import BoundedSemaphore
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
    replayed_up_to: dict[str, str]
    closing: set[str]
    max_outbound_queue: int
    handshakes: BoundedSemaphore
    connect_timeout: float
    connect_deadlines: dict[str, gevent.Greenlet]
    connecting: set[str]

    def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        answer = super()._handle_eio_connect(eio_sid, environ)
        self._arm_connect_deadline(eio_sid)
        return answer

    def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self._end_connect_deadline(eio_sid)
        super()._handle_eio_disconnect(eio_sid, reason)

    def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, ack_id: int | None
    ) -> Any:
        token = _ack_requested.set(ack_id is not None)
        try:
            return super()._handle_event_internal(server, sid, eio_sid, data, namespace, ack_id)
        finally:
            _ack_requested.reset(token)

    def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        if self.realtime_app.extensions["realtime"].draining:
            # This worker is handing its sockets over: send the client elsewhere (it reconnects by itself).
            self._close_once(eio_sid, "draining: connection refused")
            return
        self.connecting.add(eio_sid)
        try:
            # A reconnect storm must not starve everything else (health checks, events) of CPU and Redis.
            with self.handshakes:
                self._connect_bounded(eio_sid, namespace, data)
        finally:
            self.connecting.discard(eio_sid)
        if self._joined_a_namespace(eio_sid):
            self._end_connect_deadline(eio_sid)

    def _arm_connect_deadline(self, eio_sid: str) -> None:
        self._end_connect_deadline(eio_sid)
        self.connect_deadlines[eio_sid] = gevent.spawn_later(
            self.connect_timeout, self._connect_deadline_passed, eio_sid
        )

    def _end_connect_deadline(self, eio_sid: str) -> None:
        deadline = self.connect_deadlines.pop(eio_sid, None)
        if deadline is not None:
            deadline.kill(block=False)

    def _joined_a_namespace(self, eio_sid: str) -> bool:
        namespaces = list(self.manager.get_namespaces())
        return any(self.manager.sid_from_eio_sid(eio_sid, namespace) for namespace in namespaces)

    def _connect_deadline_passed(self, eio_sid: str) -> None:
        """Close an Engine.IO session that joined no namespace within CONNECT_TIMEOUT (a refused CONNECT
        counts as none); one whose CONNECT is still being handled gets judged after it."""
        self.connect_deadlines.pop(eio_sid, None)
        sock = self.eio.sockets.get(eio_sid)
        if sock is None or sock.closing or sock.closed or self._joined_a_namespace(eio_sid):
            return
        if eio_sid in self.connecting:
            self._arm_connect_deadline(eio_sid)
            return
        logger.info("closing an Engine.IO session that sent no accepted CONNECT within %g s", self.connect_timeout)
        # Not eio.disconnect(): it waits until the client has fetched the CLOSE packet, which an idle polling
        # client may never do; the service task drops the closed session either way.
        sock.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)

    def _connect_bounded(self, eio_sid: str, namespace: str | None, data: Any) -> None:
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

    def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # No event of this server carries binary data: refuse binary packets and attachments instead of
        # buffering up to billions of declared attachments.
        if isinstance(data, (bytes, bytearray)) or (isinstance(data, str) and data[:1] in ("5", "6")):
            self._close_once(eio_sid, "binary packets are not accepted")
            return
        try:
            super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            # An undecodable Socket.IO packet: a broken or hostile client. One line, not a traceback.
            self._close_once(eio_sid, f"undecodable Socket.IO packet ({type(exc).__name__})")

    def _handle_event(self, eio_sid: str, namespace: str | None, ack_id: int | None, data: Any) -> None:
        if isinstance(data, list) and data and isinstance(data[0], str):
            super()._handle_event(eio_sid, namespace, ack_id, data)
            return
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return
        error = {"code": "UNKNOWN_EVENT", "message": "An event is a JSON array that starts with its name."}
        if ack_id is not None:
            self._send_packet(
                eio_sid, self.packet_class(sio_packet.ACK, namespace=namespace, id=ack_id, data=[{"ok": False, "error": error}])
            )
        else:
            self._send_packet(
                eio_sid, self.packet_class(sio_packet.EVENT, namespace=namespace, data=["error", {**error, "event": ""}])
            )

    def _close_once(self, eio_sid: str, why: str, abort: bool = False) -> None:
        """Close a transport once, however many packets keep arriving or queueing meanwhile."""
        if eio_sid in self.closing:
            return
        self.closing.add(eio_sid)
        logger.warning("closing a transport: %s", why)
        self.start_background_task(self._abort_transport if abort else self._close_transport, eio_sid)

    def _close_transport(self, eio_sid: str) -> None:
        try:
            self.eio.disconnect(eio_sid)
        finally:
            self.closing.discard(eio_sid)

    def _abort_transport(self, eio_sid: str) -> None:
        """Cut a transport whose writer is blocked on a client that does not read: a polite close would wait
        for that writer forever. Shutting the TCP socket down fails the blocked send."""
        try:
            websocket = (self.environ.get(eio_sid) or {}).get("wsgi.websocket")
            stream = getattr(websocket, "stream", None)
            raw = getattr(getattr(stream, "handler", None), "socket", None)
            if raw is not None:
                try:
                    raw.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            sock = self.eio.sockets.get(eio_sid)
            if sock is not None:
                # A server decision, not a network failure: the session ends (no recovery of the same flood).
                sock.close(wait=False, abort=True, reason=self.eio.reason.SERVER_DISCONNECT)
        finally:
            self.closing.discard(eio_sid)

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

    def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        # python-socketio sends emits without a callback (rooms and single sids) pre-encoded through here,
        # not through _send_packet: hold and bound them here too.
        held = self.held.get(eio_sid)
        if held is not None or eio_sid in self.replayed_up_to:
            decoded = self._decode(eio_pkt)
            if decoded is not None and decoded.packet_type == sio_packet.EVENT:
                if held is not None:
                    held.append(decoded)
                    return
                if self._replayed_already(eio_sid, decoded):
                    return
        super()._send_eio_packet(eio_sid, eio_pkt)
        self._check_outbound(eio_sid)

    def _replayed_already(self, eio_sid: str, pkt: Any) -> bool:
        """After a replay, drop live copies of packets it already sent (they can still be in flight
        through the queue); the first newer one ends the filter, as the queue delivers in offset order."""
        from realtime.recovery import offset_before

        data = pkt.data if isinstance(pkt.data, list) else []
        offset = data[-1] if len(data) >= 3 and isinstance(data[-1], str) else None
        last = self.replayed_up_to.get(eio_sid)
        if offset is None or last is None:
            return False
        if offset_before(last, offset):
            del self.replayed_up_to[eio_sid]
            return False
        return True

    def _decode(self, eio_pkt: Any) -> Any:
        data = getattr(eio_pkt, "data", None)
        if not isinstance(data, str):
            return None
        try:
            return self.packet_class(encoded_packet=data)
        except (ValueError, TypeError):
            return None

    def send_now(self, eio_sid: str, pkt: Any) -> None:
        """Send bypassing the hold (replayed packets)."""
        super()._send_packet(eio_sid, pkt)

    def _check_outbound(self, eio_sid: str) -> None:
        sock = self.eio.sockets.get(eio_sid)
        if sock is None or sock.closing or sock.closed:
            return
        if sock.queue.qsize() > self.max_outbound_queue:
            self._close_once(eio_sid, f"slow consumer: over {self.max_outbound_queue} packets queued", abort=True)


def _generate_id(original: Any) -> Any:
    def generate_id() -> str:
        forced = _forced_sid.get()
        if forced is not None:
            _forced_sid.set(None)
            return forced
        return str(original())

    return generate_id


def install(
    server: socketio.Server,
    app: Any,
    max_outbound_queue: int,
    max_concurrent_handshakes: int,
    connect_timeout: float,
) -> RealtimeServer:
    """Turn Flask-SocketIO's server into a :class:`RealtimeServer` bound to ``app``."""
    server.__class__ = RealtimeServer
    realtime: RealtimeServer = server  # type: ignore[assignment]
    realtime.realtime_app = app
    realtime.connect_plans = {}
    realtime.pids = {}
    realtime.held = {}
    realtime.replayed_up_to = {}
    realtime.closing = set()
    realtime.max_outbound_queue = max_outbound_queue
    realtime.handshakes = BoundedSemaphore(max_concurrent_handshakes)
    realtime.connect_timeout = connect_timeout
    realtime.connect_deadlines = {}
    realtime.connecting = set()
    # python-socketio registered its bound methods with Engine.IO before the class changed: re-register the
    # ones this class overrides.
    server.eio.on("connect", realtime._handle_eio_connect)
    server.eio.on("message", realtime._handle_eio_message)
    server.eio.on("disconnect", realtime._handle_eio_disconnect)
    if not getattr(server.eio, "_realtime_ids", False):
        server.eio.generate_id = _generate_id(server.eio.generate_id)
        server.eio._realtime_ids = True
    return realtime
