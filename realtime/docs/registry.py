"""The documentation registry: every event of the product, scanned from the registered blueprints.

``get_all_events()``, ``get_events_by_category(c)``, ``get_event(name)``, ``generate_asyncapi_spec()`` and
``generate_client_types()`` all read one structure built once from the event catalogue and the schemas.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from realtime.docs.asyncapi import build_asyncapi
from realtime.docs.events import COMMON_ERRORS, DocumentedEvent
from realtime.docs.json_schema import SchemaComponents
from realtime.docs.typescript import build_typescript
from realtime.sockets.catalog import EventCatalog

#: The event contract's version, AsyncAPI ``info.version``, bumped by hand in the change that alters an event:
#: major when ``flask docs diff`` reports a breaking change against the last release's spec, minor for an
#: additive one, patch for wording. ``info.x-schema-hash`` changes by itself with any content.
SCHEMA_VERSION = "1.1.0"

class EventRegistry:
    """Documentation of every client→server and server→client event."""

    def __init__(self, catalog: EventCatalog, title: str = "realtime", version: str = SCHEMA_VERSION) -> None:
        self.title = title
        self.version = version
        self._schemas = SchemaComponents()
        self._events: dict[tuple[str, bool], DocumentedEvent] = {}
        for handler in catalog.handlers.values():
            doc = handler.doc
            if not doc.description.strip() or doc.payload is None:
                raise ValueError(
                    f"{handler.event!r} has no description or no payload schema; declare it with "
                    f"@{handler.blueprint}.event({handler.event!r}, description, payload=..., ack=..., ...)."
                )
            payload = self._schemas.ref(doc.payload)
            errors = list(dict.fromkeys([*doc.errors, *COMMON_ERRORS]))
            self._events[(handler.event, True)] = DocumentedEvent(
                name=handler.event,
                description=doc.description,
                direction="client_to_server",
                category=doc.category or handler.blueprint,
                auth_required=True,
                room_required=doc.room_required,
                payload=payload,
                examples=list(doc.examples),
                errors=errors,
                ack=self._schemas.ref(doc.ack) if doc.ack is not None else None,
                response_events=list(doc.emits),
                bare_field=handler.wrap,
            )
        for declared in catalog.server_events.values():
            self._events[(declared.name, False)] = DocumentedEvent(
                name=declared.name,
                description=declared.description,
                direction="broadcast" if declared.broadcast else "server_to_client",
                category=declared.blueprint,
                auth_required=True,
                room_required=False,
                payload=self._schemas.ref(declared.schema),
                examples=list(declared.examples),
                errors=[],
                to=declared.to,
                publishable=declared.publishable,
            )
        for (name, inbound), event in self._events.items():
            event.two_way = (name, not inbound) in self._events
        for event in self._events.values():
            for name in event.response_events:
                if name not in catalog.server_events:
                    raise ValueError(
                        f"{event.name!r} emits {name!r}, which is not a declared server event; declare it with "
                        f"SocketBlueprint.emits({name!r}, schema, description, to=..., examples=[...])."
                    )
        self._components = self._schemas.components()

    @property
    def components(self) -> dict[str, Any]:
        """JSON Schema of every payload and ack, by component name."""
        return self._components

    def events(self) -> list[DocumentedEvent]:
        """Every event, ordered by category then name."""
        return sorted(self._events.values(), key=lambda e: (e.category, e.name, e.direction != "client_to_server"))

    def get_all_events(self) -> list[dict[str, Any]]:
        """Every event as JSON."""
        return [event.to_dict(self._components) for event in self.events()]

    def categories(self) -> dict[str, int]:
        """Category → number of events."""
        counts: dict[str, int] = {}
        for event in self.events():
            counts[event.category] = counts.get(event.category, 0) + 1
        return counts

    def get_events_by_category(self, category: str) -> list[dict[str, Any]]:
        """The events of one category (empty for an unknown one)."""
        return [event.to_dict(self._components) for event in self.events() if event.category == category]

    def get_event(self, name: str) -> list[dict[str, Any]]:
        """The event(s) called ``name``: one, or two when the name is used in both directions; empty if unknown."""
        return [event.to_dict(self._components) for event in self.events() if event.name == name]

    @cached_property
    def schema_hash(self) -> str:
        """The AsyncAPI document's ``x-schema-hash``: the same for every server URL."""
        return str(self.generate_asyncapi_spec()["info"]["x-schema-hash"])

    def generate_asyncapi_spec(self, servers: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The AsyncAPI 2.6.0 document (see :mod:`realtime.docs.asyncapi`)."""
        return build_asyncapi(self, servers or {})

    def generate_client_types(self) -> str:
        """TypeScript interfaces for ``socket.io-client`` (see :mod:`realtime.docs.typescript`)."""
        return build_typescript(self)
