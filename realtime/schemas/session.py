"""Session and error payloads sent by the server."""
from __future__ import annotations

from marshmallow import Schema, fields, validate


class ForceLogoutOutSchema(Schema):
    """``force_logout``: this session was replaced or revoked; the socket is disconnected right after."""

    reason = fields.String(required=True, validate=validate.OneOf(("duplicate_login", "revoked")),
                           metadata={"example": "duplicate_login"})


class ErrorEventOutSchema(Schema):
    """``error``: a failed event whose emitter asked for no acknowledgement."""

    code = fields.String(required=True, metadata={"example": "VALIDATION_ERROR"})
    message = fields.String(required=True, metadata={"example": "The payload failed validation."})
    fields_ = fields.Dict(attribute="fields", data_key="fields", metadata={"example": {"content": ["Missing data for required field."]}})
    event = fields.String(required=True, metadata={"example": "chat:message"})
