"""Notification and announcement payloads."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from realtime.schemas.fields import BoundedList, StrictBoolean, validate_plain_data

MAX_MARK = 100
LEVELS = ("info", "warning", "critical")


class NotificationContentSchema(Schema):
    """What a publisher sends: the server adds ``id`` and ``createdAt``."""

    type = fields.String(required=True, validate=validate.Length(min=1, max=40), metadata={"example": "mention"})
    title = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={"example": "New mention"})
    body = fields.String(load_default="", validate=validate.Length(max=2000), metadata={"example": "bob mentioned you"})
    data = fields.Dict(
        keys=fields.String(),
        load_default=None,
        allow_none=True,
        validate=validate_plain_data,
        metadata={"example": {"roomId": "lobby"}},
    )


class NotificationOutSchema(NotificationContentSchema):
    """``notification:new``: a notification (personal ones are stored with read state)."""

    id = fields.String(required=True, metadata={"example": "n-5b1f"})
    createdAt = fields.String(required=True, metadata={"format": "date-time"})


class StoredNotificationSchema(NotificationOutSchema):
    """A stored personal notification in ``notifications:list``."""

    read = fields.Boolean(required=True)


class NotificationsListInSchema(Schema):
    """``notifications:list``: the newest stored notifications."""

    unreadOnly = StrictBoolean(load_default=False, metadata={"example": False})
    limit = fields.Integer(strict=True, load_default=50, validate=validate.Range(min=1, max=100), metadata={"example": 20})


class MarkReadInSchema(Schema):
    """``notifications:mark_read``: ids to mark read (a bare array is accepted too)."""

    ids = BoundedList(
        fields.String(validate=validate.Length(min=1, max=64)),
        required=True,
        min_length=1,
        max_length=MAX_MARK,
        metadata={"example": ["n-5b1f"]},
    )


class UnreadCountOutSchema(Schema):
    """``notification:unread_count``: sent on connect and after changes."""

    count = fields.Integer(required=True, validate=validate.Range(min=0), metadata={"example": 2})


class AnnouncementOutSchema(Schema):
    """``system:announcement``: to everyone (``broadcast:all``)."""

    title = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={"example": "Maintenance"})
    body = fields.String(required=True, validate=validate.Length(max=2000), metadata={"example": "At 02:00 UTC."})
    level = fields.String(load_default="info", validate=validate.OneOf(LEVELS), metadata={"example": "info"})


class NotificationsPageSchema(Schema):
    """``notifications:list`` ack."""

    notifications = fields.List(fields.Nested(StoredNotificationSchema), required=True)
    unreadCount = fields.Integer(required=True, metadata={"example": 1})


class MarkReadAckSchema(Schema):
    """``notifications:mark_read`` ack: how many changed and how many stay unread."""

    marked = fields.Integer(required=True, metadata={"example": 1})
    unreadCount = fields.Integer(required=True, metadata={"example": 0})
