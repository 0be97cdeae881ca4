"""WebSocket frames (RFC 6455 §5) as bytes: the frames a server writes, and a reader for what clients send.

The reader takes bytes as they arrive and returns whole messages. It refuses, as soon as a frame's header
says so, a message larger than its cap, so a hostile length is never buffered; it unmasks in C (one
big-integer XOR) and checks a text message's UTF-8 with one strict ``decode``. A violation raises
:class:`FrameError` with the close code the connection ends with.
"""
from __future__ import annotations

import struct

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

_HEADER = struct.Struct("!BB")
_LENGTH_16 = struct.Struct("!H")
_LENGTH_64 = struct.Struct("!Q")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame of ``opcode`` carrying ``payload``."""
    first, size = 0x80 | opcode, len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying ``payload`` (UTF-8)."""
    return frame(OPCODE_TEXT, payload)


def close_frame(code: int) -> bytes:
    """A close frame with status ``code`` and no reason."""
    return frame(OPCODE_CLOSE, _LENGTH_16.pack(code))


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR a client frame's payload with its 4-byte mask, as one big-integer operation (in C)."""
    size = len(payload)
    if not size:
        return b""
    key = (mask * ((size >> 2) + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


class FrameError(Exception):
    """A client broke the protocol; ``code`` is the close status to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class FrameReader:
    """Client frames in, messages out: ``(opcode, payload)`` with text messages as ``str``.

    Control frames (close, ping, pong) come out as they arrive, also between the fragments of a message.
    """

    __slots__ = ("_buffer", "_fragment_bytes", "_fragment_opcode", "_fragments", "max_message_bytes")

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._buffer = b""
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = 0
        self._fragment_bytes = 0

    def feed(self, data: bytes) -> list[tuple[int, str | bytes]]:
        """The messages that ``data`` completes, in order.

        :raises FrameError: the connection must close with ``code``.
        """
        buffer = self._buffer + data if self._buffer else data
        messages: list[tuple[int, str | bytes]] = []
        offset, end = 0, len(buffer)
        while end - offset >= 2:
            first, second = _HEADER.unpack_from(buffer, offset)
            length, at = second & 0x7F, offset + 2
            if length == 126:
                if end - at < 2:
                    break
                (length,) = _LENGTH_16.unpack_from(buffer, at)
                at += 2
            elif length == 127:
                if end - at < 8:
                    break
                (length,) = _LENGTH_64.unpack_from(buffer, at)
                at += 8
            opcode = first & 0x0F
            self._check_header(first, opcode, length)
            masked = second & 0x80
            if end - at < length + (4 if masked else 0):
                break
            if masked:
                mask = buffer[at : at + 4]
                at += 4
                payload = unmask(buffer[at : at + length], mask)
            else:
                payload = buffer[at : at + length]
            offset = at + length
            message = self._message(first & 0x80, opcode, payload)
            if message is not None:
                messages.append(message)
        self._buffer = buffer[offset:] if offset < end else b""
        return messages

    def _check_header(self, first: int, opcode: int, length: int) -> None:
        if first & 0x70:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
        if opcode >= OPCODE_CLOSE:
            if opcode > OPCODE_PONG:
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown control opcode {opcode}")
            if length > 125 or not first & 0x80:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "fragmented or oversized control frame")
            return
        if opcode > OPCODE_BINARY:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown data opcode {opcode}")
        if (opcode == OPCODE_CONTINUATION) == (self._fragments is None):
            raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation out of sequence")
        total = length + (self._fragment_bytes if opcode == OPCODE_CONTINUATION else 0)
        if total > self.max_message_bytes:
            raise FrameError(CLOSE_TOO_BIG, f"message of {total}+ bytes exceeds {self.max_message_bytes}")

    def _message(self, final: int, opcode: int, payload: bytes) -> tuple[int, str | bytes] | None:
        if opcode >= OPCODE_CLOSE:
            return opcode, payload
        if opcode != OPCODE_CONTINUATION:
            if not final:
                self._fragments, self._fragment_opcode, self._fragment_bytes = [payload], opcode, len(payload)
                return None
        else:
            assert self._fragments is not None
            self._fragments.append(payload)
            self._fragment_bytes += len(payload)
            if not final:
                return None
            opcode, payload = self._fragment_opcode, b"".join(self._fragments)
            self._fragments, self._fragment_bytes = None, 0
        if opcode == OPCODE_TEXT:
            try:
                return opcode, payload.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message") from None
        return opcode, payload
