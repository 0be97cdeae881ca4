"""Room payloads that belong to no single feature."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

#: Why a socket was taken out of a room: its room's hook no longer admits the user.
REMOVED_REASONS = ("forbidden",)


class RoomRemovedOutSchema(Schema):
    """``room:removed``: this socket was taken out of ``room`` by the server and receives nothing of it now."""

    room = fields.String(required=True, metadata={"example": "game:g7"})
    reason = fields.String(required=True, validate=validate.OneOf(REMOVED_REASONS), metadata={"example": "forbidden"})
