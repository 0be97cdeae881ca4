"""Chat payloads, inbound and outbound."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from realtime.identifiers import STREAM_ID_PATTERN
from realtime.schemas.fields import Identifier, StrictBoolean, validate_stream_id

MAX_CONTENT_LENGTH = 4000
MAX_HISTORY_PAGE = 100
MESSAGE_TYPES = ("TEXT", "IMAGE", "VIDEO", "AUDIO")


class RoomRefSchema(Schema):
    """``chat:join`` / ``chat:leave``: which chat room (the ``group:{roomId}`` room)."""

    roomId = Identifier(required=True, metadata={"example": "lobby"})


class ChatMessageInSchema(Schema):
    """``chat:message``: text and/or media to a joined room; ``clientId`` makes retries idempotent."""

    roomId = Identifier(required=True, metadata={"example": "lobby"})
    content = fields.String(validate=validate.Length(min=1, max=MAX_CONTENT_LENGTH), metadata={"example": "Hello!"})
    type = fields.String(
        load_default="TEXT", validate=validate.OneOf(MESSAGE_TYPES), metadata={"example": "TEXT"}
    )
    mediaUrl = fields.Url(
        schemes={"https", "http"}, validate=validate.Length(max=2048), metadata={"example": "https://cdn.example/p.jpg"}
    )
    clientId = Identifier(metadata={"example": "c-7f3a"})

    @validates_schema
    def _content_or_media(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("content") and not data.get("mediaUrl"):
            raise ValidationError("Send content, mediaUrl or both.", field_name="content")


class ChatHistoryInSchema(Schema):
    """``chat:history``: a page of older messages, newest first."""

    roomId = Identifier(required=True, metadata={"example": "lobby"})
    before = fields.String(
        validate=validate_stream_id, metadata={"example": "1700000000000-0", "pattern": STREAM_ID_PATTERN}
    )
    limit = fields.Integer(
        strict=True,
        load_default=50, validate=validate.Range(min=1, max=MAX_HISTORY_PAGE), metadata={"example": 20}
    )


class ChatTypingInSchema(Schema):
    """``chat:typing``: whether the user is typing in a joined room."""

    roomId = Identifier(required=True, metadata={"example": "lobby"})
    isTyping = StrictBoolean(required=True, metadata={"example": True})


class SenderSchema(Schema):
    """Who sent a message."""

    id = fields.String(required=True)
    username = fields.String(required=True)
    avatarUrl = fields.String(allow_none=True)


class ChatMessageOutSchema(Schema):
    """``chat:new_message``: a stored message as every member of the room receives it."""

    id = fields.String(required=True, metadata={"example": "1700000000000-0"})
    roomId = fields.String(required=True, metadata={"example": "lobby"})
    senderId = fields.String(required=True, metadata={"example": "alice"})
    sender = fields.Nested(SenderSchema, required=True)
    content = fields.String(allow_none=True, metadata={"example": "Hello!"})
    type = fields.String(required=True, validate=validate.OneOf(MESSAGE_TYPES), metadata={"example": "TEXT"})
    mediaUrl = fields.String(allow_none=True)
    clientId = fields.String(allow_none=True)
    createdAt = fields.String(required=True, metadata={"format": "date-time", "example": "2026-01-01T12:00:00.000Z"})


class ChatHistoryOutSchema(Schema):
    """``chat:history``: recent messages of a room, newest first (sent to a joiner)."""

    roomId = fields.String(required=True)
    messages = fields.List(fields.Nested(ChatMessageOutSchema), required=True)


class ChatMembershipOutSchema(Schema):
    """``chat:user_joined`` / ``chat:user_left``."""

    userId = fields.String(required=True, metadata={"example": "bob"})
    roomId = fields.String(required=True, metadata={"example": "lobby"})
    timestamp = fields.String(required=True, metadata={"format": "date-time"})


class ChatMembersChangedOutSchema(Schema):
    """``chat:members_changed``: the joins and leaves of a room held during one coalescing window."""

    roomId = fields.String(required=True, metadata={"example": "lobby"})
    joined = fields.List(
        fields.String(), required=True, validate=validate.Length(max=50),
        metadata={"description": "users whose first socket joined (the first 50)"},
    )
    left = fields.List(
        fields.String(), required=True, validate=validate.Length(max=50),
        metadata={"description": "users whose last socket left (the first 50)"},
    )
    moreJoined = fields.Integer(required=True, metadata={"description": "joins past the 50 listed", "minimum": 0})
    moreLeft = fields.Integer(required=True, metadata={"description": "leaves past the 50 listed", "minimum": 0})
    users = fields.Integer(required=True, metadata={"description": "distinct users in the room now", "minimum": 0})
    timestamp = fields.String(required=True, metadata={"format": "date-time"})


class ChatTypingOutSchema(Schema):
    """``chat:user_typing``: someone else in the room is (not) typing."""

    userId = fields.String(required=True)
    username = fields.String(required=True)
    isTyping = fields.Boolean(required=True)
    roomId = fields.String(required=True)


class ChatSentAckSchema(Schema):
    """``chat:message`` ack: the stored id, and whether this send was a retry of an earlier ``clientId``."""

    id = fields.String(required=True, metadata={"example": "1700000000000-0"})
    duplicate = fields.Boolean(required=True, metadata={"example": False})


class ChatHistoryPageSchema(ChatHistoryOutSchema):
    """``chat:history`` ack: a page, newest first, and the ``before`` cursor of the next (null at the start)."""

    cursor = fields.String(required=True, allow_none=True, metadata={"example": "1700000000000-0"})


class ChatTypingAckSchema(Schema):
    """``chat:typing`` ack: false when a repeated ``isTyping: true`` was throttled."""

    sent = fields.Boolean(required=True, metadata={"example": True})
