"""Request bodies of the HTTP publish API."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from realtime.schemas.fields import BoundedList, Identifier, StrictBoolean
from realtime.schemas.notifications import NotificationContentSchema
from realtime.schemas.party import PARTY_STATUSES, MediaSchema

MAX_RECIPIENTS = 1000


class EmitRequestSchema(Schema):
    """``POST /api/v1/emit``: one publishable server event to one room."""

    room = fields.String(required=True, validate=validate.Length(min=1, max=80), metadata={"example": "party:p42"})
    event = fields.String(required=True, validate=validate.Length(min=1, max=80), metadata={"example": "party:status_changed"})
    data = fields.Raw(required=True, metadata={"example": {"partyId": "p42", "status": "LIVE"}})


class NotificationRequestSchema(Schema):
    """``POST /api/v1/notifications``: exactly one of ``userIds``, ``groupId``, ``all``."""

    userIds = BoundedList(Identifier(), min_length=1, max_length=MAX_RECIPIENTS)
    groupId = Identifier()
    all = StrictBoolean()
    notification = fields.Nested(NotificationContentSchema, required=True)

    @validates_schema
    def _one_target(self, data: dict[str, Any], **kwargs: Any) -> None:
        targets = [name for name in ("userIds", "groupId") if name in data] + (["all"] if data.get("all") else [])
        if len(targets) != 1:
            raise ValidationError("Give exactly one of userIds, groupId or all: true.", field_name="userIds")


class PartyStatusRequestSchema(Schema):
    """``POST /api/v1/parties/{id}/status``."""

    status = fields.String(required=True, validate=validate.OneOf(PARTY_STATUSES), metadata={"example": "LIVE"})


class PartyMediaRequestSchema(Schema):
    """``POST /api/v1/parties/{id}/media``."""

    media = fields.Nested(MediaSchema, required=True)
