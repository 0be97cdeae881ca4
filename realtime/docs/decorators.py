"""``@ws_event``, ``@ws_payload``, ``@ws_ack`` and ``@ws_response``: documentation that is also behaviour.

The schema named in ``@ws_payload`` validates the inbound payload at runtime, the one in ``@ws_ack`` shapes
the acknowledgement, and both become JSON Schema in the catalogue. The decorators only record metadata on
the function; :meth:`realtime.sockets.blueprint.SocketBlueprint.on` registers it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from marshmallow import Schema
from marshmallow import fields as ma_fields

from realtime.errors import ErrorCode

Direction = Literal["client_to_server", "server_to_client", "broadcast"]
DIRECTIONS: tuple[Direction, ...] = ("client_to_server", "server_to_client", "broadcast")
F = TypeVar("F", bound=Callable[..., Any])
ATTRIBUTE = "__ws_doc__"


@dataclass
class EventDoc:
    """Everything the catalogue says about one event."""

    name: str = ""
    description: str = ""
    direction: Direction = "client_to_server"
    category: str = ""
    auth_required: bool = True
    room_required: bool = False
    examples: list[Any] = field(default_factory=list)
    errors: list[ErrorCode] = field(default_factory=list)
    payload: Schema | None = None
    ack: Schema | None = None
    responses: list[tuple[str, Schema | None]] = field(default_factory=list)


def doc_of(func: Callable[..., Any]) -> EventDoc:
    """The (possibly empty) documentation recorded on ``func``."""
    existing = getattr(func, ATTRIBUTE, None)
    if existing is None:
        existing = EventDoc()
        setattr(func, ATTRIBUTE, existing)
    return existing


def as_schema(schema_or_fields: type[Schema] | Schema | Mapping[str, ma_fields.Field], name: str = "Inline") -> Schema:
    """A schema instance from a class, an instance or a ``{name: field}`` mapping."""
    if isinstance(schema_or_fields, Schema):
        return schema_or_fields
    if isinstance(schema_or_fields, type) and issubclass(schema_or_fields, Schema):
        return schema_or_fields()
    return Schema.from_dict(dict(schema_or_fields), name=name)()


def ws_event(
    name: str,
    description: str,
    direction: Direction = "client_to_server",
    category: str | None = None,
    auth_required: bool = True,
    room_required: bool = False,
    examples: Sequence[Any] = (),
    errors: Sequence[ErrorCode] = (),
) -> Callable[[F], F]:
    """Document a socket event handler: what it does, who may send it, examples and its error codes."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction is {direction!r}; use one of {', '.join(DIRECTIONS)}.")

    def decorator(func: F) -> F:
        doc = doc_of(func)
        doc.name = name
        doc.description = description
        doc.direction = direction
        doc.category = category or name.partition(":")[0]
        doc.auth_required = auth_required
        doc.room_required = room_required
        doc.examples = list(examples)
        doc.errors = list(errors)
        return func

    return decorator


def ws_payload(schema_or_fields: type[Schema] | Schema | Mapping[str, ma_fields.Field]) -> Callable[[F], F]:
    """The payload schema: validates what clients send and documents it."""

    def decorator(func: F) -> F:
        doc_of(func).payload = as_schema(schema_or_fields, name=f"{func.__name__.title()}Payload")
        return func

    return decorator


def ws_ack(schema_or_fields: type[Schema] | Schema | Mapping[str, ma_fields.Field]) -> Callable[[F], F]:
    """The schema of ``data`` in a successful ack envelope: shapes it and documents it."""

    def decorator(func: F) -> F:
        doc_of(func).ack = as_schema(schema_or_fields, name=f"{func.__name__.title()}Ack")
        return func

    return decorator


def ws_response(event: str, schema: type[Schema] | Schema | None = None) -> Callable[[F], F]:
    """A server→client event this handler causes (to the sender or the room); repeatable."""

    def decorator(func: F) -> F:
        doc_of(func).responses.insert(0, (event, as_schema(schema) if schema is not None else None))
        return func

    return decorator
