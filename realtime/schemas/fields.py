"""Field validators shared by every schema."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from realtime.identifiers import is_identifier


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
