"""Chat payloads, inbound and outbound."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from realtime.schemas.fields import validate_identifier

MAX_CONTENT_LENGTH = 4000


class RoomRefSchema(Schema):
    """``chat:join`` / ``chat:leave``: which chat room (the ``group:{roomId}`` room)."""

    roomId = fields.String(required=True, validate=validate_identifier, metadata={"example": "lobby"})


class ChatMessageInSchema(Schema):
    """``chat:message``: a text message to a joined room."""

    roomId = fields.String(required=True, validate=validate_identifier, metadata={"example": "lobby"})
    content = fields.String(
        required=True, validate=validate.Length(min=1, max=MAX_CONTENT_LENGTH), metadata={"example": "Hello!"}
    )


class ChatMessageOutSchema(Schema):
    """``chat:new_message``: a message as every member of the room receives it."""

    id = fields.String(required=True)
    roomId = fields.String(required=True)
    senderId = fields.String(required=True)
    content = fields.String(required=True)
    createdAt = fields.String(required=True, metadata={"format": "date-time"})
