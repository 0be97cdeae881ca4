"""Every entry into a private method of python-socketio, python-engineio or gevent-websocket: one module.

python-socketio's server offers no public hook for what :mod:`realtime.sockets.server` adds (ack tracking,
recovered sids and pids, held and bounded outbound packets, the connect deadline, refused packets), so
:class:`RealtimeServer` overrides the private methods below, each a thin call into
:class:`~realtime.sockets.server.ServerCore`. python-engineio ends a websocket transport on an undecodable
packet without closing its socket: :func:`install_transport_guards` wraps that handler. python-engineio sleeps
out each ping interval in a greenlet of its own per socket: :func:`install_ping_timers` replaces
``Socket.schedule_ping`` with a hub timer (the memory it saves: :mod:`realtime.sockets.idle_sockets`). Each override is
pinned by ``tests/test_library_pins.py`` to the library behaviour it relies on, and ``setup.cfg`` pins the
libraries to the minor versions those tests cover.

Flask-SocketIO builds a plain ``socketio.Server`` inside ``init_app`` (no parameter takes a server class,
and copying ``init_app`` to build another one would be a larger private dependency), so :func:`install`
changes the built server's class; the pins check the construction this relies on.
"""
from __future__ import annotations

import functools
import logging
import random
import time
from typing import Any

import engineio.socket
import gevent
import geventwebsocket.handler
import socketio
from engineio import packet as eio_packet

from realtime.fanout.delivery import LocalDelivery
from realtime.fanout.direct_writes import DirectWrites, text_frame
from realtime.sockets.recovery_flow import prepare
from realtime.sockets.server import ServerCore, handling_event, take_forced_sid
from realtime.sockets.transport_guards import BoundedWebSocket
from realtime.sockets.websocket_handover import FrameQueue, hand_over

logger = logging.getLogger(__name__)


class RealtimeServer(socketio.Server):
    """python-socketio's server with :class:`ServerCore`'s rules applied where the library has no hook."""

    core: ServerCore

    def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        answer = super()._handle_eio_connect(eio_sid, environ)
        self.core.opened(eio_sid)
        return answer

    def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self.core.closed(eio_sid)
        sock = self.eio.sockets.get(eio_sid)
        if sock is not None:
            cancel_ping_timer(sock)
        super()._handle_eio_disconnect(eio_sid, reason)

    def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if self.core.refuses_message(eio_sid, data):
            return
        try:
            super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            self.core.undecodable(eio_sid, exc)

    def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        def accept() -> None:
            super(RealtimeServer, self)._handle_connect(eio_sid, namespace, data)

        self.core.connect(eio_sid, namespace, data, accept)

    def _handle_event(self, eio_sid: str, namespace: str | None, ack_id: int | None, data: Any) -> None:
        if isinstance(data, list) and data and isinstance(data[0], str):
            super()._handle_event(eio_sid, namespace, ack_id, data)
            return
        answer = self.core.nameless_event_answer(eio_sid, namespace, ack_id)
        if answer is not None:
            self._send_packet(eio_sid, answer)

    def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, ack_id: int | None
    ) -> Any:
        with handling_event(ack_id):
            return super()._handle_event_internal(server, sid, eio_sid, data, namespace, ack_id)

    def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        if self.core.outgoing(eio_sid, pkt):
            if not self._write_now(eio_sid, pkt):
                super()._send_packet(eio_sid, pkt)
            self.core.sent(eio_sid)

    def _write_now(self, eio_sid: str, pkt: Any) -> bool:
        """Write a packet for one socket (an ack, a CONNECT answer) straight to its websocket when nothing can
        get in between (:mod:`realtime.fanout.direct_writes`); False: it takes the library's queue."""
        direct = getattr(self.eio, "realtime_direct_writes", None)
        if direct is None:
            return False
        encoded = pkt.encode()
        return isinstance(encoded, str) and direct.write(eio_sid, text_frame(("4" + encoded).encode()))

    def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        # python-socketio sends emits without a callback (rooms and single sids) pre-encoded through here,
        # not through _send_packet: hold and bound them here too.
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            # Its Engine.IO socket is gone and python-socketio has not taken it out of its rooms yet (its
            # disconnect handler runs next): nothing reaches it, and the recovery log keeps what a reconnect
            # needs. python-engineio would log "Cannot send to sid" at WARNING for every such packet, which
            # a mass disconnect (a deploy, the clients of a load test leaving) turns into thousands of lines.
            return
        if self.core.outgoing_encoded(eio_sid, eio_pkt):
            super()._send_eio_packet(eio_sid, eio_pkt)
            self.core.sent(eio_sid)

    def send_unheld(self, eio_sid: str, pkt: Any) -> None:
        """Send a Socket.IO packet past the hold (python-socketio's own ``_send_packet``)."""
        super()._send_packet(eio_sid, pkt)


