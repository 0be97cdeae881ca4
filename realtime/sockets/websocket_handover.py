"""Handing a websocket connection from its request's greenlet over to the hub (:mod:`.hub_websocket`).

A websocket opened directly (``transport=websocket``, no polling first) is taken over as soon as
python-engineio calls its handler: the connection gets its own descriptor (a duplicate: gevent.pywsgi closes
the request's when the request's greenlet returns), the bytes gevent.pywsgi already read past the request
head are handed on, the packets already queued (the OPEN packet) are written first, and the environ that
python-socketio keeps for the session drops what pointed back at the request (its input and socket).

The request's greenlet then returns. :class:`HandOffHandler` (gevent.pywsgi's handler for gunicorn's
workers) leaves the connection alone: no read of the next request, no close. While any taken-over websocket is
open, one greenlet (:func:`_hold_while_open`) sits in the server's pool, so gunicorn's graceful stop waits
for them as it waited for their requests' greenlets (``SHUTDOWN_TIMEOUT``; the drain closes them).

A websocket upgraded from polling keeps python-engineio's loop and writer (its upgrade exchange runs there).
"""
from __future__ import annotations

import _socket
import io
import logging
import os
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import PoolFull
from gevent.queue import Empty

from realtime.fanout.direct_writes import DirectWrites
from realtime.fanout.websocket_frames import OPCODE_BINARY, frame, text_frame
from realtime.sockets.hub_websocket import CLOSE_GRACE, READ_CHUNK, HubWebSocket
from realtime.sockets.transport_guards import BoundedWebSocket, HeadDeadlineHandler

logger = logging.getLogger(__name__)

#: Seconds between the pool holder's checks for open websockets.
HOLD_POLL = 0.5
#: What a taken-over session's environ reads as its request body (nothing).
_NO_INPUT = io.BytesIO(b"")


class HandOffHandler(HeadDeadlineHandler):
    """gevent.pywsgi's handler for a connection whose websocket may be handed over: once it is, the
    request ends without reading another one or closing the connection (the hub owns it)."""

    handed_over = False

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if self.handed_over:
            rfile = self.rfile
            # gevent.pywsgi's handle() would read out and close the socket when it is not None.
            self.socket = None
            self.rfile = None
            if rfile is not None:
                rfile.close()
            return None
        return result


def hand_over(
    eio_socket: Any, ws: Any, writes: DirectWrites, max_backlog: int, overflow: Callable[[str], None]
) -> bool:
    """Take ``ws``'s connection over for ``eio_socket`` (an Engine.IO socket opened on it); False when it
    cannot be (upgraded from polling, TLS, not served by :class:`HandOffHandler`)."""
    websocket = getattr(ws, "_sock", None)
    handler = getattr(websocket, "handler", None)
    if eio_socket.connected or not isinstance(handler, HandOffHandler) or not isinstance(websocket, BoundedWebSocket):
        return False
    connection = handler.socket
    if not _plain_tcp(connection):
        return False
    connection.settimeout(0.0)
    ahead = handler.rfile.read1(READ_CHUNK)
    transport = HubWebSocket(eio_socket, own_socket(connection), writes, BoundedWebSocket.max_message_bytes,
                             max_backlog, overflow)
    queued = []
    while not eio_socket.queue.empty():
        queued.append(eio_socket.queue.get_nowait())
    eio_socket.queue = FrameQueue(transport)
    eio_socket.connected = True
    eio_socket.upgraded = True
    for pkt in queued:
        eio_socket.queue.put(pkt)
    writes.register(eio_socket.sid, transport)
    _hold_pool(handler.server, writes)
    environ = ws.environ
    environ["wsgi.input"] = _NO_INPUT
    for key in ("gunicorn.socket", "wsgi.websocket", "werkzeug.request"):
        environ.pop(key, None)
    # gevent-websocket must not send a close frame when the request returns.
    websocket.closed = True
    handler.handed_over = True
    transport.start(ahead)
    return True


class FrameQueue:
    """What python-engineio sees as a taken-over socket's ``queue``: each packet put is written as a frame; the
    ``None`` that would end its writer closes the connection once the frames before it are out."""

    __slots__ = ("transport",)

    def __init__(self, transport: HubWebSocket) -> None:
        self.transport = transport

    def put(self, pkt: Any, block: bool = True, timeout: float | None = None) -> None:
        if pkt is None:
            self.transport.close_after_flush()
            return
        encoded = pkt.encode()
        if isinstance(encoded, str):
            self.transport.send_frame(text_frame(encoded.encode()))
        else:
            self.transport.send_frame(frame(OPCODE_BINARY, encoded))

    def qsize(self) -> int:
        return self.transport.backlog

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        raise Empty

    def task_done(self) -> None:
        """Nothing to count: frames are not taken from here."""

    def join(self, timeout: float | None = None) -> None:
        self.transport.wait_closed(CLOSE_GRACE + 1.0 if timeout is None else timeout)


def own_socket(gevent_socket: Any) -> Any:
    """A plain, non-blocking OS socket on a duplicate of ``gevent_socket``'s descriptor (the original is
    closed by gevent.pywsgi when the request's greenlet ends)."""
    sock = _socket.socket(fileno=os.dup(gevent_socket.fileno()))
    sock.setblocking(False)
    return sock


def _hold_pool(server: Any, writes: DirectWrites) -> None:
    """Keep one greenlet in ``server``'s pool while ``writes`` has open websockets (module docstring)."""
    pool = getattr(server, "pool", None)
    if pool is None:
        return
    holder = getattr(pool, "realtime_holder", None)
    if holder is not None and not holder.dead:
        return
    holder = gevent.Greenlet(_hold_while_open, writes)
    try:
        pool.add(holder, blocking=False)
    except PoolFull:
        return
    holder.start()
    pool.realtime_holder = holder


def _hold_while_open(writes: DirectWrites) -> None:
    while len(writes):
        gevent.sleep(HOLD_POLL)


def _plain_tcp(sock: Any) -> bool:
    """Whether ``sock`` is a gevent socket over a plain OS socket (TLS sockets must stay with gevent)."""
    raw = getattr(sock, "_sock", None)
    return raw is not None and type(sock).__name__ == "socket" and hasattr(raw, "send")
