"""Field validators shared by every schema."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from realtime.identifiers import is_identifier, is_stream_id

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


#: Keys that mean something to JavaScript objects; never accepted in free-form data.
FORBIDDEN_KEYS = frozenset({"__proto__", "constructor", "prototype"})
MAX_DATA_DEPTH = 5
MAX_DATA_KEYS = 64


def validate_plain_data(value: Any, depth: int = 0) -> None:
    """Free-form JSON objects: no prototype keys, bounded depth and width."""
    if depth > MAX_DATA_DEPTH:
        raise ValidationError(f"Nested more than {MAX_DATA_DEPTH} levels.")
    if isinstance(value, dict):
        if len(value) > MAX_DATA_KEYS:
            raise ValidationError(f"More than {MAX_DATA_KEYS} keys.")
        for key, item in value.items():
            if key in FORBIDDEN_KEYS:
                raise ValidationError(f"Key {key!r} is not allowed.")
            validate_plain_data(item, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_DATA_KEYS:
            raise ValidationError(f"More than {MAX_DATA_KEYS} items.")
        for item in value:
            validate_plain_data(item, depth + 1)


class BoundedList(fields.List):
    """A list whose length is checked before its items: an over-long list is refused with one message,
    not one error per item (which would let a small payload produce a huge error)."""

    def __init__(self, cls_or_instance: Any, *, max_length: int, min_length: int = 0, **kwargs: Any) -> None:
        super().__init__(cls_or_instance, validate=validate.Length(min=min_length, max=max_length), **kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list) and len(value) > self.max_length:
            raise ValidationError(f"Longer than maximum length {self.max_length}.")
        return super()._deserialize(value, attr, data, **kwargs)


def validate_stream_id(value: str) -> None:
    """``ms-seq``: 1-19 ASCII digits each (exactly :data:`realtime.identifiers.STREAM_ID_PATTERN`)."""
    if not is_stream_id(value):
        raise ValidationError("Must be a message id like 1700000000000-0.")


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