def install(
    server: socketio.Server,
    app: Any,
    max_outbound_queue: int,
    max_concurrent_handshakes: int,
    connect_timeout: float,
) -> ServerCore:
    """Turn Flask-SocketIO's server into a :class:`RealtimeServer` bound to ``app``; return its core."""
    server.__class__ = RealtimeServer
    realtime: RealtimeServer = server  # type: ignore[assignment]
    realtime.core = ServerCore(
        server,
        app,
        send_unheld=realtime.send_unheld,
        prepare=prepare,
        max_outbound_queue=max_outbound_queue,
        max_concurrent_handshakes=max_concurrent_handshakes,
        connect_timeout=connect_timeout,
    )
    direct = DirectWrites()
    # guard_websocket_handler hands each websocket it can over to the hub, which registers it here.
    server.eio.realtime_direct_writes = direct
    server.eio.realtime_hand_over = functools.partial(
        hand_over, writes=direct, max_backlog=max_outbound_queue, overflow=realtime.core.overflowed
    )
    attach = getattr(server.manager, "attach", None)
    if attach is not None:
        # Looked up per call: Flask-SocketIO's test client replaces _send_eio_packet on the instance.
        core = realtime.core
        attach(LocalDelivery(
            direct, core.intercepts, lambda sid, pkt: realtime._send_eio_packet(sid, pkt),
            lambda: bool(core.held or core.replayed_up_to),
        ))
    # python-socketio registered its bound methods with Engine.IO before the class changed: register the
    # ones this class overrides again.
    server.eio.on("connect", realtime._handle_eio_connect)
    server.eio.on("message", realtime._handle_eio_message)
    server.eio.on("disconnect", realtime._handle_eio_disconnect)
    if not getattr(server.eio, "_realtime_ids", False):
        server.eio.generate_id = _recovered_or(server.eio.generate_id)
        server.eio._realtime_ids = True
    return realtime.core


def _recovered_or(generate_id: Any) -> Any:
    """Engine.IO's id generator, which python-socketio also asks for every new Socket.IO sid, returning a
    recovered socket's old sid instead while its CONNECT is handled."""

    def recovered_or_generated() -> str:
        forced = take_forced_sid()
        return forced if forced is not None else str(generate_id())

    return recovered_or_generated


def guard_websocket_handler(original: Any) -> Any:
    """Hand the websocket over to the hub where it can be (:mod:`realtime.sockets.websocket_handover`);
    otherwise run python-engineio's loop, and close the Engine.IO socket when that loop dies on an
    undecodable packet."""

    def guarded(self: Any, ws: Any) -> Any:
        take_over = getattr(self.server, "realtime_hand_over", None)
        if take_over is not None and take_over(self, ws):
            return []
        try:
            return original(self, ws)
        except Exception as exc:  # noqa: BLE001 - whatever ended the loop, the socket must not stay open
            logger.warning("websocket transport aborted on an undecodable packet (%s)", type(exc).__name__)
            self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            return []

    guarded.__realtime_guard__ = True  # type: ignore[attr-defined]
    return guarded


