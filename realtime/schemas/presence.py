"""Presence payloads."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from realtime.schemas.fields import BoundedList, Identifier

STATUSES = ("online", "away", "busy")
MAX_PRESENCE_USERS = 100


class PresenceStatusInSchema(Schema):
    """``presence:status``: the user's chosen status (a bare string is accepted too)."""

    status = fields.String(required=True, validate=validate.OneOf(STATUSES), metadata={"example": "away"})


class PresenceUsersInSchema(Schema):
    """``presence:subscribe`` / ``presence:unsubscribe`` / ``presence:check`` (a bare array is accepted too)."""

    userIds = BoundedList(
        Identifier(),
        required=True,
        min_length=1,
        max_length=MAX_PRESENCE_USERS,
        metadata={"example": ["bob", "carol"]},
    )


class PresenceOutSchema(Schema):
    """``presence:update``: a user's presence changed."""

    userId = fields.String(required=True, metadata={"example": "bob"})
    status = fields.String(
        required=True, validate=validate.OneOf((*STATUSES, "offline")), metadata={"example": "online"}
    )
    lastSeen = fields.String(allow_none=True, metadata={"format": "date-time"})


class PresenceEntrySchema(Schema):
    """One user's presence in a ``presence:check`` answer."""

    userId = fields.String(required=True)
    isOnline = fields.Boolean(required=True)
    status = fields.String(required=True)
    lastSeen = fields.String(allow_none=True, metadata={"format": "date-time"})


class PresenceListOutSchema(Schema):
    """``presence:status_list``: the answer to ``presence:check`` as an event."""

    users = fields.List(fields.Nested(PresenceEntrySchema), required=True)
