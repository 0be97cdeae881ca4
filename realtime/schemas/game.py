"""Game payloads."""
from __future__ import annotations

import math
from typing import Any

from marshmallow import Schema, ValidationError, fields

from realtime.schemas.fields import FORBIDDEN_KEYS, BoundedList, Identifier

MAX_MOVE_KEYS = 16
#: Larger integers lose precision in JavaScript clients.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_MOVE_TEXT = 64


def validate_move(move: dict[str, Any]) -> None:
    """A move is a small flat object: ≤16 keys, each a string ≤64, number or boolean."""
    if not 0 < len(move) <= MAX_MOVE_KEYS:
        raise ValidationError(f"A move has 1 to {MAX_MOVE_KEYS} keys.")
    for key, value in move.items():
        if not isinstance(key, str) or not 0 < len(key) <= 32:
            raise ValidationError("Move keys are 1-32 characters.")
        if key in FORBIDDEN_KEYS:
            raise ValidationError(f"Key {key!r} is not allowed.")
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and abs(value) <= MAX_SAFE_INTEGER:
            continue
        if isinstance(value, float) and math.isfinite(value):
            continue
        if isinstance(value, str) and len(value) <= MAX_MOVE_TEXT:
            continue
        raise ValidationError(
            f"Move values are finite numbers (integers up to 2^53-1), booleans or strings of at most {MAX_MOVE_TEXT}."
        )


class GameRefSchema(Schema):
    """``game:join``."""

    gameId = Identifier(required=True, metadata={"example": "g7"})


class GameMoveInSchema(Schema):
    """``game:move``: a move by the player whose turn it is."""

    gameId = Identifier(required=True, metadata={"example": "g7"})
    move = fields.Dict(required=True, validate=validate_move, metadata={"example": {"x": 1, "y": 2}})


class GameMoveRecordSchema(Schema):
    """One applied move."""

    n = fields.Integer(required=True)
    by = fields.String(required=True)
    move = fields.Dict(required=True)
    at = fields.String(required=True, metadata={"format": "date-time"})


class GameStateSchema(Schema):
    """The server-side state of a game."""

    players = fields.List(fields.String(), required=True)
    moveCount = fields.Integer(required=True)
    moves = fields.List(fields.Nested(GameMoveRecordSchema), required=True, metadata={"description": "Last 50 moves."})


class GameStateOutSchema(Schema):
    """``game:state``: the state after a move (and to a joiner)."""

    gameId = fields.String(required=True, metadata={"example": "g7"})
    state = fields.Nested(GameStateSchema, required=True)
    turn = fields.String(required=True, metadata={"example": "bob", "description": "The player to move next."})


class GamePlayersInSchema(Schema):
    """``POST /api/v1/games/{id}/players``: the players, in turn order."""

    userIds = BoundedList(Identifier(), required=True, min_length=1, max_length=16)


class GameMoveAckSchema(Schema):
    """``game:move`` ack: the move count and who moves next."""

    moveCount = fields.Integer(required=True, metadata={"example": 1})
    turn = fields.String(required=True, metadata={"example": "bob"})
