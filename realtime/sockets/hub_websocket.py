"""Websockets served by the hub once upgraded: no greenlet per connection while it is idle (issue 9, item 3).

python-engineio serves a websocket with two greenlets for its whole life: the request's, blocked reading
frames, and a writer blocked on the socket's queue. Each keeps its Python frames and a copy of its C stack
on the heap, and the request's also keeps gevent.pywsgi's handler, its read buffer, the parsed headers and
Flask's request context: most of what an idle socket cost a worker. :class:`HubWebSocket` takes the
connection over once the handshake is done (:func:`hand_over`; the request's greenlet then ends):

- reading: a libev watcher on the socket. When it fires, a short-lived greenlet reads what is there, parses
  it (:class:`~realtime.fanout.websocket_frames.FrameReader`) and hands each packet to python-engineio's
  ``Socket.receive`` as its own loop did, one batch at a time and in order;
- writing: frames are written by the hub with non-blocking sends, batched per socket and per turn of the
  hub (:class:`~realtime.fanout.direct_writes.DirectWrites`); what the kernel does not take waits for a
  write watcher. More than ``max_backlog`` frames not taken is a slow consumer, closed as before;
- python-engineio keeps talking to its ``Socket.queue``:
  :class:`~realtime.sockets.websocket_handover.FrameQueue` turns each packet put there into a frame, and
  the ``None`` that ends the writer into a close once the last frames are out.

Connections that cannot be taken over (TLS, a server without :class:`HandOffHandler`) keep the library's two
greenlets: :func:`realtime.sockets.library_hooks.guard_websocket_handler` decides.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from gevent.event import Event

from realtime.fanout.direct_writes import DirectWrites
from realtime.fanout.websocket_frames import (
    CLOSE_NORMAL,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    FrameError,
    FrameReader,
    close_frame,
    frame,
)

logger = logging.getLogger(__name__)

#: Bytes read per wake-up of a socket's read watcher.
READ_CHUNK = 65536
#: Seconds a closing websocket waits for its last frames to be taken before it is cut.
CLOSE_GRACE = 5.0


class HubWebSocket:
    """One websocket connection, read and written by the hub (module docstring)."""

    __slots__ = (
        "_close_sent", "_closing", "_finished", "_grace", "_overflow", "_pending", "_read_watcher", "_unsent",
        "_write_watcher", "_writes", "backlog", "closed", "eio", "max_backlog", "reader", "sock",
    )

    def __init__(
        self, eio_socket: Any, sock: Any, writes: DirectWrites, max_message_bytes: int, max_backlog: int,
        overflow: Callable[[str], None],
    ) -> None:
        self.eio = eio_socket
        #: The connection's own OS socket (non-blocking), not gevent's.
        self.sock = sock
        self.reader = FrameReader(max_message_bytes)
        self.max_backlog = max_backlog
        #: Frames given to this socket that the kernel has not taken yet.
        self.backlog = 0
        self.closed = False
        self._writes = writes
        self._overflow = overflow
        self._pending: list[bytes] = []
        self._unsent: memoryview | None = None
        loop = gevent.get_hub().loop
        self._read_watcher = loop.io(sock.fileno(), 1)
        self._write_watcher: Any = None
        self._closing = False
        self._close_sent = False
        self._finished: Event | None = None
        self._grace: Any = None

    # Writing -------------------------------------------------------------------------------------------

    def send_frame(self, data: bytes) -> bool:
        """Queue ``data`` (whole frames) for the next flush; frames for a closing socket are dropped."""
        if self._closing or self.closed:
            return True
        self._pending.append(data)
        self.backlog += 1
        if self.backlog > self.max_backlog:
            self._overflow(self.eio.sid)
        if len(self._pending) == 1:
            self._writes.schedule(self)
        return True

    def send_now(self, data: bytes) -> bool:
        """Write ``data`` (whole frames) at once, after the frames already given to this socket."""
        if self._pending or self._unsent is not None or self._closing or self.closed:
            self.send_frame(data)
            self.flush()
        else:
            self.backlog += 1
            self._write(data)
        return True

    def flush(self) -> None:
        """Write what is pending, on the hub: one non-blocking send (the rest waits for the write watcher)."""
        if self.closed or not self._pending or self._unsent is not None:
            return
        pending, self._pending = self._pending, []
        self._write(pending[0] if len(pending) == 1 else b"".join(pending))

    def _write(self, data: bytes | memoryview) -> None:
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            logger.debug("a websocket write failed with %s", type(exc).__name__)
            self._cut()
            return
        if sent == len(data):
            self._unsent = None
            self.backlog = len(self._pending)
            if self._closing and not self._pending:
                self._finish()
            return
        self._unsent = memoryview(data)[sent:]
        if self._write_watcher is None:
            self._write_watcher = gevent.get_hub().loop.io(self.sock.fileno(), 2)
        if not self._write_watcher.active:
            self._write_watcher.start(self._writable)

    def _writable(self) -> None:
        unsent, self._unsent = self._unsent, None
        self._write_watcher.stop()
        if unsent is not None:
            self._write(unsent)
        if self._unsent is None and self._pending and not self.closed:
            self.flush()

    # Reading -------------------------------------------------------------------------------------------

    def start(self, ahead: bytes) -> None:
        """Serve the connection; ``ahead``: bytes already read past the handshake."""
        if ahead:
            gevent.spawn_raw(self._read, ahead)
        else:
            self._read_watcher.start(self._readable)

    def _readable(self) -> None:
        self._read_watcher.stop()
        gevent.spawn_raw(self._read, b"")

    def _read(self, ahead: bytes) -> None:
        try:
            data = ahead or self.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            data = b""
        try:
            if data is not None:
                if not data:
                    self._ended()
                    return
                if not self._deliver(data):
                    return
            if not (self._closing or self.closed):
                self._read_watcher.start(self._readable)
        except Exception:
            logger.exception("websocket reader failed")
            self._ended()

    def _deliver(self, data: bytes) -> bool:
        """Hand the messages in ``data`` to Engine.IO; False once the connection is ending."""
        try:
            messages = self.reader.feed(data)
        except FrameError as exc:
            logger.info("closing a websocket that broke the protocol: %s", exc)
            self._send_close(exc.code)
            self._ended()
            return False
        for opcode, payload in messages:
            if opcode == OPCODE_PING:
                self.send_frame(frame(OPCODE_PONG, payload))  # type: ignore[arg-type]
            elif opcode == OPCODE_CLOSE:
                self._send_close(CLOSE_NORMAL)
                self._ended()
                return False
            elif opcode != OPCODE_PONG and not self._receive(payload):
                return False
        return not (self._closing or self.closed)

    def _receive(self, payload: str | bytes) -> bool:
        eio = self.eio
        try:
            if len(payload) > eio.server.max_http_buffer_size:
                raise ValueError("packet is too large")
            pkt = eio_packet.Packet(encoded_packet=payload)
        except Exception as exc:  # noqa: BLE001 - whatever the packet was, the transport must not stay open
            logger.warning("websocket transport aborted on an undecodable packet (%s)", type(exc).__name__)
            self._ended(eio.server.reason.TRANSPORT_ERROR)
            return False
        try:
            eio.receive(pkt)
        except eio_exceptions.UnknownPacketError:
            return True
        except eio_exceptions.SocketIsClosedError:
            self._ended()
            return False
        return True

    # Ending --------------------------------------------------------------------------------------------

    def _ended(self, reason: Any = None) -> None:
        """The client's side is gone or must go: end the Engine.IO session (its handlers run here), then the
        connection."""
        self._read_watcher.stop()
        eio = self.eio
        try:
            eio.close(wait=False, abort=True, reason=reason or eio.server.reason.TRANSPORT_CLOSE)
        finally:
            self.close_after_flush()

    def close_after_flush(self) -> None:
        """Close once the pending frames are out (at most :data:`CLOSE_GRACE` s), with a close frame."""
        if self._closing or self.closed:
            return
        self._closing = True
        self._read_watcher.stop()
        if not self._pending and self._unsent is None:
            self._finish()
            return
        self._grace = gevent.get_hub().loop.timer(CLOSE_GRACE)
        self._grace.start(self._cut)
        self.flush()

    def abort(self) -> None:
        """Cut the connection now, whatever is pending (a slow consumer)."""
        self._closing = True
        self._cut()

    def _finish(self) -> None:
        self._send_close(CLOSE_NORMAL)
        self._cut()

    def _send_close(self, code: int) -> None:
        if not self._close_sent and not self.closed:
            self._close_sent = True
            try:
                self.sock.send(close_frame(code))
            except OSError:
                pass

    def _cut(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._pending, self._unsent, self.backlog = [], None, 0
        for watcher in (self._read_watcher, self._write_watcher, self._grace):
            if watcher is not None:
                watcher.close()
        self._writes.unregister(self.eio.sid, self)
        try:
            # Read out what the client sent meanwhile: closing with unread data would reset the connection
            # and could lose the frames just written.
            self.sock.recv(READ_CHUNK)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        if self._finished is not None:
            self._finished.set()
        if not (self.eio.closing or self.eio.closed):
            # The connection failed under a live session (a write error, the grace ran out).
            gevent.spawn(self.eio.close, wait=False, abort=True, reason=self.eio.server.reason.TRANSPORT_CLOSE)

    def wait_closed(self, timeout: float) -> None:
        """Block the calling greenlet until the connection is closed (at most ``timeout`` s)."""
        if not self.closed:
            if self._finished is None:
                self._finished = Event()
            self._finished.wait(timeout)
