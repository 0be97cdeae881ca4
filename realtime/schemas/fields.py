"""Field validators shared by every schema."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from realtime.identifiers import is_identifier

#: The identifier shape as an ECMA-262 pattern, for JSON Schema.
IDENTIFIER_PATTERN = "^[A-Za-z0-9_-]{1,64}$"


def validate_identifier(value: str) -> None:
    """Refuse ids outside the identifier shape (1-64 of A-Z a-z 0-9 _ -)."""
    if not is_identifier(value):
        raise ValidationError("Must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'.")


class StrictBoolean(fields.Boolean):
    """JSON ``true``/``false`` only: no ``"yes"``, ``1`` or ``"true"`` strings."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Identifier(fields.String):
    """An id of 1-64 ``A-Z a-z 0-9 _ -``; documented with its pattern (validated without regex ``$`` pitfalls)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": IDENTIFIER_PATTERN, **kwargs.pop("metadata", {})}
        validators = [validate_identifier, *_as_list(kwargs.pop("validate", None))]
        super().__init__(validate=validators, metadata=metadata, **kwargs)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
