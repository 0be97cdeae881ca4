"""Field validators shared by every schema."""
from __future__ import annotations

from marshmallow import ValidationError

from realtime.identifiers import is_identifier


def validate_identifier(value: str) -> None:
    """Refuse ids outside the identifier shape (1-64 of A-Z a-z 0-9 _ -)."""
    if not is_identifier(value):
        raise ValidationError("Must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'.")
