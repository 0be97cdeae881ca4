"""Broadcast frames written straight to this worker's websockets: encoded once, one ``send`` per recipient.

python-engineio gives every socket a queue and a writer greenlet: each packet of a broadcast is queued once per
recipient, the writer wakes, gevent-websocket builds the frame again for that recipient, and gevent's
``sendall`` asks the kernel for the buffer size before it writes. Here a broadcast's WebSocket frame is built
once and each recipient gets those bytes, when nothing can get in between, batched per socket: the frames a
socket is given before the hub next runs (several broadcasts read from the channel in one go, an ack) go
out in one non-blocking ``send``:

- the socket is a websocket past its upgrade, open, with an empty queue;
- its write lock (:class:`~realtime.sockets.transport_guards.BoundedWebSocket`'s, which every frame of the
  writer greenlet takes) is free, so no frame of the writer is half written.

Otherwise the packet takes the library's path (queue and writer), which keeps the socket's order: once a packet
is queued, the next ones see a non-empty queue and follow it. A batch holds the lock from its first frame until
it is written, and data the kernel takes only in part keeps it while a greenlet writes the rest, so the writer
greenlet's frames wait for them. A reader that stops reading fills its queue
and is closed as a slow consumer (MAX_OUTBOUND_QUEUE), which also fails that greenlet's write.
"""
from __future__ import annotations

import logging
import struct
from typing import Any

import gevent

logger = logging.getLogger(__name__)

_TEXT_FIN = 0x81


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked WebSocket text frame (RFC 6455 §5.2) carrying ``payload``."""
    size = len(payload)
    if size < 126:
        return bytes((_TEXT_FIN, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", _TEXT_FIN, 126, size) + payload
    return struct.pack("!BBQ", _TEXT_FIN, 127, size) + payload


class Connection:
    """What a direct write needs of one websocket: the Engine.IO socket, the write lock and the OS socket."""

    __slots__ = ("eio", "lock", "sock", "raw", "pending")

    def __init__(self, eio: Any, lock: Any, sock: Any) -> None:
        self.eio = eio
        self.lock = lock
        #: Frames accepted since the lock was taken, written together at the next flush (None: no batch).
        self.pending: list[bytes] | None = None
        #: gevent's socket (its ``sendall`` waits cooperatively) and the OS socket under it (non-blocking).
        self.sock = sock
        self.raw = sock._sock


class DirectWrites:
    """The websockets of this worker that broadcasts may write to directly, by Engine.IO sid."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self._batched: list[Connection] = []
        self._flush_scheduled = False

    def __len__(self) -> int:
        return len(self._connections)

    def register(self, eio_sid: str, eio_socket: Any, websocket: Any) -> None:
        """Allow direct writes to ``websocket``, the transport of ``eio_socket``: a plain TCP socket (not TLS)
        whose frames all take a ``write_lock``."""
        lock = getattr(websocket, "write_lock", None)
        handler = getattr(websocket, "handler", None)
        sock = getattr(handler, "socket", None)
        if lock is None or sock is None or not _plain_tcp(sock):
            return
        self._connections[eio_sid] = Connection(eio_socket, lock, sock)

    def unregister(self, eio_sid: str) -> None:
        """The websocket of ``eio_sid`` ended."""
        self._connections.pop(eio_sid, None)

    def write(self, eio_sid: str, frame: bytes) -> bool:
        """Accept ``frame`` for ``eio_sid``'s websocket if nothing can get in between (module docstring): it
        goes out with the socket's other frames of this round, in one ``send``, when the hub next runs.

        :returns: False when the caller must send the packet through the library's queue instead.
        """
        connection = self._connections.get(eio_sid)
        if connection is None:
            return False
        pending = connection.pending
        if pending is not None:
            pending.append(frame)
            return True
        eio = connection.eio
        if eio.closing or eio.closed or eio.upgrading or not eio.upgraded or eio.queue.qsize():
            return False
        # Held until the batch is written: the writer greenlet's frames wait, so none gets in between.
        if not connection.lock.acquire(blocking=False):
            return False
        connection.pending = [frame]
        self._batched.append(connection)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            gevent.spawn(self.flush)
        return True

    def flush(self) -> None:
        """Write every open batch: each socket's frames in one non-blocking ``send`` (a greenlet finishes
        what the kernel does not take at once)."""
        batched, self._batched = self._batched, []
        self._flush_scheduled = False
        for connection in batched:
            frames, connection.pending = connection.pending or [], None
            _send(connection, frames[0] if len(frames) == 1 else b"".join(frames))


def _send(connection: Connection, data: bytes) -> None:
    """Write ``data`` holding the connection's lock, and release it once all is out."""
    try:
        sent = connection.raw.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError as exc:
        # The transport is failing: its reader ends the session, whose recovery covers these frames.
        logger.debug("a direct write failed with %s", type(exc).__name__)
        connection.lock.release()
        return
    if sent == len(data):
        connection.lock.release()
        return
    gevent.spawn(_finish, connection, memoryview(data)[sent:])


def _finish(connection: Connection, rest: memoryview) -> None:
    """Write the rest of a frame the kernel took in part, holding the write lock until it is out."""
    try:
        connection.sock.sendall(rest)
    except OSError as exc:
        logger.debug("a direct write ended with %s; the transport closes", type(exc).__name__)
    finally:
        connection.lock.release()


def _plain_tcp(sock: Any) -> bool:
    """Whether ``sock`` is a gevent socket over a plain OS socket (TLS sockets must write through TLS)."""
    raw = getattr(sock, "_sock", None)
    return raw is not None and type(sock).__name__ == "socket" and hasattr(raw, "send")
