"""A minimal raw Engine.IO v4 / Socket.IO v5 client over one WebSocket, for hostile-input tests.

It speaks just enough of the protocol to reach the server's parsers with arbitrary bytes:

- :meth:`RawSocketIO.open` opens ``ws://host:port/socket.io/?EIO=4&transport=websocket[&token=…]`` and
  reads the Engine.IO OPEN packet (``0{"sid": …, "pingInterval": …}``);
- :meth:`~RawSocketIO.send_text`, :meth:`~RawSocketIO.send_binary` and :meth:`~RawSocketIO.send_frame`
  send well-formed frames whose *content* is anything (``send_frame(b"\\xff", OPCODE_TEXT)`` puts invalid
  UTF-8 in a text frame); :meth:`~RawSocketIO.send_raw` writes bytes straight to the TCP socket (a frame
  header of your own);
- :meth:`~RawSocketIO.connect` sends a Socket.IO CONNECT (``40{"token": …}``) and returns the answer
  (``40{"sid": …}`` or ``44{…}``); :meth:`~RawSocketIO.emit` sends an EVENT with an optional ack id and
  :meth:`~RawSocketIO.ack` reads its ``43<id>[…]`` answer;
- every read answers Engine.IO pings (``2`` → ``3``) and returns ``None`` on timeout; :class:`Closed` is
  raised once the server closed the connection.

Reads return :class:`Frame` (the text or bytes of one WebSocket message); :meth:`Frame.socketio` decodes a
Socket.IO packet into a :class:`SioPacket`.
"""
from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import websocket
from websocket import ABNF

__all__ = ["Closed", "Frame", "RawSocketIO", "SioPacket", "socketio_url"]

OPCODE_TEXT = ABNF.OPCODE_TEXT
OPCODE_BINARY = ABNF.OPCODE_BINARY


class Closed(Exception):
    """The server closed the WebSocket (close frame or EOF); ``code`` is the close code when one was sent."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"connection closed by the server (code={code}, reason={reason!r})")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    """One WebSocket message from the server: ``data`` is ``str`` for text frames, ``bytes`` for binary."""

    data: str | bytes

    @property
    def text(self) -> str:
        if not isinstance(self.data, str):
            raise TypeError("binary frame")
        return self.data

    def socketio(self) -> SioPacket | None:
        """The Socket.IO packet in a text Engine.IO MESSAGE (``4…``); ``None`` for anything else.

        :raises ValueError: when the JSON part is not JSON (the server never sends that).
        """
        if not isinstance(self.data, str) or not self.data.startswith("4") or len(self.data) < 2:
            return None
        kind, rest = self.data[1], self.data[2:]
        attachments = ""
        dash = rest.find("-")
        if dash > 0 and rest[:dash].isdigit():
            attachments, rest = rest[:dash], rest[dash + 1 :]
        namespace = "/"
        if rest.startswith("/"):
            namespace, _, rest = rest.partition(",")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        return SioPacket(
            kind=kind,
            id=int(digits) if digits else None,
            namespace=namespace,
            data=json.loads(rest) if rest else None,
            attachments=int(attachments) if attachments else 0,
        )


@dataclass(frozen=True)
class SioPacket:
    """A decoded Socket.IO packet: ``kind`` is ``"0"`` CONNECT, ``"2"`` EVENT, ``"3"`` ACK, ``"4"`` CONNECT_ERROR…"""

    kind: str
    id: int | None
    namespace: str
    data: Any
    attachments: int = 0

    @property
    def is_connect(self) -> bool:
        return self.kind == "0"

    @property
    def is_connect_error(self) -> bool:
        return self.kind == "4"

    def is_ack(self, ack_id: int) -> bool:
        return self.kind == "3" and self.id == ack_id

    def is_event(self, name: str | None = None) -> bool:
        return self.kind == "2" and (name is None or (isinstance(self.data, list) and self.data[:1] == [name]))


def socketio_url(base_url: str, token: str | None = None, **query: str) -> str:
    """``http://127.0.0.1:5000`` → ``ws://127.0.0.1:5000/socket.io/?EIO=4&transport=websocket[&token=…]``."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    params = {"EIO": "4", "transport": "websocket", **query}
    if token is not None:
        params["token"] = token
    return f"{scheme}://{parts.netloc}/socket.io/?{urlencode(params)}"


