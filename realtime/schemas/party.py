"""Party live payloads."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from realtime.schemas.fields import validate_identifier

PARTY_STATUSES = ("SCHEDULED", "LIVE", "PAUSED", "ENDED")


class PartyRefSchema(Schema):
    """``party:join_live`` / ``party:leave_live``."""

    partyId = fields.String(required=True, validate=validate_identifier, metadata={"example": "p42"})


class PartyViewerOutSchema(Schema):
    """``party:viewer_joined`` / ``party:viewer_left`` with the cluster-wide viewer count."""

    userId = fields.String(required=True, metadata={"example": "bob"})
    partyId = fields.String(required=True, metadata={"example": "p42"})
    viewerCount = fields.Integer(required=True, validate=validate.Range(min=0), metadata={"example": 3})


class PartyStatusOutSchema(Schema):
    """``party:status_changed``: the party went live, paused or ended."""

    partyId = fields.String(required=True, validate=validate_identifier, metadata={"example": "p42"})
    status = fields.String(required=True, validate=validate.OneOf(PARTY_STATUSES), metadata={"example": "LIVE"})


class MediaSchema(Schema):
    """A photo or video added to a party."""

    id = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={"example": "m1"})
    type = fields.String(required=True, validate=validate.OneOf(("IMAGE", "VIDEO")), metadata={"example": "IMAGE"})
    url = fields.Url(required=True, schemes={"https", "http"}, metadata={"example": "https://cdn.example/m1.jpg"})
    thumbnailUrl = fields.Url(schemes={"https", "http"}, allow_none=True)
    uploadedBy = fields.String(validate=validate_identifier, allow_none=True, metadata={"example": "alice"})


class PartyMediaOutSchema(Schema):
    """``party:new_media``: new media in a party."""

    partyId = fields.String(required=True, validate=validate_identifier, metadata={"example": "p42"})
    media = fields.Nested(MediaSchema, required=True)
