"""The closed set of error codes, the error type handlers raise, and the one ack envelope."""
from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every code a client can receive, in an ack, an ``error`` event or a ``connect_error``."""

    AUTH_REQUIRED = "AUTH_REQUIRED"
    INVALID_TOKEN = "INVALID_TOKEN"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    SESSION_REVOKED = "SESSION_REVOKED"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    FORBIDDEN = "FORBIDDEN"
    NOT_IN_ROOM = "NOT_IN_ROOM"
    NOT_FOUND = "NOT_FOUND"
    NOT_YOUR_TURN = "NOT_YOUR_TURN"
    ROOM_LIMIT = "ROOM_LIMIT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    RATE_LIMITED = "RATE_LIMITED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


#: What each code means, for the README and the event catalogue.
ERROR_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.AUTH_REQUIRED: "No token in auth.token, an Authorization: Bearer header or ?token=.",
    ErrorCode.INVALID_TOKEN: "The token is malformed, badly signed, uses a refused algorithm or wrong issuer/audience.",
    ErrorCode.TOKEN_EXPIRED: "The token's exp claim is in the past.",
    ErrorCode.SESSION_REVOKED: "The session named by the token's sid claim is unknown, revoked or not the token's user.",
    ErrorCode.VALIDATION_ERROR: "The payload is not an object or fails its schema; fields says which.",
    ErrorCode.UNKNOWN_EVENT: "No handler exists for the event name.",
    ErrorCode.FORBIDDEN: "The room name is outside the naming convention or its authorization hook refused.",
    ErrorCode.NOT_IN_ROOM: "The socket must join the room before sending to it.",
    ErrorCode.NOT_FOUND: "The game (or other resource) named in the payload does not exist.",
    ErrorCode.NOT_YOUR_TURN: "A game move by a player whose turn it is not.",
    ErrorCode.ROOM_LIMIT: "The socket is already in MAX_ROOMS_PER_SOCKET rooms.",
    ErrorCode.RATE_LIMITED: "The socket sent events faster than EVENT_RATE (burst EVENT_BURST); after "
    "RATE_LIMIT_DISCONNECT refused events in a row the socket is disconnected.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The event's arguments serialize to more than MAX_PAYLOAD_BYTES.",
    ErrorCode.TOO_MANY_CONNECTIONS: "The user already has MAX_CONNECTIONS_PER_USER live sockets in the cluster "
    "(handshake refusal).",
    ErrorCode.UNAVAILABLE: "A backing service (Redis) did not answer, or refused a write (out of memory, read-only "
    "replica); retry later.",
    ErrorCode.INTERNAL: "An unexpected server error; it is logged with the event name.",
}


class RealtimeError(Exception):
    """A refusal a client should see: a code, a human message and optional per-field details."""

    def __init__(self, code: ErrorCode, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` member of the envelope."""
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


def ok(data: Any = None) -> dict[str, Any]:
    """A success envelope."""
    return {"ok": True, "data": data}


def failure(error: RealtimeError) -> dict[str, Any]:
    """A failure envelope."""
    return {"ok": False, "error": error.to_dict()}