class RawSocketIO:
    """One raw WebSocket to the Socket.IO endpoint. Use :meth:`open`; close with :meth:`close` (or ``with``)."""

    def __init__(self, ws: websocket.WebSocket, open_packet: dict[str, Any]) -> None:
        self.ws = ws
        #: The Engine.IO OPEN packet: ``sid``, ``upgrades``, ``pingInterval``, ``pingTimeout``, ``maxPayload``.
        self.open_packet = open_packet
        self.closed: Closed | None = None
        self.pings_answered = 0

    # -- opening and closing ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, base_url: str, token: str | None = None, timeout: float = 5.0, **query: str) -> RawSocketIO:
        """Open the WebSocket and read the Engine.IO OPEN packet.

        :raises RuntimeError: when the first frame is not an OPEN packet.
        """
        ws = websocket.create_connection(socketio_url(base_url, token, **query), timeout=timeout)
        first = ws.recv()
        if not isinstance(first, str) or not first.startswith("0"):
            ws.close()
            raise RuntimeError(f"expected an Engine.IO OPEN packet, got {first!r}")
        return cls(ws, json.loads(first[1:]))

    def close(self) -> None:
        """Close our side (a close frame, then the TCP socket); safe to call twice."""
        try:
            self.ws.close(timeout=0.5)
        except (OSError, websocket.WebSocketException):
            pass

    def __enter__(self) -> RawSocketIO:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """One text frame (an Engine.IO packet such as ``42["event",{}]``)."""
        self.ws.send(text, opcode=OPCODE_TEXT)

    def send_binary(self, data: bytes) -> None:
        """One binary frame (an Engine.IO binary MESSAGE: a Socket.IO attachment)."""
        self.ws.send(data, opcode=OPCODE_BINARY)

    def send_frame(self, payload: bytes, opcode: int = OPCODE_TEXT, fin: bool = True) -> None:
        """One masked frame with ``payload`` as is, whatever ``opcode`` says (invalid UTF-8 in a text frame)."""
        self.ws.send_frame(ABNF(int(fin), 0, 0, 0, opcode, 1, payload))

    def send_raw(self, data: bytes) -> None:
        """Bytes straight to the TCP socket (hand-made frame headers)."""
        self.ws.sock.sendall(data)

    @staticmethod
    def frame_header(length: int, opcode: int = OPCODE_TEXT, fin: bool = True) -> bytes:
        """A client frame header declaring ``length`` payload bytes, with an all-zero mask (payload sent as is)."""
        first = (0x80 if fin else 0) | opcode
        if length < 126:
            head = struct.pack("!BB", first, 0x80 | length)
        elif length < 1 << 16:
            head = struct.pack("!BBH", first, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", first, 0x80 | 127, length)
        return head + b"\x00\x00\x00\x00"

    def emit(self, event: Any, *args: Any, ack_id: int | None = None, namespace: str = "") -> None:
        """A Socket.IO EVENT (``42[<ack id>]["event", ...args]``); ``event`` may be any JSON value."""
        nsp = f"{namespace}," if namespace else ""
        ack = "" if ack_id is None else str(ack_id)
        self.send_text(f"42{nsp}{ack}{json.dumps([event, *args], separators=(',', ':'))}")

    def connect(self, auth: Any = None, namespace: str = "/", timeout: float = 5.0) -> SioPacket:
        """Send a Socket.IO CONNECT (``40`` or ``40{"token": …}``) and wait for its answer on ``namespace``.

        :returns: the CONNECT (``data`` = ``{"sid": …}``) or CONNECT_ERROR (``data`` = ``{"message", "data"}``).
        :raises TimeoutError: when neither arrives within ``timeout``.
        """
        nsp = "" if namespace == "/" else f"{namespace},"
        body = "" if auth is None else json.dumps(auth, separators=(",", ":"))
        self.send_text(f"40{nsp}{body}")
        return self.expect(lambda p: p.namespace == namespace and (p.is_connect or p.is_connect_error), timeout)

    # -- reading ---------------------------------------------------------------------------------------------

    def recv(self, timeout: float = 1.0) -> Frame | None:
        """The next text/binary message, answering Engine.IO pings on the way; ``None`` after ``timeout``.

        :raises Closed: the server closed the connection (now or before).
        """
        if self.closed is not None:
            raise self.closed
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.ws.settimeout(remaining)
            try:
                opcode, frame = self.ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                return None
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError) as exc:
                self.closed = Closed(None, type(exc).__name__)
                raise self.closed from None
            except websocket.WebSocketException as exc:
                self.closed = Closed(None, f"{type(exc).__name__}: {exc}")
                raise self.closed from None
            if opcode == ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else None
                self.closed = Closed(code, frame.data[2:].decode("utf-8", "replace"))
                raise self.closed
            if opcode in (ABNF.OPCODE_PING, ABNF.OPCODE_PONG):
                continue
            data: str | bytes = frame.data.decode("utf-8") if opcode == OPCODE_TEXT else bytes(frame.data)
            if data == "2":  # Engine.IO PING: answer, keep reading
                self.send_text("3")
                self.pings_answered += 1
                continue
            return Frame(data)

    def expect(self, predicate: Callable[[SioPacket], bool], timeout: float = 5.0) -> SioPacket:
        """Read until a Socket.IO packet satisfies ``predicate``; skip everything else.

        :raises TimeoutError: when none arrives within ``timeout``.
        :raises Closed: when the server closes first.
        """
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            frame = self.recv(remaining)
            if frame is None:
                break
            packet = frame.socketio()
            if packet is not None and predicate(packet):
                return packet
        raise TimeoutError(f"no matching Socket.IO packet within {timeout}s")

    def ack(self, ack_id: int, timeout: float = 5.0) -> list[Any]:
        """The arguments of the ACK packet ``43<ack_id>[...]``."""
        return list(self.expect(lambda p: p.is_ack(ack_id), timeout).data or [])

    def drain(self, duration: float) -> list[Frame]:
        """Every message that arrives within ``duration`` (stops early if the server closes: see :attr:`closed`)."""
        frames: list[Frame] = []
        deadline = time.monotonic() + duration
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                frame = self.recv(remaining)
                if frame is None:
                    break
                frames.append(frame)
        except Closed:
            pass
        return frames

    def closed_within(self, timeout: float) -> bool:
        """Whether the server closes the connection within ``timeout`` (messages in between are discarded)."""
        self.drain(timeout)
        return self.closed is not None

    def alive(self, timeout: float = 2.0, ack_id: int = 987654) -> bool:
        """Whether the connected socket still answers: an event with an ack id gets its ``43<id>`` ACK.

        (Engine.IO v4 servers ignore client pings, so a Socket.IO round trip is the probe; the server
        answers an unknown event with an ``UNKNOWN_EVENT`` envelope.)
        """
        try:
            self.emit("raw:alive?", ack_id=ack_id)
            self.ack(ack_id, timeout)
        except (Closed, TimeoutError, OSError, websocket.WebSocketException):
            return False
        return True
