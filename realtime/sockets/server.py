"""This server's rules around python-socketio's protocol handling, where the library offers no public hook.

- ack tracking: a handler learns whether the client asked for an ack (else failures go out as ``error``);
- connection-state recovery: the CONNECT answer carries a ``pid``; a reconnect with ``{pid, offset}`` in its
  auth gets its old sid back, and live packets are held while missed ones are replayed, so each arrives once
  and in order (:mod:`realtime.sockets.recovery_flow` does the work);
- bounded outbound queues: a socket whose queue passes MAX_OUTBOUND_QUEUE is a slow consumer and is closed;
- a connect deadline: an Engine.IO session with no namespace CONNECT_TIMEOUT seconds after it opened is
  closed, as the JS server's ``connectTimeout`` does (python-socketio has no such bound);
- binary packets, undecodable packets and events without a name are refused.

:class:`ServerCore` holds that state and makes those decisions. :mod:`realtime.sockets.library_hooks`, the
one module that overrides python-socketio's private methods, calls it from them.
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import gevent
import socketio
from gevent.lock import BoundedSemaphore
from socketio import packet as sio_packet

from realtime.identifiers import stream_id_before
from realtime.metrics import recorders as metrics

logger = logging.getLogger(__name__)

NAMESPACE = "/"
_ack_requested: ContextVar[bool] = ContextVar("ack_requested", default=False)
_forced_sid: ContextVar[str | None] = ContextVar("forced_sid", default=None)


def ack_requested() -> bool:
    """Whether the event being handled carries an ack id."""
    return _ack_requested.get()


@contextmanager
def handling_event(ack_id: int | None) -> Iterator[None]:
    """Mark the event handled inside the block as asking for an ack (``ack_id`` set) or not."""
    token = _ack_requested.set(ack_id is not None)
    try:
        yield
    finally:
        _ack_requested.reset(token)


def take_forced_sid() -> str | None:
    """The sid a recovered socket must get back, once (None: let Engine.IO generate one)."""
    forced = _forced_sid.get()
    if forced is not None:
        _forced_sid.set(None)
    return forced


class ServerCore:
    """Per-server state and decisions of the rules in the module docstring.

    :param server: Flask-SocketIO's python-socketio server.
    :param app: the Flask app (its ``realtime`` extension says whether the worker is draining).
    :param send_unheld: sends a Socket.IO packet past the hold (python-socketio's own ``_send_packet``).
    :param prepare: :func:`realtime.sockets.recovery_flow.prepare`, which decides a reconnect's recovery.
    """

    def __init__(
        self,
        server: socketio.Server,
        app: Any,
        send_unheld: Callable[[str, Any], None],
        prepare: Callable[[ServerCore, str, dict[str, Any]], Any],
        max_outbound_queue: int,
        max_concurrent_handshakes: int,
        connect_timeout: float,
    ) -> None:
        self.server = server
        self.app = app
        self._send_unheld = send_unheld
        self._prepare = prepare
        self.max_outbound_queue = max_outbound_queue
        self.connect_timeout = connect_timeout
        #: Recovery plans of CONNECTs being handled, by Engine.IO sid (:func:`recovery_flow.prepare`).
        self.connect_plans: dict[str, Any] = {}
        #: Recovery pids of live sockets, by sid; the CONNECT answer carries it.
        self.pids: dict[str, str] = {}
        #: Live packets held while a recovered socket is replayed, by Engine.IO sid.
        self.held: dict[str, list[Any]] = {}
        #: The last offset replayed to a recovered socket, until a newer live packet arrives.
        self.replayed_up_to: dict[str, str] = {}
        self._closing: set[str] = set()
        self._handshakes = BoundedSemaphore(max_concurrent_handshakes)
        #: One libev timer per Engine.IO session not yet in a namespace (a greenlet is spawned only if it fires).
        self._connect_deadlines: dict[str, Any] = {}
        self._connecting: set[str] = set()

    # -- Engine.IO sessions and Socket.IO CONNECT ----------------------------------------------------------

    def opened(self, eio_sid: str) -> None:
        """An Engine.IO session opened: it has CONNECT_TIMEOUT seconds to join a namespace."""
        self._arm_connect_deadline(eio_sid)

    def closed(self, eio_sid: str) -> None:
        """An Engine.IO session ended."""
        self._end_connect_deadline(eio_sid)

    def connect(self, eio_sid: str, namespace: str | None, data: Any, accept: Callable[[], None]) -> None:
        """Handle a Socket.IO CONNECT: refused while draining, bounded in concurrency, recovered when it can
        be; ``accept`` runs python-socketio's own CONNECT handling."""
        if self.app.extensions["realtime"].draining:
            # This worker is handing its sockets over: send the client elsewhere (it reconnects by itself).
            self.close_once(eio_sid, "draining: connection refused")
            return
        self._connecting.add(eio_sid)
        try:
            # A reconnect storm must not starve everything else (health checks, events) of CPU and Redis.
            with self._handshakes:
                self._connect_bounded(eio_sid, namespace, data, accept)
        finally:
            self._connecting.discard(eio_sid)
        if self._joined_a_namespace(eio_sid):
            self._end_connect_deadline(eio_sid)

    def _connect_bounded(self, eio_sid: str, namespace: str | None, data: Any, accept: Callable[[], None]) -> None:
        plan = None
        if (namespace or NAMESPACE) == NAMESPACE and isinstance(data, dict) and isinstance(data.get("pid"), str):
            plan = self._prepare(self, eio_sid, data)
            if plan is not None:
                self.connect_plans[eio_sid] = plan
        token = _forced_sid.set(plan.sid if plan is not None and plan.recovered else None)
        try:
            accept()
        finally:
            _forced_sid.reset(token)
            self.connect_plans.pop(eio_sid, None)

    def _arm_connect_deadline(self, eio_sid: str) -> None:
        self._end_connect_deadline(eio_sid)
        timer = self._connect_deadlines[eio_sid] = gevent.get_hub().loop.timer(self.connect_timeout)
        # The callback runs on the hub: closing the session may write, so that happens in a greenlet.
        timer.start(lambda: self._end_connect_deadline(eio_sid) or gevent.spawn(self._connect_deadline_passed, eio_sid))

    def _end_connect_deadline(self, eio_sid: str) -> None:
        deadline = self._connect_deadlines.pop(eio_sid, None)
        if deadline is not None:
            deadline.close()

    def _joined_a_namespace(self, eio_sid: str) -> bool:
        manager = self.server.manager
        return any(manager.sid_from_eio_sid(eio_sid, namespace) for namespace in list(manager.get_namespaces()))

    def _connect_deadline_passed(self, eio_sid: str) -> None:
        """Close an Engine.IO session that joined no namespace within CONNECT_TIMEOUT (a refused CONNECT
        counts as none); one whose CONNECT is still being handled gets judged after it."""
        eio = self.server.eio
        sock = eio.sockets.get(eio_sid)
        if sock is None or sock.closing or sock.closed or self._joined_a_namespace(eio_sid):
            return
        if eio_sid in self._connecting:
            self._arm_connect_deadline(eio_sid)
            return
        logger.info("closing an Engine.IO session that sent no accepted CONNECT within %g s", self.connect_timeout)
        # Not eio.disconnect(): it waits until the client has fetched the CLOSE packet, which an idle polling
        # client may never do; the service task drops the closed session either way.
        sock.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)

    # -- inbound ----------------------------------------------------------------------------------------------

    def refuses_message(self, eio_sid: str, data: Any) -> bool:
        """Close the transport of a binary packet or attachment (no event here carries binary data)."""
        if isinstance(data, (bytes, bytearray)) or (isinstance(data, str) and data[:1] in ("5", "6")):
            self.close_once(eio_sid, "binary packets are not accepted")
            return True
        return False

    def undecodable(self, eio_sid: str, exc: Exception) -> None:
        """An undecodable Socket.IO packet: a broken or hostile client. One line, not a traceback."""
        self.close_once(eio_sid, f"undecodable Socket.IO packet ({type(exc).__name__})")

    def nameless_event_answer(self, eio_sid: str, namespace: str | None, ack_id: int | None) -> Any:
        """An ``UNKNOWN_EVENT`` ack (or ``error`` event) for an event without a name; None if not connected."""
        namespace = namespace or NAMESPACE
        manager = self.server.manager
        sid = manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not manager.is_connected(sid, namespace):
            return None
        error = {"code": "UNKNOWN_EVENT", "message": "An event is a JSON array that starts with its name."}
        packet_class = self.server.packet_class
        if ack_id is not None:
            return packet_class(sio_packet.ACK, namespace=namespace, id=ack_id, data=[{"ok": False, "error": error}])
        return packet_class(sio_packet.EVENT, namespace=namespace, data=["error", {**error, "event": ""}])

    # -- outbound ---------------------------------------------------------------------------------------------

    def outgoing(self, eio_sid: str, pkt: Any) -> bool:
        """Prepare a Socket.IO packet for sending: a CONNECT answer gets the socket's pid; an event is held
        while its socket is replayed. False: held, not to be sent now."""
        if pkt.packet_type == sio_packet.CONNECT and isinstance(pkt.data, dict) and "sid" in pkt.data:
            pid = self.pids.get(pkt.data["sid"])
            if pid is not None:
                pkt.data = {**pkt.data, "pid": pid}
        held = self.held.get(eio_sid)
        if held is not None and pkt.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            held.append(pkt)
            return False
        return True

    def outgoing_encoded(self, eio_sid: str, eio_pkt: Any) -> bool:
        """The same for an emit python-socketio encoded once for many sockets; a live copy of a packet a
        replay already sent is dropped. False: not to be sent now."""
        held = self.held.get(eio_sid)
        if held is None and eio_sid not in self.replayed_up_to:
            return True
        decoded = self._decode(eio_pkt)
        if decoded is None or decoded.packet_type != sio_packet.EVENT:
            return True
        if held is not None:
            held.append(decoded)
            return False
        return not self._replayed_already(eio_sid, decoded)

    def intercepts(self, eio_sid: str) -> bool:
        """Whether ``eio_sid``'s packets must pass :meth:`outgoing_encoded` (a recovery replays to it)."""
        return eio_sid in self.held or eio_sid in self.replayed_up_to

    def sent(self, eio_sid: str) -> None:
        """After a send: close a slow consumer, whose queue passed MAX_OUTBOUND_QUEUE."""
        sock = self.server.eio.sockets.get(eio_sid)
        if sock is not None and not (sock.closing or sock.closed) and sock.queue.qsize() > self.max_outbound_queue:
            self.overflowed(eio_sid)

    def overflowed(self, eio_sid: str) -> None:
        """``eio_sid`` has more than MAX_OUTBOUND_QUEUE packets not taken by the kernel: a slow consumer."""
        if self.close_once(eio_sid, f"slow consumer: over {self.max_outbound_queue} packets queued", abort=True):
            metrics.record_slow_consumer_disconnect()

    def send_now(self, eio_sid: str, pkt: Any) -> None:
        """Send bypassing the hold (replayed packets)."""
        self._send_unheld(eio_sid, pkt)

    def _replayed_already(self, eio_sid: str, pkt: Any) -> bool:
        """After a replay, drop live copies of packets it already sent (they can still be in flight
        through the queue); the first newer one ends the filter, as the queue delivers in offset order."""
        data = pkt.data if isinstance(pkt.data, list) else []
        offset = data[-1] if len(data) >= 3 and isinstance(data[-1], str) else None
        last = self.replayed_up_to.get(eio_sid)
        if offset is None or last is None:
            return False
        if stream_id_before(last, offset):
            del self.replayed_up_to[eio_sid]
            return False
        return True

    def _decode(self, eio_pkt: Any) -> Any:
        data = getattr(eio_pkt, "data", None)
        if not isinstance(data, str):
            return None
        try:
            return self.server.packet_class(encoded_packet=data)
        except (ValueError, TypeError):
            return None

    # -- closing transports -----------------------------------------------------------------------------------

    def close_once(self, eio_sid: str, why: str, abort: bool = False) -> bool:
        """Close a transport once, however many packets keep arriving or queueing meanwhile (True: now)."""
        if eio_sid in self._closing:
            return False
        self._closing.add(eio_sid)
        logger.warning("closing a transport: %s", why)
        self.server.start_background_task(self._abort_transport if abort else self._close_transport, eio_sid)
        return True

    def _close_transport(self, eio_sid: str) -> None:
        try:
            self.server.eio.disconnect(eio_sid)
        finally:
            self._closing.discard(eio_sid)

    def _abort_transport(self, eio_sid: str) -> None:
        """Cut a transport whose writer is blocked on a client that does not read (shutdown fails the send)."""
        try:
            direct = getattr(self.server.eio, "realtime_direct_writes", None)
            if direct is None or not direct.abort(eio_sid):
                # A websocket still served by python-engineio's loop and writer.
                websocket = (self.server.environ.get(eio_sid) or {}).get("wsgi.websocket")
                raw = getattr(getattr(getattr(websocket, "stream", None), "handler", None), "socket", None)
                with suppress(OSError):
                    if raw is not None:
                        raw.shutdown(socket.SHUT_RDWR)
            sock = self.server.eio.sockets.get(eio_sid)
            if sock is not None:
                # A server decision, not a network failure: the session ends (no recovery of the same flood).
                sock.close(wait=False, abort=True, reason=self.server.eio.reason.SERVER_DISCONNECT)
        finally:
            self._closing.discard(eio_sid)