def install_transport_guards(max_message_bytes: int) -> None:
    """Bound gevent-websocket's frames and guard python-engineio's websocket loop, for the whole process
    (idempotent; the size cap follows the latest app)."""
    BoundedWebSocket.max_message_bytes = max_message_bytes
    geventwebsocket.handler.WebSocket = BoundedWebSocket
    handler = engineio.socket.Socket._websocket_handler
    if not getattr(handler, "__realtime_guard__", False):
        engineio.socket.Socket._websocket_handler = guard_websocket_handler(handler)


def install_ping_timers() -> None:
    """Make every Engine.IO socket of this process wait for its next ping on a hub timer (idempotent).

    Same behaviour as python-engineio's ``Socket.schedule_ping``: a ping is scheduled only once the previous
    ping was answered (``last_ping`` set), ``ping_interval`` seconds later (the first one earlier, spread:
    :func:`ping_delay`), and sent only if the socket is
    still open; the send itself runs in a greenlet (``start_background_task``), as before, because
    ``Socket.send`` may close the socket and run the app's disconnect handler, which must not run on the hub.
    A socket's pending timer is cancelled when it disconnects (:func:`cancel_ping_timer`): the timer holds
    the socket, which would otherwise outlive its connection by up to ``ping_interval`` (as python-engineio's
    sleeping greenlet does), and a worker churning sockets would hold that many more.
    """
    if getattr(engineio.socket.Socket.schedule_ping, "__realtime_timer__", False):
        return
    engineio.socket.Socket.schedule_ping = _schedule_ping  # type: ignore[method-assign]


#: A socket's first ping goes after a random share of ``ping_interval``, between this and 1: sockets that
#: connected together (a reconnect storm after a deploy) would otherwise be pinged together, and answer
#: together, every interval for as long as they live. Earlier than the interval is always in time for the
#: client, which waits ``ping_interval + ping_timeout`` for a ping.
FIRST_PING_SPREAD = 0.5
#: An Engine.IO PING as one websocket text frame.
PING_FRAME = text_frame(eio_packet.Packet(eio_packet.PING).encode().encode())


def ping_delay(sock: Any) -> float:
    """Seconds until ``sock``'s next ping: ``ping_interval`` after the previous one was answered, a random
    share of it (:data:`FIRST_PING_SPREAD`) before the first."""
    interval = float(sock.server.ping_interval)
    if getattr(sock, "realtime_pinged", False):
        return interval
    return interval * random.uniform(FIRST_PING_SPREAD, 1.0)


def _schedule_ping(self: Any) -> None:
    if self.last_ping:
        self.last_ping = None
        timer = gevent.get_hub().loop.timer(ping_delay(self))
        self.realtime_ping_timer = timer
        timer.start(_ping_due, self, timer)


_schedule_ping.__realtime_timer__ = True  # type: ignore[attr-defined]


def _ping_due(sock: Any, timer: Any) -> None:
    """Runs on the hub: no I/O here. A websocket taken over by the hub (:class:`FrameQueue`) gets its PING
    frame queued at once (appending a frame does no I/O, and the ping timeout cannot fire with ``last_ping``
    just set); any other socket gets the greenlet that sends, since ``Socket.send`` may close the socket."""
    timer.close()
    sock.realtime_ping_timer = None
    if sock.closing or sock.closed:
        return
    queue = sock.queue
    if isinstance(queue, FrameQueue):
        sock.realtime_pinged = True
        sock.last_ping = time.time()
        queue.transport.send_frame(PING_FRAME)
    else:
        sock.server.start_background_task(_send_ping, sock)


def _send_ping(sock: Any) -> None:
    if not sock.closing and not sock.closed:
        sock.realtime_pinged = True
        sock.last_ping = time.time()
        sock.send(eio_packet.Packet(eio_packet.PING))


def cancel_ping_timer(sock: Any) -> None:
    """Drop the pending ping timer of an Engine.IO socket that is going away (if it has one)."""
    timer = getattr(sock, "realtime_ping_timer", None)
    if timer is not None:
        sock.realtime_ping_timer = None
        timer.close()
