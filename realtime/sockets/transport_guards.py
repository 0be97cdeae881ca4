"""Guards around the transport libraries, for input they do not bound themselves.

- gevent-websocket reads a whole frame (and every continuation frame of a message) into memory before
  python-engineio compares the message with its size cap: :class:`BoundedWebSocket` refuses a frame, or a
  fragmented message, larger than the cap as soon as its header says so.
- python-engineio decodes a websocket packet outside its ``try`` block: an undecodable packet (``x``, an
  empty frame) ends the transport without closing the Engine.IO socket, leaving its Socket.IO session alive
  until the ping timeout. :func:`guard_websocket_handler` closes it.
Both are installed once per process by :func:`install_transport_guards`.
"""
from __future__ import annotations

import logging
from typing import Any

import engineio.socket
import geventwebsocket.handler
from geventwebsocket.exceptions import FrameTooLargeException, ProtocolError, WebSocketError
from geventwebsocket.websocket import Header, WebSocket

logger = logging.getLogger(__name__)


class BoundedWebSocket(WebSocket):
    """A gevent-websocket connection that refuses frames and messages over ``max_message_bytes``."""

    max_message_bytes = 2_000_000
    _message_bytes = 0

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
            payload = header.unmask_payload(payload)
        return header, payload


def guard_websocket_handler(original: Any) -> Any:
    """Close the Engine.IO socket when its websocket loop dies on an undecodable packet."""

    def guarded(self: Any, ws: Any) -> Any:
        try:
            return original(self, ws)
        except Exception as exc:
            logger.warning("websocket transport aborted on an undecodable packet (%s)", type(exc).__name__)
            self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            return []

    guarded.__realtime_guard__ = True  # type: ignore[attr-defined]
    return guarded


def install_transport_guards(max_message_bytes: int) -> None:
    """Install both guards (idempotent; the size cap follows the latest app)."""
    BoundedWebSocket.max_message_bytes = max_message_bytes
    geventwebsocket.handler.WebSocket = BoundedWebSocket
    handler = engineio.socket.Socket._websocket_handler
    if not getattr(handler, "__realtime_guard__", False):
        engineio.socket.Socket._websocket_handler = guard_websocket_handler(handler)
