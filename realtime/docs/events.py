"""What the catalogue, the AsyncAPI document, the TypeScript types and the client are generated from.

:class:`DocumentedEvent` is one event as documented; :class:`EventDocs` is the view of the registry that the
generators (``asyncapi``, ``typescript``, ``client``) read, so they depend on this module and not on the
registry, which calls them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from realtime.docs.json_schema import dereference
from realtime.errors import ERROR_DESCRIPTIONS, ErrorCode

#: Failures any client→server event can answer with, whatever its own list says.
COMMON_ERRORS = (ErrorCode.VALIDATION_ERROR, ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL)

Direction = Literal["client_to_server", "server_to_client", "broadcast"]


@dataclass
class DocumentedEvent:
    """One event as the catalogue, the spec and the types describe it."""

    name: str
    description: str
    direction: Direction
    category: str
    auth_required: bool
    room_required: bool
    payload: dict[str, Any]
    examples: list[Any]
    errors: list[ErrorCode]
    ack: dict[str, Any] | None = None
    response_events: list[str] = field(default_factory=list)
    to: str | None = None
    publishable: bool = False
    bare_field: str | None = None
    two_way: bool = False

    def payload_schema(self, components: Mapping[str, Any]) -> dict[str, Any]:
        """The payload's JSON Schema; with a bare form, ``oneOf`` the object or its single field's value."""
        if self.bare_field is None:
            return self.payload
        name = self.payload["$ref"].rsplit("/", 1)[-1]
        bare = components[name]["properties"][self.bare_field]
        return {"oneOf": [self.payload, bare]}

    @property
    def anchor(self) -> str:
        """The catalogue's deep-link id: the name, or ``name~server`` for the server side of a two-way name."""
        return self.name if self.direction == "client_to_server" or not self.two_way else f"{self.name}~server"

    def to_dict(self, components: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON shape of ``/ws-docs/events``: schemas referenced and also resolved for display."""
        return {
            "name": self.name,
            "anchor": self.anchor,
            "description": self.description,
            "direction": self.direction,
            "category": self.category,
            "authRequired": self.auth_required,
            "roomRequired": self.room_required,
            "payload": self.payload_schema(components),
            "payloadResolved": dereference(self.payload, dict(components)),
            "examples": self.examples,
            "ack": self.ack,
            "ackResolved": dereference(self.ack, dict(components)) if self.ack else None,
            "responseEvents": self.response_events,
            "errors": [{"code": code.value, "description": ERROR_DESCRIPTIONS[code]} for code in self.errors],
            "to": self.to,
            "publishable": self.publishable,
            "bareField": self.bare_field,
        }


class EventDocs(Protocol):
    """The registry as the generators read it."""

    title: str
    version: str

    @property
    def components(self) -> dict[str, Any]:
        """JSON Schema of every payload and ack, by component name."""

    @property
    def schema_hash(self) -> str:
        """The content hash of the event contract."""

    def events(self) -> list[DocumentedEvent]:
        """Every event, ordered by category then name."""

    def categories(self) -> dict[str, int]:
        """Category → number of events."""
