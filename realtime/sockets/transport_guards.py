"""Guards around the transport libraries, for input they do not bound themselves.

- gevent-websocket reads a whole frame (and every continuation frame of a message) into memory before
  python-engineio compares the message with its size cap: :class:`BoundedWebSocket` refuses a frame, or a
  fragmented message, larger than the cap as soon as its header says so.
- gevent.pywsgi waits for a request head as long as the client likes (a connection that sends nothing, or
  one header line now and then, holds a slot of ``worker_connections`` forever), and gunicorn's
  ``keepalive`` does not apply to its gevent pywsgi workers: :class:`HeadDeadlineHandler` gives every
  request head, the first on a connection and each next one on a keep-alive connection, one total deadline.

:func:`realtime.sockets.library_hooks.install_transport_guards` installs the first for the whole process
(with python-engineio's websocket guard, which needs a private method); gunicorn.conf.py installs the
second in each worker with :func:`install_head_deadline`.
"""
from __future__ import annotations

import logging
from typing import Any

import gevent
from geventwebsocket.exceptions import (
    FrameTooLargeException,
    ProtocolError,
    WebSocketError,
)
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import Header, WebSocket

from realtime.fanout.websocket_frames import unmask

logger = logging.getLogger(__name__)


class _NoApplication:
    """What gevent-websocket tells of a close, when the WSGI app has no ``current_app``: nothing."""

    def on_close(self, *args: Any) -> None:
        return None


_NO_APPLICATION = _NoApplication()


class BoundedWebSocket(WebSocket):
    """A gevent-websocket connection that refuses frames and messages over ``max_message_bytes``, and unmasks
    and checks UTF-8 in C (the handshake of every websocket, and the whole life of one upgraded from polling;
    :mod:`realtime.sockets.websocket_handover` takes the others over)."""

    max_message_bytes = 2_000_000
    _message_bytes = 0

    @property
    def current_app(self) -> Any:
        """gevent-websocket's default builds a new class on every call, and calls it twice when a closed
        websocket is collected (once per connection here: 1.4 % of a connect's CPU in scenario d)."""
        return _NO_APPLICATION

    def validate_utf8(self, payload: Any) -> None:
        """Left to :meth:`_decode_bytes`, whose strict ``decode`` checks the whole text message in C (and
        closes with 1007 on invalid UTF-8), instead of gevent-websocket's byte-by-byte Python validator."""

    def read_frame(self) -> tuple[Any, bytes]:
        header = Header.decode_header(self.stream)
        if header.opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY):
            self._message_bytes = 0
        if header.opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY, self.OPCODE_CONTINUATION):
            self._message_bytes += header.length
            if self._message_bytes > self.max_message_bytes:
                raise FrameTooLargeException(
                    f"message of {self._message_bytes}+ bytes exceeds {self.max_message_bytes}"
                )
        return self._read_payload(header)

    def _read_payload(self, header: Any) -> tuple[Any, bytes]:
        if header.flags:
            raise ProtocolError
        if not header.length:
            return header, b""
        payload = self.raw_read(header.length)
        if len(payload) != header.length:
            raise WebSocketError("Unexpected EOF reading frame payload")
        if header.mask:
            payload = unmask(payload, header.mask)
        return header, payload


class RequestHeadExpired(TimeoutError):
    """The request head did not arrive in full within :attr:`HeadDeadlineHandler.head_timeout`.

    A :class:`TimeoutError` is an ``OSError``: pywsgi's ``handle_one_request`` treats it, raised while the
    request line is read, as a dropped connection and closes it without an answer.
    """


class HeadDeadlineHandler(WebSocketHandler):
    """gevent-websocket's handler with one deadline for each whole request head (request line and headers).

    Relies on gevent.pywsgi's documented ``WSGIHandler`` hooks: ``handle_one_request`` calls
    ``read_requestline`` (the deadline starts: right after accept, or right after the previous response on
    a keep-alive connection), then ``read_request`` (the deadline ends once the headers are parsed), then
    runs the application, which the deadline never covers (a WebSocket or a long-poll lives as long as it
    needs). A head that misses the deadline ends the connection: silently while no request line has
    arrived, with pywsgi's ``400 Bad Request`` (a ``ValueError`` from ``read_request``) once one has.
    """

    head_timeout: float = 20.0
    _head_deadline: gevent.Timeout | None = None

    def handle_one_request(self) -> Any:
        try:
            return super().handle_one_request()
        finally:
            # The request line may have been empty or too long: pywsgi then never calls read_request.
            self._end_head_deadline()

    def read_requestline(self) -> str:
        self._end_head_deadline()
        self._head_deadline = gevent.Timeout(self.head_timeout, RequestHeadExpired())
        self._head_deadline.start()
        try:
            return super().read_requestline()
        except RequestHeadExpired:
            logger.debug("closing a connection that sent no request within %g s", self.head_timeout)
            raise

    def read_request(self, raw_requestline: str) -> bool:
        try:
            return super().read_request(raw_requestline)
        except RequestHeadExpired:
            raise ValueError(
                f"request head not complete within HANDSHAKE_TIMEOUT ({self.head_timeout:g} s); closing"
            ) from None
        finally:
            self._end_head_deadline()

    def _end_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.close()
            self._head_deadline = None


def install_head_deadline(
    worker: Any, head_timeout: float, handler_class: type[HeadDeadlineHandler] = HeadDeadlineHandler
) -> None:
    """Serve ``worker``'s connections with ``handler_class`` (call it before the worker serves).

    Relies on gunicorn's gevent pywsgi worker building its server with ``handler_class=self.wsgi_handler``
    in ``run()``, which gunicorn calls after the ``post_worker_init`` hook.

    :raises TypeError: when the worker does not serve with gevent-websocket's handler.
    """
    current = getattr(worker, "wsgi_handler", None)
    if not (isinstance(current, type) and issubclass(handler_class, current)):
        raise TypeError(
            f"worker class {type(worker).__name__!r} serves connections with {current!r}, not gevent-websocket's "
            "WebSocketHandler, so HANDSHAKE_TIMEOUT cannot be enforced. Keep worker_class = "
            "'geventwebsocket.gunicorn.workers.GeventWebSocketWorker' in gunicorn.conf.py."
        )
    HeadDeadlineHandler.head_timeout = head_timeout
    worker.wsgi_handler = handler_class
