"""Party live payloads."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from realtime.schemas.fields import Identifier

PARTY_STATUSES = ("SCHEDULED", "LIVE", "PAUSED", "ENDED")


class PartyRefSchema(Schema):
    """``party:join_live`` / ``party:leave_live``."""

    partyId = Identifier(required=True, metadata={"example": "p42"})


class PartyViewerOutSchema(Schema):
    """``party:viewer_joined`` / ``party:viewer_left`` with the cluster-wide viewer count."""

    userId = fields.String(required=True, metadata={"example": "bob"})
    partyId = fields.String(required=True, metadata={"example": "p42"})
    viewerCount = fields.Integer(required=True, validate=validate.Range(min=0), metadata={"example": 3})


class PartyStatusOutSchema(Schema):
    """``party:status_changed``: the party went live, paused or ended."""

    partyId = Identifier(required=True, metadata={"example": "p42"})
    status = fields.String(required=True, validate=validate.OneOf(PARTY_STATUSES), metadata={"example": "LIVE"})


class MediaSchema(Schema):
    """A photo or video added to a party."""

    id = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={"example": "m1"})
    type = fields.String(required=True, validate=validate.OneOf(("IMAGE", "VIDEO")), metadata={"example": "IMAGE"})
    url = fields.Url(required=True, schemes={"https", "http"}, metadata={"example": "https://cdn.example/m1.jpg"})
    thumbnailUrl = fields.Url(schemes={"https", "http"}, allow_none=True)
    uploadedBy = Identifier(allow_none=True, metadata={"example": "alice"})


class PartyMediaOutSchema(Schema):
    """``party:new_media``: new media in a party."""

    partyId = Identifier(required=True, metadata={"example": "p42"})
    media = fields.Nested(MediaSchema, required=True)


class PartyViewersAckSchema(Schema):
    """``party:join_live`` / ``party:leave_live`` ack: the cluster-wide count of distinct viewers."""

    partyId = Identifier(required=True, metadata={"example": "p42"})
    viewerCount = fields.Integer(required=True, metadata={"example": 3})
